#include "cpu/refine_kernels.h"

#include "cpu/gemm.h"
#include "cpu/refine_layers.h"

namespace ddad_rt::cpu {
namespace {

// ---- generic build -------------------------------------------------------------------
void conv1_rows_generic(const Packed& p, const Geometry& g, const float* maps, float* h1,
                        std::int64_t y0, std::int64_t y1) {
  conv1_rows_impl<VecG>(p, g, maps, h1, y0, y1);
}
void input_transform_generic(const Packed& p, const Geometry& g, const float* h1,
                             std::int64_t t0, int nt, float* v) {
  input_transform_impl<VecG>(p, g, h1, t0, nt, v);
}
void output_transform_generic(const Packed& p, const Geometry& g, const float* mm,
                              std::int64_t t0, int nt, float* h2) {
  output_transform_impl<VecG>(p, g, mm, t0, nt, h2);
}
void conv3_rows_generic(const Packed& p, const Geometry& g, const float* h2, float* logits,
                        std::int64_t y0, std::int64_t y1) {
  conv3_rows_impl<VecG>(p, g, h2, logits, y0, y1);
}

#if DDAD_RT_X86
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
DDAD_RT_AVX512 DDAD_RT_FLATTEN void conv1_rows_avx512(const Packed& p, const Geometry& g, const float* maps,
                                      float* h1, std::int64_t y0, std::int64_t y1) {
  conv1_rows_impl<Vec512>(p, g, maps, h1, y0, y1);
}
DDAD_RT_AVX512 DDAD_RT_FLATTEN void input_transform_avx512(const Packed& p, const Geometry& g, const float* h1,
                                           std::int64_t t0, int nt, float* v) {
  input_transform_impl<Vec512>(p, g, h1, t0, nt, v);
}
DDAD_RT_AVX512 DDAD_RT_FLATTEN void output_transform_avx512(const Packed& p, const Geometry& g, const float* mm,
                                            std::int64_t t0, int nt, float* h2) {
  output_transform_impl<Vec512>(p, g, mm, t0, nt, h2);
}
DDAD_RT_AVX512 DDAD_RT_FLATTEN void conv3_rows_avx512(const Packed& p, const Geometry& g, const float* h2,
                                      float* logits, std::int64_t y0, std::int64_t y1) {
  conv3_rows_impl<Vec512>(p, g, h2, logits, y0, y1);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace

Kernels generic_kernels() {
  return {conv1_rows_generic, input_transform_generic, output_transform_generic,
          conv3_rows_generic, gemm_generic, "generic"};
}

Kernels choose_kernels(int mid) {
#if DDAD_RT_X86
  __builtin_cpu_init();
  if (mid % kLanes == 0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma")) {
    return {conv1_rows_avx512, input_transform_avx512, output_transform_avx512,
            conv3_rows_avx512, gemm_avx512, "avx512"};
  }
#endif
  return generic_kernels();
}

}  // namespace ddad_rt::cpu
