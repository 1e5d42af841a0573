// Lane vectors for the CPU kernels of the refinement network: the kernels are written once
// over a vector of kLanes floats and compiled twice, with VecG (plain arrays; the compiler
// vectorises each operation for the baseline ISA) and with Vec512 (one AVX-512 register).
// Every operation is a whole-vector one, so neither build relies on the compiler
// interchanging loops. Also the ISA attributes the kernels are compiled with.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DDAD_RT_X86 1
#define DDAD_RT_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
// AVX-512 plus the bf16 dot products (vdpbf16ps) and conversions (vcvtneps2bf16).
#define DDAD_RT_AVX512_BF16 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))
#else
#define DDAD_RT_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DDAD_RT_INLINE inline __attribute__((always_inline))
// Inlines the whole call tree into an AVX-512 wrapper - including the Vec512 operations that
// the shared templates (e.g. winograd_math.h) call: those templates carry no ISA target, so
// the operations cannot be force-inlined into them, only into the wrapper.
#define DDAD_RT_FLATTEN __attribute__((flatten))
#else
#define DDAD_RT_INLINE inline
#define DDAD_RT_FLATTEN
#endif

namespace ddad_rt::cpu {

//! Channels handled together by the transforms (one AVX-512 register of floats).
constexpr int kLanes = 16;

struct VecG {
  float v[kLanes];
  VecG() = default;
  DDAD_RT_INLINE VecG(float s) {  // NOLINT(google-explicit-constructor): V(4) * d in the math
    for (int l = 0; l < kLanes; ++l) v[l] = s;
  }
  static DDAD_RT_INLINE VecG load(const float* p) {
    VecG r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = p[l];
    return r;
  }
  DDAD_RT_INLINE void store(float* p) const {
    for (int l = 0; l < kLanes; ++l) p[l] = v[l];
  }
  DDAD_RT_INLINE float sum() const {
    float s = 0.0f;
    for (int l = 0; l < kLanes; ++l) s += v[l];
    return s;
  }
};
#define DDAD_RT_VECG_OP(op)                                                   \
  DDAD_RT_INLINE VecG operator op(const VecG& a, const VecG& b) {             \
    VecG r;                                                                   \
    for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] op b.v[l];               \
    return r;                                                                 \
  }
DDAD_RT_VECG_OP(+)
DDAD_RT_VECG_OP(-)
DDAD_RT_VECG_OP(*)
#undef DDAD_RT_VECG_OP
DDAD_RT_INLINE VecG fma(const VecG& a, const VecG& b, const VecG& c) {
  VecG r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
  return r;
}
DDAD_RT_INLINE VecG relu(const VecG& a) {
  VecG r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = std::max(a.v[l], 0.0f);
  return r;
}

//! fp32 -> bfloat16, rounded to nearest even (what vcvtneps2bf16 does; NaN stays NaN).
inline std::uint16_t to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float from_bf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Stores a lane vector as the kernels' element type: fp32 as it is, or bf16 (the Winograd
// GEMM's inputs in the bf16 network). Overloaded so one transform template serves both.
DDAD_RT_INLINE void store_as(const VecG& a, float* p) { a.store(p); }
DDAD_RT_INLINE void store_as(const VecG& a, std::uint16_t* p) {
  for (int l = 0; l < kLanes; ++l) p[l] = to_bf16(a.v[l]);
}


#if DDAD_RT_X86
// GCC 12 flags the deliberately undefined operand inside some AVX-512 intrinsics (e.g.
// _mm512_max_ps's _mm512_undefined_ps) as "may be used uninitialized"; it is not.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// Its operations are plain inline, not always_inline: the shared Winograd templates they are
// called from carry no ISA target; DDAD_RT_FLATTEN inlines them into the AVX-512 wrappers.
struct Vec512 {
  __m512 v;
  Vec512() = default;
  DDAD_RT_AVX512 inline Vec512(__m512 x) : v(x) {}  // NOLINT
  DDAD_RT_AVX512 inline Vec512(float s) : v(_mm512_set1_ps(s)) {}  // NOLINT
  static DDAD_RT_AVX512 inline Vec512 load(const float* p) { return _mm512_loadu_ps(p); }
  DDAD_RT_AVX512 inline void store(float* p) const { _mm512_storeu_ps(p, v); }
  DDAD_RT_AVX512 inline float sum() const { return _mm512_reduce_add_ps(v); }
};
DDAD_RT_AVX512 inline Vec512 operator+(const Vec512& a, const Vec512& b) {
  return _mm512_add_ps(a.v, b.v);
}
DDAD_RT_AVX512 inline Vec512 operator-(const Vec512& a, const Vec512& b) {
  return _mm512_sub_ps(a.v, b.v);
}
DDAD_RT_AVX512 inline Vec512 operator*(const Vec512& a, const Vec512& b) {
  return _mm512_mul_ps(a.v, b.v);
}
DDAD_RT_AVX512 inline Vec512 fma(const Vec512& a, const Vec512& b, const Vec512& c) {
  return _mm512_fmadd_ps(a.v, b.v, c.v);
}
DDAD_RT_AVX512 inline Vec512 relu(const Vec512& a) {
  return _mm512_max_ps(a.v, _mm512_setzero_ps());
}
DDAD_RT_AVX512 inline void store_as(const Vec512& a, float* p) { a.store(p); }
DDAD_RT_AVX512_BF16 inline void store_as(const Vec512& a, std::uint16_t* p) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(a.v)));
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace ddad_rt::cpu
