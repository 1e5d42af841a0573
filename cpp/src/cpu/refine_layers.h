// The refinement network's layers on the CPU, written once over the lane-vector type V and
// always inlined into the ISA-specific wrappers (refine_kernels.cc): conv1 + ReLU, the
// Winograd F(4x4, 3x3) input and output transforms of conv2 (whose GEMMs are gemm.cc), and
// conv3.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/lane_vectors.h"
#include "cpu/refine_layout.h"

namespace ddad_rt::cpu {

//! Pixels computed together by conv1 and conv3: independent accumulators keep the FMA units
//! busy instead of waiting on one chain.
constexpr int kConv1Pixels = 8;
constexpr int kConv3Pixels = 8;

// maps [cin, h, w] -> pm [cin, hp, wp] with a zero border (conv1 then needs no bounds checks).
inline void pad_maps(const Packed& p, const Geometry& g, const float* maps, float* pm) {
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

// Winograd input transform of tiles [t0, t0 + nt) of h1 -> v [36][nt][mid], stored as T
// (float, or bf16 for the bf16 GEMM: a row's channels in pairs, as vdpbf16ps reads them).
template <typename V, typename T>
DDAD_RT_INLINE void input_transform_impl(const Packed& p, const Geometry& g, const float* h1,
                                         std::int64_t t0, int nt, T* v) {
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
          store_as(o[j], v + (static_cast<std::int64_t>(i * wg::kA + j) * nt + b) * m + c0);
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

// conv3 + bias of P pixels from x0 of row y: both output channels, P pixels at once. Per
// kernel row and channel group, the P + 2 input pixels the 3 taps of P outputs share are
// loaded once (not 3P times): 14 loads feed 24 FMAs at P = 4 instead of 18.
template <typename V, int P>
DDAD_RT_INLINE void conv3_pixels(const Packed& p, const Geometry& g, const float* h2,
                                 float* logits, std::int64_t y, std::int64_t x0) {
  const int m = p.mid;
  V acc0[P], acc1[P];
  for (int q = 0; q < P; ++q) acc0[q] = acc1[q] = V(0.0f);
  for (int ky = 0; ky < 3; ++ky) {
    const float* in = h2 + ((y + ky) * g.wp + x0) * m;
    const float* w0 = p.w3.data() + (ky * 3) * m;
    const float* w1 = p.w3.data() + (9 + ky * 3) * m;
    for (int c0 = 0; c0 < m; c0 += kLanes) {
      V x[P + 2];
      for (int q = 0; q < P + 2; ++q) x[q] = V::load(in + q * m + c0);
      for (int kx = 0; kx < 3; ++kx) {
        const V a = V::load(w0 + kx * m + c0), b = V::load(w1 + kx * m + c0);
        for (int q = 0; q < P; ++q) {
          acc0[q] = fma(x[q + kx], a, acc0[q]);
          acc1[q] = fma(x[q + kx], b, acc1[q]);
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

}  // namespace ddad_rt::cpu
