#include "input.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "ddad_rt/kernels/discrepancy_math.h"

namespace ddad_rt {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kUInt8: return "uint8";
    case DType::kUInt16: return "uint16";
    case DType::kFloat32: return "float32";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kUInt8: return 1;
    case DType::kUInt16: return 2;
    case DType::kFloat32: return 4;
  }
  return 0;
}

void validate_images(const ImageBatch& images, std::int64_t height, std::int64_t width) {
  if (images.n <= 0) {
    throw std::invalid_argument(
        "empty batch: images has 0 images; pass an array of shape (N, H, W) or (N, 1, H, W) "
        "with N >= 1");
  }
  if (images.height != height || images.width != width) {
    std::ostringstream msg;
    msg << "image size " << images.height << "x" << images.width << " does not match the model's "
        << height << "x" << width
        << "; resize with ddad_rt.preprocess.load_image(path, size=" << height
        << ") or ddad_rt.preprocess.to_model_input(array, size=" << height << ")";
    throw std::invalid_argument(msg.str());
  }
  if (images.data == nullptr) throw std::invalid_argument("images has no data");
  if (images.dtype != DType::kFloat32) return;  // every integer value is in range
  const std::int64_t hw = height * width;
  const float* p = static_cast<const float*>(images.data);
  for (std::int64_t i = 0; i < images.n; ++i) {
    const float* img = p + i * hw;
    bool bad = false;
    for (std::int64_t j = 0; j < hw; ++j) {
      // One branch-free test per pixel; NaN fails both comparisons.
      bad |= !(img[j] >= 0.f && img[j] <= 1.f);
    }
    if (!bad) continue;
    bool has_nan = false;
    float lo = INFINITY, hi = -INFINITY;
    for (std::int64_t j = 0; j < hw; ++j) {
      if (std::isnan(img[j])) {
        has_nan = true;
      } else {
        lo = std::fmin(lo, img[j]);
        hi = std::fmax(hi, img[j]);
      }
    }
    std::ostringstream msg;
    msg << "images[" << i << "] ";
    if (has_nan) {
      msg << "contains NaN; fix or drop that image";
    } else {
      msg << "has float values outside [0, 1] (min " << lo << ", max " << hi
          << "); float32 input must be scaled to [0, 1] - or pass uint8 (0-255) or uint16 "
             "(0-65535) arrays, or use ddad_rt.preprocess to load files";
    }
    throw std::invalid_argument(msg.str());
  }
}

namespace {

template <typename T>
void normalize_typed(const T* src, std::int64_t count, float full_scale, float mean, float std,
                     float* out) {
  for (std::int64_t j = 0; j < count; ++j) {
    out[j] = normalize_pixel(static_cast<float>(src[j]), full_scale, mean, std);
  }
}

}  // namespace

void normalize_images(const ImageBatch& images, std::int64_t start, std::int64_t count,
                      float mean, float std, float* out) {
  const std::int64_t hw = images.height * images.width;
  const std::int64_t offset = start * hw;
  const std::int64_t total = count * hw;
  switch (images.dtype) {
    case DType::kUInt8:
      normalize_typed(static_cast<const std::uint8_t*>(images.data) + offset, total, 255.f, mean,
                      std, out);
      break;
    case DType::kUInt16:
      normalize_typed(static_cast<const std::uint16_t*>(images.data) + offset, total, 65535.f,
                      mean, std, out);
      break;
    case DType::kFloat32:
      normalize_typed(static_cast<const float*>(images.data) + offset, total, 1.f, mean, std, out);
      break;
  }
}

}  // namespace ddad_rt
