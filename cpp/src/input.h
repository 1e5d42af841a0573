// Checking and normalising the caller's images before they reach a backend.
#pragma once

#include <cstdint>

#include "ddad_rt/tensor.h"

namespace ddad_rt {

//! Throws std::invalid_argument naming the problem and the fix: empty batch, wrong size,
//! float values outside [0, 1] or not finite.
void validate_images(const ImageBatch& images, std::int64_t height, std::int64_t width);

//! Writes images[start, start + count) to `out` [count, H*W] in network units:
//! (v / full_scale - mean) / std.
void normalize_images(const ImageBatch& images, std::int64_t start, std::int64_t count,
                      float mean, float std, float* out);

}  // namespace ddad_rt
