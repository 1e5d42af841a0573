// The refinement network's kernels for one ISA, chosen at run time: the portable build or
// the AVX-512 one.
#pragma once

#include <cstdint>

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
  const char* isa;
};

//! The portable kernels (any CPU).
Kernels generic_kernels();
//! The best kernels this CPU runs for a hidden width `mid`.
Kernels choose_kernels(int mid);

}  // namespace ddad_rt::cpu
