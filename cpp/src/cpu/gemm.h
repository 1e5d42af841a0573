// The small GEMMs of the Winograd convolution: C [rows x n] = A [rows x k] * B [k x n],
// row-major, leading dimensions k / n / n. Portable, and AVX-512 (64-column panels, 6-row
// micro-kernel in 24 registers) where the CPU has it.
#pragma once

#include <cstdint>

namespace ddad_rt::cpu {

void gemm_generic(const float* a, const float* b, float* c, int rows, int k, int n);

//! Only on x86-64 CPUs with AVX-512F/VL/BW/DQ (see choose_kernels); n not a multiple of 64
//! falls back to the portable loop.
void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n);

//! The bf16 network's GEMM, fp32 accumulation: A [rows x k] bf16 row-major, B [k/2 x n x 2]
//! bf16 (k in pairs, as vdpbf16ps multiplies them), C fp32. k must be even.
void gemm_bf16_generic(const std::uint16_t* a, const std::uint16_t* b, float* c, int rows, int k,
                       int n);
//! Only on x86-64 CPUs with AVX512_BF16 (see choose_kernels); n not a multiple of 64 falls
//! back to the portable loop.
void gemm_bf16_avx512(const std::uint16_t* a, const std::uint16_t* b, float* c, int rows, int k,
                      int n);

}  // namespace ddad_rt::cpu
