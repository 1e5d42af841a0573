// The CUDA kernels of kernels.cu run on the CPU: every block and thread in order, with the
// same per-thread functions and the same reduction tree. Used by the CPU tests only; the
// numbers must match the CPU kernels and NumPy.
#pragma once

#include <vector>

#include "cuda/pipeline_math.h"

namespace ddad_rt::cuda::host {

inline void normalize(const NormalizeParams& a) {
  for (std::int64_t idx = 0; idx < a.count; ++idx) normalize_element(a, idx);
}

inline void discrepancy(const DiscrepancyParams& a) {
  const int tiles = tiles_per_image(a.hw);
  std::vector<float> shared(3 * kBlockThreads);
  for (int i = 0; i < a.n; ++i) {
    for (int t = 0; t < tiles; ++t) {
      for (int j = 0; j < kBlockThreads; ++j) {
        float sums[3];
        discrepancy_thread(a, i, t, j, sums);
        for (int c = 0; c < 3; ++c) shared[c * kBlockThreads + j] = sums[c];
      }
      for (int s = kBlockThreads / 2; s > 0; s >>= 1) {
        for (int j = 0; j < kBlockThreads; ++j) {
          for (int c = 0; c < 3; ++c) tree_step(shared.data() + c * kBlockThreads, j, s);
        }
      }
      for (int c = 0; c < 3; ++c) {
        a.partials[(static_cast<std::int64_t>(c) * a.n + i) * tiles + t] =
            shared[c * kBlockThreads];
      }
    }
  }
  float* scores[3] = {a.score_rec, a.score_intra, a.score_inter};
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < a.n; ++i) {
      scores[c][i] = mean_of_tiles(a.partials + (static_cast<std::int64_t>(c) * a.n + i) * tiles,
                                   tiles, a.hw);
    }
  }
}

inline void refine(const RefineParams& a) {
  const int tiles = tiles_per_image(a.hw);
  std::vector<float> shared(kBlockThreads);
  for (int i = 0; i < a.n; ++i) {
    for (int t = 0; t < tiles; ++t) {
      for (int j = 0; j < kBlockThreads; ++j) shared[j] = refine_thread(a, i, t, j);
      for (int s = kBlockThreads / 2; s > 0; s >>= 1) {
        for (int j = 0; j < kBlockThreads; ++j) tree_step(shared.data(), j, s);
      }
      a.partials[static_cast<std::int64_t>(i) * tiles + t] = shared[0];
    }
    a.score[i] = mean_of_tiles(a.partials + static_cast<std::int64_t>(i) * tiles, tiles, a.hw);
  }
}

}  // namespace ddad_rt::cuda::host
