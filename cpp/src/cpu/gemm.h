// The small GEMMs of the Winograd convolution: C [rows x n] = A [rows x k] * B [k x n],
// row-major, leading dimensions k / n / n. Portable, and AVX-512 (64-column panels, 6-row
// micro-kernel in 24 registers) where the CPU has it.
#pragma once

namespace ddad_rt::cpu {

void gemm_generic(const float* a, const float* b, float* c, int rows, int k, int n);

//! Only on x86-64 CPUs with AVX-512F/VL/BW/DQ (see choose_kernels); n not a multiple of 64
//! falls back to the portable loop.
void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n);

}  // namespace ddad_rt::cpu
