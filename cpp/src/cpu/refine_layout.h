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
//! The same for the bf16 network, whose GEMMs run twice as fast: a smaller block keeps its
//! transformed tiles and products in a 1 MB L2 (R_dual at 64x64, 1 thread, AMD Zen 4:
//! 2.3-2.4 ms per image at 12 against 2.6-2.7 at 48; fp32 measured the same at both).
constexpr int kTileBlockBf16 = 12;

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
  //! The same in bf16 for the bf16 network, input channels in pairs (what one vdpbf16ps
  //! lane multiplies): [36][mid in / 2][mid out][2]. Empty in the fp32 network.
  std::vector<std::uint16_t> u2_bf16;
  std::vector<float> b2;  // [mid]
  std::vector<float> w3;  // [2][9][mid]: per output channel and tap, input channels contiguous
  float b3[2] = {0, 0};
};

//! The weights of `wt` in the kernels' layouts (conv2 in the Winograd domain, transformed in
//! double so the fp32 weights carry its rounding once).
Packed pack(const RefineNetWeights& wt);
//! Fills p.u2_bf16 from p.u2 (rounded to nearest even).
void pack_bf16(Packed& p);

}  // namespace ddad_rt::cpu
