// A non-owning view of a batch of single-channel images, as handed to Engine::score.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ddad_rt/export.h"

namespace ddad_rt {

//! Pixel types the engine accepts: uint8 (0-255), uint16 (0-65535), float32 in [0, 1].
enum class DType { kUInt8, kUInt16, kFloat32 };

//! Name of a dtype as NumPy spells it.
DDAD_RT_API const char* dtype_name(DType dtype);

//! Bytes per element of a dtype.
DDAD_RT_API std::size_t dtype_size(DType dtype);

//! C-contiguous [n, height, width] images; the caller keeps the memory alive during the call.
struct ImageBatch {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  std::int64_t n = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
};

}  // namespace ddad_rt
