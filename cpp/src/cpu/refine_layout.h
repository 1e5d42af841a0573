// How the CPU refinement network lays out its data: the image geometry padded to whole
// Winograd tiles with a one-pixel zero border, and the weights packed for the kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "ddad_rt/kernels/refine_net.h"
#include "ddad_rt/kernels/winograd_math.h"

namespace ddad_rt::cpu {

namespace wg = winograd;

//! Rows of tiles handled by one GEMM block (a multiple of the micro-kernel's 6 rows).
constexpr int kTileBlock = 48;

struct Geometry {
  std::int64_t h, w, tiles_y, tiles_x, hp, wp;
  std::int64_t tiles() const { return tiles_y * tiles_x; }
  std::int64_t pixels_padded() const { return hp * wp; }
};

inline Geometry geometry(std::int64_t h, std::int64_t w) {
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

//! The weights of `wt` in the kernels' layouts (conv2 in the Winograd domain, transformed in
//! double so the fp32 weights carry its rounding once).
Packed pack(const RefineNetWeights& wt);

}  // namespace ddad_rt::cpu
