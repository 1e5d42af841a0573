// The work of one GPU thread in the fused kernels, written as __host__ __device__ functions
// over plain pointers: the CUDA kernels call them for their own (image, tile, thread), and
// host_emulation.h calls them for every (image, tile, thread) in the same order, so the CPU
// tests check the kernels' indexing, map layout and reduction order without a GPU.
//
// Layout: a grid of (tiles per image, images) blocks of kBlockThreads threads. Thread j of
// tile t handles pixels t * kTilePixels + j + r * kBlockThreads, r = 0..kPixelsPerThread-1
// (coalesced), and sums their values in that order; the block adds its threads' sums in a
// fixed binary tree, and a last kernel adds the tiles' partial sums in tile order (double).
// The order never depends on scheduling, so scores are bit-identical from run to run.
#pragma once

#include <cstdint>

#include "ddad_rt/kernels/discrepancy_math.h"

namespace ddad_rt::cuda {

constexpr int kBlockThreads = 256;
constexpr int kPixelsPerThread = 4;
constexpr int kTilePixels = kBlockThreads * kPixelsPerThread;

//! Tiles (blocks) per image.
DDAD_HD int tiles_per_image(std::int64_t hw) {
  return static_cast<int>((hw + kTilePixels - 1) / kTilePixels);
}

//! Pixel types of the raw input, as ddad_rt::DType.
enum class RawType : int { kUInt8 = 0, kUInt16 = 1, kFloat32 = 2 };

//! Normalisation of raw images into network units: x = (v / full_scale - mean) / std.
struct NormalizeParams {
  const void* raw = nullptr;  //!< [count] pixels of type `type`
  RawType type = RawType::kFloat32;
  float mean = 0.5f;
  float std = 0.5f;
  std::int64_t count = 0;     //!< n * hw
  float* x = nullptr;         //!< [count]
};

DDAD_HD void normalize_element(const NormalizeParams& a, std::int64_t idx) {
  switch (a.type) {
    case RawType::kUInt8:
      a.x[idx] = normalize_pixel(static_cast<float>(static_cast<const std::uint8_t*>(a.raw)[idx]),
                                 255.f, a.mean, a.std);
      break;
    case RawType::kUInt16:
      a.x[idx] = normalize_pixel(
          static_cast<float>(static_cast<const std::uint16_t*>(a.raw)[idx]), 65535.f, a.mean,
          a.std);
      break;
    case RawType::kFloat32:
      a.x[idx] = normalize_pixel(static_cast<const float*>(a.raw)[idx], 1.f, a.mean, a.std);
      break;
  }
}

//! The fused discrepancy kernel's inputs and outputs (device pointers), for n images.
struct DiscrepancyParams {
  const float* x = nullptr;           //!< normalised input [n, hw]
  const float* udm = nullptr;         //!< [n, k, hw]
  const float* ndm = nullptr;         //!< [n, k, hw]
  const float* ndm_logvar = nullptr;  //!< AE-U: [n, k, hw]; else null
  int n = 0;
  int k = 0;
  std::int64_t hw = 0;
  float* map_rec = nullptr;    //!< [n, hw] each, or null when maps are not wanted
  float* map_intra = nullptr;
  float* map_inter = nullptr;
  float* dual_in = nullptr;    //!< R_dual's input [n, 2, hw] = (A_inter, A_intra), or null
  float* intra_in = nullptr;   //!< R_intra's input [n, hw] = A_intra, or null
  float* partials = nullptr;   //!< [3, n, tiles]: per-tile sums of rec, intra, inter
  float* score_rec = nullptr;  //!< [n]
  float* score_intra = nullptr;
  float* score_inter = nullptr;
};

//! Thread j of tile t of image i: computes its pixels' discrepancies, writes them wherever
//! they are wanted, and returns their sums (rec, intra, inter) in pixel order.
DDAD_HD void discrepancy_thread(const DiscrepancyParams& a, int i, int t, int j, float sums[3]) {
  sums[0] = sums[1] = sums[2] = 0.f;
  const std::int64_t hw = a.hw;
  const std::int64_t members = static_cast<std::int64_t>(i) * a.k * hw;
  for (int r = 0; r < kPixelsPerThread; ++r) {
    const std::int64_t p = static_cast<std::int64_t>(t) * kTilePixels + j + r * kBlockThreads;
    if (p >= hw) break;
    const std::int64_t at = static_cast<std::int64_t>(i) * hw + p;
    const PixelDiscrepancy d = discrepancy_pixel(
        a.x[at], a.udm + members + p, a.ndm + members + p,
        a.ndm_logvar ? a.ndm_logvar + members + p : nullptr, a.k, hw);
    sums[0] += d.rec;
    sums[1] += d.intra;
    sums[2] += d.inter;
    if (a.map_rec) a.map_rec[at] = d.rec;
    if (a.map_intra) a.map_intra[at] = d.intra;
    if (a.map_inter) a.map_inter[at] = d.inter;
    if (a.dual_in) {
      a.dual_in[(2 * static_cast<std::int64_t>(i)) * hw + p] = d.inter;
      a.dual_in[(2 * static_cast<std::int64_t>(i) + 1) * hw + p] = d.intra;
    }
    if (a.intra_in) a.intra_in[at] = d.intra;
  }
}

//! The refinement post-kernel's inputs and outputs (device pointers), for n images.
struct RefineParams {
  const float* logits = nullptr;  //!< [n, 2, hw]
  int n = 0;
  std::int64_t hw = 0;
  float* map = nullptr;           //!< [n, hw] refined map, or null
  float* partials = nullptr;      //!< [n, tiles]
  float* score = nullptr;         //!< [n]
};

//! Thread j of tile t of image i: refined pixels (softmax channel 1), written if wanted;
//! returns their sum in pixel order.
DDAD_HD float refine_thread(const RefineParams& a, int i, int t, int j) {
  float sum = 0.f;
  const std::int64_t hw = a.hw;
  const float* l0 = a.logits + 2 * static_cast<std::int64_t>(i) * hw;
  const float* l1 = l0 + hw;
  for (int r = 0; r < kPixelsPerThread; ++r) {
    const std::int64_t p = static_cast<std::int64_t>(t) * kTilePixels + j + r * kBlockThreads;
    if (p >= hw) break;
    const float v = refined_pixel(l0[p], l1[p]);
    sum += v;
    if (a.map) a.map[static_cast<std::int64_t>(i) * hw + p] = v;
  }
  return sum;
}

//! One step of the block's fixed reduction tree: thread j < s adds its partner's sum.
//! Steps run for s = kBlockThreads / 2, ..., 1, with a barrier between steps.
DDAD_HD void tree_step(float* sums, int j, int s) {
  if (j < s) sums[j] += sums[j + s];
}

//! The image mean from its tiles' sums, added in tile order in double.
DDAD_HD float mean_of_tiles(const float* tile_sums, int tiles, std::int64_t hw) {
  double total = 0.0;
  for (int t = 0; t < tiles; ++t) total += tile_sums[t];
  return static_cast<float>(total / static_cast<double>(hw));
}

}  // namespace ddad_rt::cuda
