#include "cpu/refine_kernels.h"

#include <stdexcept>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

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
void input_transform_bf16_generic(const Packed& p, const Geometry& g, const float* h1,
                                  std::int64_t t0, int nt, std::uint16_t* v) {
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
DDAD_RT_AVX512_BF16 DDAD_RT_FLATTEN void input_transform_bf16_avx512(
    const Packed& p, const Geometry& g, const float* h1, std::int64_t t0, int nt, std::uint16_t* v) {
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
          conv3_rows_generic, gemm_generic, nullptr, nullptr, "generic"};
}

bool cpu_has_avx512() {
#if DDAD_RT_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512_bf16() {
#if DDAD_RT_X86
  // CPUID leaf 7, sub-leaf 1, EAX bit 5 (GCC 12's __builtin_cpu_supports has no name for it);
  // AVX-512 itself (and the OS saving its registers) is what cpu_has_avx512 checks.
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!cpu_has_avx512() || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;
#else
  return false;
#endif
}

bool cpu_has_amx_bf16() {
#if DDAD_RT_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d >> 22) & 1u;  // CPUID leaf 7, sub-leaf 0, EDX bit 22: AMX-BF16
#else
  return false;
#endif
}

Kernels choose_kernels(int mid) {
#if DDAD_RT_X86
  if (mid % kLanes == 0 && cpu_has_avx512()) {
    return {conv1_rows_avx512, input_transform_avx512, output_transform_avx512,
            conv3_rows_avx512, gemm_avx512, nullptr, nullptr, "avx512"};
  }
#endif
  return generic_kernels();
}

Kernels bf16_kernels(const std::string& isa) {
  if (isa == "generic") {
    Kernels k = generic_kernels();
    k.input_transform_bf16 = input_transform_bf16_generic;
    k.gemm_bf16 = gemm_bf16_generic;
    k.isa = "generic_bf16";
    return k;
  }
#if DDAD_RT_X86
  if (cpu_has_avx512_bf16()) {
    return {conv1_rows_avx512, input_transform_avx512, output_transform_avx512,
            conv3_rows_avx512, gemm_avx512, input_transform_bf16_avx512, gemm_bf16_avx512,
            "avx512_bf16"};
  }
#endif
  throw std::invalid_argument("the bf16 refinement network needs a CPU with AVX512_BF16");
}

}  // namespace ddad_rt::cpu
