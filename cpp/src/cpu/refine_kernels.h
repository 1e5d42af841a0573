// The refinement network's kernels for one ISA, chosen at run time: the portable build, the
// AVX-512 one, or AVX-512 with bf16 dot products for the bf16 network (its Winograd GEMMs
// in bf16 with fp32 accumulation; every other layer as in fp32).
#pragma once

#include <cstdint>
#include <string>

#include "cpu/refine_layout.h"

namespace ddad_rt::cpu {

struct Kernels {
  void (*conv1_rows)(const Packed&, const Geometry&, const float*, float*, std::int64_t,
                     std::int64_t);
  void (*input_transform)(const Packed&, const Geometry&, const float*, std::int64_t, int, float*);
  void (*output_transform)(const Packed&, const Geometry&, const float*, std::int64_t, int, float*);
  void (*conv3_rows)(const Packed&, const Geometry&, const float*, float*, std::int64_t,
                     std::int64_t);
  void (*gemm)(const float*, const float*, float*, int, int, int);
  //! The bf16 network's input transform (bf16 out) and GEMM; null in the fp32 kernels.
  void (*input_transform_bf16)(const Packed&, const Geometry&, const float*, std::int64_t, int,
                               std::uint16_t*);
  void (*gemm_bf16)(const std::uint16_t*, const std::uint16_t*, float*, int, int, int);
  const char* isa;
  bool bf16() const { return gemm_bf16 != nullptr; }
};

//! The portable kernels (any CPU).
Kernels generic_kernels();
//! The best kernels this CPU runs for a hidden width `mid`.
Kernels choose_kernels(int mid);
//! The bf16 kernels ("avx512_bf16"), on CPUs with AVX512_BF16; the portable emulation of the
//! same arithmetic ("generic_bf16") where `isa` is "generic", for tests.
Kernels bf16_kernels(const std::string& isa);
//! Whether this CPU runs the AVX-512 kernels (F, VL, BW, DQ and FMA).
bool cpu_has_avx512();
//! Whether this CPU runs the AVX512_BF16 kernels.
bool cpu_has_avx512_bf16();
//! Whether this CPU has AMX tiles for bf16 (OpenVINO's bf16 convolutions use them).
bool cpu_has_amx_bf16();

}  // namespace ddad_rt::cpu
