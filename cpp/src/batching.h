// How the engine cuts a caller's batch into the chunks a backend runs, and the batch range
// a GPU engine is optimised for. Pure functions, so the CPU tests check the logic the GPU
// backend relies on.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddad_rt {

//! One chunk of a batch: images [start, start + count).
struct Chunk {
  std::int64_t start = 0;
  std::int64_t count = 0;
  bool operator==(const Chunk& o) const { return start == o.start && count == o.count; }
};

//! Cuts n images into chunks of max_batch images, the last one holding the remainder, in
//! order. Full chunks keep the backend on its largest (most efficient, pre-planned) shape;
//! only the remainder runs at another size.
inline std::vector<Chunk> plan_chunks(std::int64_t n, std::int64_t max_batch) {
  if (max_batch < 1) throw std::invalid_argument("max_batch must be >= 1");
  std::vector<Chunk> chunks;
  for (std::int64_t start = 0; start < n; start += max_batch) {
    chunks.push_back({start, std::min(max_batch, n - start)});
  }
  return chunks;
}

//! The batch dimension of a TensorRT optimisation profile: every engine serves any batch
//! from 1 to max_batch, and is tuned for max_batch (throughput; batch 1 still runs at the
//! kernels chosen for it within the profile).
struct BatchProfile {
  std::int64_t min = 1;
  std::int64_t opt = 1;
  std::int64_t max = 1;
};

inline BatchProfile batch_profile(std::int64_t max_batch) {
  if (max_batch < 1) throw std::invalid_argument("max_batch must be >= 1");
  return {1, max_batch, max_batch};
}

}  // namespace ddad_rt
