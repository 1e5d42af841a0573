// Building a TensorRT plan from one of the bundle's ONNX graphs: parse, one optimisation
// profile per execution slot, TF32 off, fp16 when asked, with a timing cache carried across
// builds.
#pragma once

#include <NvInfer.h>

#include <cstdint>
#include <string>

#include "trt/library.h"

namespace ddad_rt::trt {

// How build_plan turns a graph into a network; part of every plan's cache key. Change it
// with any change to the builder settings, so cached plans built the old way are rebuilt.
inline constexpr const char* kBuildRecipe =
    "v1: TF32 off; fp16 = BuilderFlag::kFP16 (TensorRT 10) or weights to half with Scale "
    "layers kept fp32 (TensorRT 11); one optimisation profile per slot";

//! What build_plan needs: the graph, its input shape, the batch range and precision.
struct BuildRequest {
  const Api* api;
  std::string role;
  const std::string* onnx;
  std::int64_t channels, height, width, max_batch;
  int profiles;  // identical optimisation profiles, one per concurrent slot
  std::string precision;
  std::string* timing_cache;  // in: previous cache (may be empty); out: updated
};

//! The graph's input shape at `batch`: its static C, H, W, or the given ones where dynamic.
nv::Dims4 batch_dims(const nv::Dims& graph_dims, std::int64_t batch, std::int64_t channels,
                     std::int64_t height, std::int64_t width);

//! Builds the serialized plan; throws EngineError with TensorRT's messages.
std::string build_plan(const BuildRequest& r);

}  // namespace ddad_rt::trt
