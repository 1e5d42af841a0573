// The refinement network on the CPU (see ddad_rt/kernels/refine_net.h).
//
// Layout: the input maps are NCHW (as the discrepancy kernel writes them); the two hidden
// activations are channels-last with a zero border of one pixel, padded to whole 4x4 tiles
// ([Hp, Wp, M], Hp = 4 * ceil(H / 4) + 2), so every 3x3 window and every 6x6 Winograd window
// reads memory without bounds checks. The M->M convolution runs block by block of tiles:
// input transform -> 36 GEMMs [tiles x M] x [M x M] -> output transform + bias + ReLU, so a
// block's transformed data stays in L2. Kernels are written once and compiled twice, for
// AVX-512 and for any x86-64 / other CPU, and chosen at run time.
#include "ddad_rt/kernels/refine_net.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "cpu/cpu_count.h"
#include "cpu/thread_pool.h"
#include "ddad_rt/kernels/winograd_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DDAD_RT_X86 1
#define DDAD_RT_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
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

namespace ddad_rt {

void RefineNetWeights::validate() const {
  const auto check = [](const Conv3x3& c, const char* name) {
    if (c.cin < 1 || c.cout < 1 || c.w.size() != static_cast<size_t>(c.cout) * c.cin * 9 ||
        c.b.size() != static_cast<size_t>(c.cout)) {
      throw std::invalid_argument(std::string("refinement network: ") + name +
                                  " has inconsistent weight shapes");
    }
  };
  check(conv1, "conv1");
  check(conv2, "conv2");
  check(conv3, "conv3");
  if (conv2.cin != conv1.cout || conv2.cout != conv2.cin || conv3.cin != conv2.cout ||
      conv3.cout != 2) {
    throw std::invalid_argument("refinement network: expected channels C -> M -> M -> 2");
  }
  if (conv1.cout % 16 != 0) {
    throw std::invalid_argument("refinement network: the hidden width must be a multiple of 16");
  }
}

namespace cpu {
namespace {

namespace wg = winograd;

//! Rows of tiles handled by one GEMM block (a multiple of the micro-kernel's 6 rows).
constexpr int kTileBlock = 48;
//! Channels handled together by the transforms (one AVX-512 register of floats).
constexpr int kLanes = 16;

struct Geometry {
  std::int64_t h, w, tiles_y, tiles_x, hp, wp;
  std::int64_t tiles() const { return tiles_y * tiles_x; }
  std::int64_t pixels_padded() const { return hp * wp; }
};

Geometry geometry(std::int64_t h, std::int64_t w) {
  Geometry g{h, w, (h + wg::kM - 1) / wg::kM, (w + wg::kM - 1) / wg::kM, 0, 0};
  g.hp = g.tiles_y * wg::kM + 2;
  g.wp = g.tiles_x * wg::kM + 2;
  return g;
}

// Packed weights, laid out for the kernels.
struct Packed {
  int cin = 0, mid = 0;
  std::vector<float> w1;  // [cin * 9][mid]: tap-major, output channels contiguous
  std::vector<float> b1;  // [mid]
  std::vector<float> u2;  // [36][mid in][mid out]: Winograd-domain weights of conv2
  std::vector<float> b2;  // [mid]
  std::vector<float> w3;  // [2][9][mid]: per output channel and tap, input channels contiguous
  float b3[2] = {0, 0};
};

Packed pack(const RefineNetWeights& wt) {
  Packed p;
  p.cin = wt.conv1.cin;
  p.mid = wt.conv1.cout;
  const int c = p.cin, m = p.mid;
  p.w1.resize(static_cast<size_t>(c) * 9 * m);
  for (int o = 0; o < m; ++o) {
    for (int i = 0; i < c; ++i) {
      for (int t = 0; t < 9; ++t) p.w1[(i * 9 + t) * m + o] = wt.conv1.w[(o * c + i) * 9 + t];
    }
  }
  p.b1 = wt.conv1.b;
  p.u2.resize(static_cast<size_t>(wg::kA2) * m * m);
  for (int o = 0; o < m; ++o) {
    for (int i = 0; i < m; ++i) {
      double g[9], u[wg::kA2];  // transform in double: the fp32 weights carry its rounding only once
      for (int t = 0; t < 9; ++t) g[t] = wt.conv2.w[(static_cast<size_t>(o) * m + i) * 9 + t];
      wg::weight_transform(g, u);
      for (int e = 0; e < wg::kA2; ++e) {
        p.u2[(static_cast<size_t>(e) * m + i) * m + o] = static_cast<float>(u[e]);
      }
    }
  }
  p.b2 = wt.conv2.b;
  p.w3.resize(2 * 9 * static_cast<size_t>(m));
  for (int o = 0; o < 2; ++o) {
    for (int i = 0; i < m; ++i) {
      for (int t = 0; t < 9; ++t) p.w3[(o * 9 + t) * m + i] = wt.conv3.w[(o * m + i) * 9 + t];
    }
    p.b3[o] = wt.conv3.b[o];
  }
  return p;
}

// ---- lane vectors -----------------------------------------------------------------------
// The kernels below are written once over a vector of kLanes floats and compiled twice: with
// VecG (plain arrays; the compiler vectorises each operation for the baseline ISA) and with
// Vec512 (one AVX-512 register). Every operation is a whole-vector one, so neither build
// relies on the compiler interchanging loops.

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
#endif

// ---- kernels -------------------------------------------------------------------------

//! Pixels computed together by conv1 and conv3: independent accumulators keep the FMA units
//! busy instead of waiting on one chain.
constexpr int kConv1Pixels = 8;
constexpr int kConv3Pixels = 4;

// maps [cin, h, w] -> pm [cin, hp, wp] with a zero border (conv1 then needs no bounds checks).
void pad_maps(const Packed& p, const Geometry& g, const float* maps, float* pm) {
  std::fill(pm, pm + static_cast<std::int64_t>(p.cin) * g.pixels_padded(), 0.0f);
  for (int i = 0; i < p.cin; ++i) {
    for (std::int64_t y = 0; y < g.h; ++y) {
      const float* src = maps + (i * g.h + y) * g.w;
      std::copy(src, src + g.w, pm + (i * g.hp + y + 1) * g.wp + 1);
    }
  }
}

// Written once over the lane-vector type V, always inlined into the ISA-specific wrappers.
// conv1 + bias + ReLU of P pixels from x0 of row y, channels [c0, c0 + kLanes).
template <typename V, int P>
DDAD_RT_INLINE void conv1_pixels(const Packed& p, const Geometry& g, const float* pm, float* h1,
                                 std::int64_t y, std::int64_t x0, int c0) {
  const int m = p.mid;
  V acc[P];
  const V bias = V::load(p.b1.data() + c0);
  for (int q = 0; q < P; ++q) acc[q] = bias;
  for (int i = 0; i < p.cin; ++i) {
    for (int ky = 0; ky < 3; ++ky) {
      const float* row = pm + (i * g.hp + y + ky) * g.wp + x0;  // padded row y + ky - 1 + 1
      for (int kx = 0; kx < 3; ++kx) {
        const V wk = V::load(p.w1.data() + (i * 9 + ky * 3 + kx) * m + c0);
        for (int q = 0; q < P; ++q) acc[q] = fma(V(row[q + kx]), wk, acc[q]);
      }
    }
  }
  for (int q = 0; q < P; ++q) relu(acc[q]).store(h1 + ((y + 1) * g.wp + (x0 + q + 1)) * m + c0);
}

// conv1 + bias + ReLU for image rows [y0, y1): padded maps -> h1 [hp, wp, mid] interior.
// Pixels go in groups of P; the last group is moved back to end at w (its overlap is
// recomputed with identical results); rows narrower than P go one pixel at a time.
template <typename V>
DDAD_RT_INLINE void conv1_rows_impl(const Packed& p, const Geometry& g, const float* pm,
                                    float* h1, std::int64_t y0, std::int64_t y1) {
  for (std::int64_t y = y0; y < y1; ++y) {
    for (int c0 = 0; c0 < p.mid; c0 += kLanes) {
      if (g.w < kConv1Pixels) {
        for (std::int64_t x = 0; x < g.w; ++x) conv1_pixels<V, 1>(p, g, pm, h1, y, x, c0);
        continue;
      }
      for (std::int64_t x0 = 0; x0 < g.w; x0 += kConv1Pixels) {
        conv1_pixels<V, kConv1Pixels>(p, g, pm, h1, y, std::min<std::int64_t>(x0, g.w - kConv1Pixels), c0);
      }
    }
  }
}

// Winograd input transform of tiles [t0, t0 + nt) of h1 -> v [36][nt][mid].
template <typename V>
DDAD_RT_INLINE void input_transform_impl(const Packed& p, const Geometry& g, const float* h1,
                                         std::int64_t t0, int nt, float* v) {
  const int m = p.mid;
  for (int b = 0; b < nt; ++b) {
    const std::int64_t t = t0 + b;
    const std::int64_t ty = t / g.tiles_x, tx = t % g.tiles_x;
    const float* base = h1 + (ty * wg::kM * g.wp + tx * wg::kM) * m;
    for (int c0 = 0; c0 < m; c0 += kLanes) {
      V tmp[wg::kA][wg::kA];
      for (int j = 0; j < wg::kA; ++j) {  // columns: B^T d
        V d[wg::kA], o[wg::kA];
        for (int i = 0; i < wg::kA; ++i) d[i] = V::load(base + (i * g.wp + j) * m + c0);
        wg::input_1d(d, o);
        for (int i = 0; i < wg::kA; ++i) tmp[i][j] = o[i];
      }
      for (int i = 0; i < wg::kA; ++i) {  // rows: (B^T d) B
        V o[wg::kA];
        wg::input_1d(tmp[i], o);
        for (int j = 0; j < wg::kA; ++j) {
          o[j].store(v + (static_cast<std::int64_t>(i * wg::kA + j) * nt + b) * m + c0);
        }
      }
    }
  }
}

// Winograd output transform of tiles [t0, t0 + nt): mm [36][nt][mid] -> h2 interior
// (+ bias, ReLU; pixels outside the image are left at zero).
template <typename V>
DDAD_RT_INLINE void output_transform_impl(const Packed& p, const Geometry& g, const float* mm,
                                          std::int64_t t0, int nt, float* h2) {
  const int m = p.mid;
  for (int b = 0; b < nt; ++b) {
    const std::int64_t t = t0 + b;
    const std::int64_t ty = t / g.tiles_x, tx = t % g.tiles_x;
    for (int c0 = 0; c0 < m; c0 += kLanes) {
      V tmp[wg::kM][wg::kA];
      for (int j = 0; j < wg::kA; ++j) {  // columns: A^T m
        V d[wg::kA], o[wg::kM];
        for (int i = 0; i < wg::kA; ++i) {
          d[i] = V::load(mm + (static_cast<std::int64_t>(i * wg::kA + j) * nt + b) * m + c0);
        }
        wg::output_1d(d, o);
        for (int i = 0; i < wg::kM; ++i) tmp[i][j] = o[i];
      }
      const V bias = V::load(p.b2.data() + c0);
      for (int i = 0; i < wg::kM; ++i) {  // rows: (A^T m) A
        const std::int64_t y = ty * wg::kM + i;
        if (y >= g.h) break;
        V o[wg::kM];
        wg::output_1d(tmp[i], o);
        for (int j = 0; j < wg::kM; ++j) {
          const std::int64_t x = tx * wg::kM + j;
          if (x >= g.w) break;
          relu(o[j] + bias).store(h2 + ((y + 1) * g.wp + (x + 1)) * m + c0);
        }
      }
    }
  }
}

// conv3 + bias of P pixels from x0 of row y: both output channels, P pixels at once.
template <typename V, int P>
DDAD_RT_INLINE void conv3_pixels(const Packed& p, const Geometry& g, const float* h2,
                                 float* logits, std::int64_t y, std::int64_t x0) {
  const int m = p.mid;
  V acc0[P], acc1[P];
  for (int q = 0; q < P; ++q) acc0[q] = acc1[q] = V(0.0f);
  for (int ky = 0; ky < 3; ++ky) {
    for (int kx = 0; kx < 3; ++kx) {
      const float* in = h2 + ((y + ky) * g.wp + (x0 + kx)) * m;
      const float* w0 = p.w3.data() + (ky * 3 + kx) * m;
      const float* w1 = p.w3.data() + (9 + ky * 3 + kx) * m;
      for (int c0 = 0; c0 < m; c0 += kLanes) {
        const V a = V::load(w0 + c0), b = V::load(w1 + c0);
        for (int q = 0; q < P; ++q) {
          const V x = V::load(in + q * m + c0);
          acc0[q] = fma(x, a, acc0[q]);
          acc1[q] = fma(x, b, acc1[q]);
        }
      }
    }
  }
  for (int q = 0; q < P; ++q) {
    logits[y * g.w + x0 + q] = p.b3[0] + acc0[q].sum();
    logits[(g.h + y) * g.w + x0 + q] = p.b3[1] + acc1[q].sum();
  }
}

// conv3 + bias for image rows [y0, y1): h2 [hp, wp, mid] -> logits [2, h, w].
template <typename V>
DDAD_RT_INLINE void conv3_rows_impl(const Packed& p, const Geometry& g, const float* h2,
                                    float* logits, std::int64_t y0, std::int64_t y1) {
  for (std::int64_t y = y0; y < y1; ++y) {
    if (g.w < kConv3Pixels) {
      for (std::int64_t x = 0; x < g.w; ++x) conv3_pixels<V, 1>(p, g, h2, logits, y, x);
      continue;
    }
    for (std::int64_t x0 = 0; x0 < g.w; x0 += kConv3Pixels) {
      conv3_pixels<V, kConv3Pixels>(p, g, h2, logits, y, std::min<std::int64_t>(x0, g.w - kConv3Pixels));
    }
  }
}

// C [rows x n] = A [rows x k] * B [k x n], all row-major, leading dimensions k / n / n.
DDAD_RT_INLINE void gemm_generic_impl(const float* a, const float* b, float* c, int rows, int k,
                                      int n) {
  for (int r = 0; r < rows; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    for (int j = 0; j < n; ++j) cr[j] = 0.0f;
    for (int q = 0; q < k; ++q) {
      const float av = a[static_cast<std::int64_t>(r) * k + q];
      const float* bq = b + static_cast<std::int64_t>(q) * n;
      for (int j = 0; j < n; ++j) cr[j] += av * bq[j];
    }
  }
}

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
void gemm_generic(const float* a, const float* b, float* c, int rows, int k, int n) {
  gemm_generic_impl(a, b, c, rows, k, n);
}

#if DDAD_RT_X86
// ---- AVX-512 build -------------------------------------------------------------------
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

// MR rows x 64 columns of C, accumulated over k in 24 registers.
template <int MR>
DDAD_RT_AVX512 DDAD_RT_INLINE void micro_64(const float* a, const float* b, float* c, int k,
                                            int n) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int q = 0; q < k; ++q) {
    const float* bq = b + static_cast<std::int64_t>(q) * n;
    const __m512 b0 = _mm512_loadu_ps(bq), b1 = _mm512_loadu_ps(bq + 16);
    const __m512 b2 = _mm512_loadu_ps(bq + 32), b3 = _mm512_loadu_ps(bq + 48);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[static_cast<std::int64_t>(r) * k + q]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + static_cast<std::int64_t>(r) * n;
    _mm512_storeu_ps(cr, acc[r][0]);
    _mm512_storeu_ps(cr + 16, acc[r][1]);
    _mm512_storeu_ps(cr + 32, acc[r][2]);
    _mm512_storeu_ps(cr + 48, acc[r][3]);
  }
}

DDAD_RT_AVX512 void gemm_avx512(const float* a, const float* b, float* c, int rows, int k, int n) {
  if (n % 64 != 0) {
    gemm_generic_impl(a, b, c, rows, k, n);
    return;
  }
  for (int j0 = 0; j0 < n; j0 += 64) {  // a 64-column panel of B stays in L1 over all rows
    int r = 0;
    for (; r + 6 <= rows; r += 6) {
      micro_64<6>(a + static_cast<std::int64_t>(r) * k, b + j0, c + static_cast<std::int64_t>(r) * n + j0, k, n);
    }
    const float* ar = a + static_cast<std::int64_t>(r) * k;
    float* cr = c + static_cast<std::int64_t>(r) * n + j0;
    switch (rows - r) {
      case 5: micro_64<5>(ar, b + j0, cr, k, n); break;
      case 4: micro_64<4>(ar, b + j0, cr, k, n); break;
      case 3: micro_64<3>(ar, b + j0, cr, k, n); break;
      case 2: micro_64<2>(ar, b + j0, cr, k, n); break;
      case 1: micro_64<1>(ar, b + j0, cr, k, n); break;
      default: break;
    }
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

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

// Buffers of one run: hidden activations per image slot, Winograd blocks per thread.
struct Workspace {
  Geometry g{};
  int mid = 0;
  std::vector<std::vector<float>> h1, h2;  // per image slot: [hp * wp * mid], zero border
  std::vector<std::vector<float>> pm;      // per image slot: padded input maps [cin * hp * wp]
  std::vector<std::vector<float>> v, mm;   // per thread: [36 * kTileBlock * mid]

  void prepare(const Geometry& geo, int cin, int m, int slots, int threads) {
    if (geo.h != g.h || geo.w != g.w || m != mid) {
      h1.clear();
      h2.clear();
      g = geo;
      mid = m;
    }
    const size_t act = static_cast<size_t>(g.pixels_padded()) * m;
    while (static_cast<int>(h1.size()) < slots) {
      h1.emplace_back(act, 0.0f);
      h2.emplace_back(act, 0.0f);
    }
    pm.resize(h1.size());
    for (auto& buf : pm) buf.resize(static_cast<size_t>(g.pixels_padded()) * cin);
    const size_t blk = static_cast<size_t>(wg::kA2) * kTileBlock * m;
    while (static_cast<int>(v.size()) < threads) {
      v.emplace_back(blk);
      mm.emplace_back(blk);
    }
  }
};

}  // namespace

struct RefineNet::Impl {
  Packed p;
  Kernels k;
  std::shared_ptr<ThreadPool> pool;
  std::mutex spare_mutex;
  std::vector<std::unique_ptr<Workspace>> spare;  // workspaces of finished runs, for reuse

  std::unique_ptr<Workspace> take_workspace() {
    std::lock_guard<std::mutex> lock(spare_mutex);
    if (spare.empty()) return std::make_unique<Workspace>();
    std::unique_ptr<Workspace> ws = std::move(spare.back());
    spare.pop_back();
    return ws;
  }
  void give_back(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> lock(spare_mutex);
    spare.push_back(std::move(ws));
  }

  // The M->M convolution of tiles [t0, t0 + nt) of one image.
  void conv2_block(const Geometry& g, const float* h1, float* h2, std::int64_t t0, int nt,
                   float* v, float* mm) const {
    const int m = p.mid;
    k.input_transform(p, g, h1, t0, nt, v);
    for (int e = 0; e < wg::kA2; ++e) {
      const std::int64_t off = static_cast<std::int64_t>(e) * nt * m;
      k.gemm(v + off, p.u2.data() + static_cast<std::int64_t>(e) * m * m, mm + off, nt, m, m);
    }
    k.output_transform(p, g, mm, t0, nt, h2);
  }

  void image(const Geometry& g, const float* maps, float* logits, float* pm, float* h1,
             float* h2, float* v, float* mm) const {
    pad_maps(p, g, maps, pm);
    k.conv1_rows(p, g, pm, h1, 0, g.h);
    for (std::int64_t t0 = 0; t0 < g.tiles(); t0 += kTileBlock) {
      conv2_block(g, h1, h2, t0, static_cast<int>(std::min<std::int64_t>(kTileBlock, g.tiles() - t0)), v, mm);
    }
    k.conv3_rows(p, g, h2, logits, 0, g.h);
  }
};

RefineNet::RefineNet(RefineNetWeights weights, int threads, const std::string& isa)
    : RefineNet(std::move(weights), std::make_shared<ThreadPool>(resolve_threads(threads)), isa) {}

RefineNet::RefineNet(RefineNetWeights weights, std::shared_ptr<ThreadPool> pool,
                     const std::string& isa)
    : impl_(std::make_unique<Impl>()) {
  weights.validate();
  impl_->p = pack(weights);
  if (isa != "auto" && isa != "generic") {
    throw std::invalid_argument("RefineNet isa must be 'auto' or 'generic', got '" + isa + "'");
  }
  impl_->k = isa == "generic" ? generic_kernels() : choose_kernels(impl_->p.mid);
  if (!pool) throw std::invalid_argument("RefineNet needs a thread pool");
  impl_->pool = std::move(pool);
}

RefineNet::~RefineNet() = default;

std::string RefineNet::isa() { return choose_kernels(kLanes).isa; }

std::string RefineNet::kernels() const { return impl_->k.isa; }

void RefineNet::run(const float* maps, std::int64_t n, std::int64_t h, std::int64_t w,
                    float* logits) const {
  Impl& s = *impl_;
  const Geometry g = geometry(h, w);
  const std::int64_t in_stride = static_cast<std::int64_t>(s.p.cin) * h * w;
  const std::int64_t out_stride = 2 * h * w;
  // The workspace goes back to the spare list however run() ends.
  struct Lease {
    Impl& s;
    std::unique_ptr<Workspace> ws;
    ~Lease() { s.give_back(std::move(ws)); }
  } lease{s, s.take_workspace()};
  Workspace& ws = *lease.ws;
  // A concurrent caller that finds the pool busy runs on its own thread.
  std::unique_lock<std::mutex> claim = s.pool->try_claim();
  if (!claim.owns_lock()) {
    ws.prepare(g, s.p.cin, s.p.mid, 1, 1);
    for (std::int64_t i = 0; i < n; ++i) {
      s.image(g, maps + i * in_stride, logits + i * out_stride, ws.pm[0].data(), ws.h1[0].data(),
              ws.h2[0].data(), ws.v[0].data(), ws.mm[0].data());
    }
    return;
  }
  ThreadPool& pool = *s.pool;
  const int threads = pool.size();
  if (n >= threads) {
    // Whole images per thread: no synchronisation inside an image.
    ws.prepare(g, s.p.cin, s.p.mid, threads, threads);
    pool.parallel_for(n, [&](std::int64_t i, int t) {
      s.image(g, maps + i * in_stride, logits + i * out_stride, ws.pm[t].data(), ws.h1[t].data(), ws.h2[t].data(),
              ws.v[t].data(), ws.mm[t].data());
    });
    return;
  }
  // Fewer images than threads (e.g. one image, two threads): split each layer.
  ws.prepare(g, s.p.cin, s.p.mid, 1, threads);
  float* pm = ws.pm[0].data();
  float* h1 = ws.h1[0].data();
  float* h2 = ws.h2[0].data();
  const std::int64_t row_chunks = std::min<std::int64_t>(g.h, 4 * threads);
  const std::int64_t blocks = (g.tiles() + kTileBlock - 1) / kTileBlock;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* in = maps + i * in_stride;
    float* out = logits + i * out_stride;
    pad_maps(s.p, g, in, pm);
    pool.parallel_for(row_chunks, [&](std::int64_t r, int) {
      s.k.conv1_rows(s.p, g, pm, h1, r * g.h / row_chunks, (r + 1) * g.h / row_chunks);
    });
    pool.parallel_for(blocks, [&](std::int64_t b, int t) {
      const std::int64_t t0 = b * kTileBlock;
      s.conv2_block(g, h1, h2, t0, static_cast<int>(std::min<std::int64_t>(kTileBlock, g.tiles() - t0)),
                    ws.v[t].data(), ws.mm[t].data());
    });
    pool.parallel_for(row_chunks, [&](std::int64_t r, int) {
      s.k.conv3_rows(s.p, g, h2, out, r * g.h / row_chunks, (r + 1) * g.h / row_chunks);
    });
  }
}

}  // namespace cpu
}  // namespace ddad_rt
