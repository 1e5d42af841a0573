// Rewrites of a bundle's graph, applied before OpenVINO compiles it, that compute the same
// function with operations OpenVINO runs faster on the CPU. Each says, where it is defined,
// what it measured.
#pragma once

#include <cstddef>
#include <memory>

#include <openvino/core/model.hpp>

namespace ddad_rt::cpu {

class ThreadPool;

//! Dense layers followed by ReLU: the ReLU becomes max(x, 0), so OpenVINO keeps its MLAS
//! matrix-vector kernel for them (for a single image).
void keep_dense_layers_unfused(const std::shared_ptr<ov::Model>& model);

//! Each transposed convolution (kernel 4, stride 2, padding 1) with at most
//! kMaxSubpixelOutputs output channels - the decoders' last layers - becomes a 3x3
//! convolution to 4 x C_out channels followed by DepthToSpace(2). Returns how many it
//! rewrote. For fp32 networks only (see its use in openvino_networks.cc).
int transposed_convolutions_as_subpixel(const std::shared_ptr<ov::Model>& model);

//! The same layers (the decoders' last: kernel 4, stride 2, padding 1, at most
//! kMaxSubpixelOutputs outputs) computed by the engine's fp32 code (native_deconv.h), images
//! split over `pool`. Returns how many it replaced.
int transposed_convolutions_as_native(const std::shared_ptr<ov::Model>& model,
                                      const std::shared_ptr<ThreadPool>& pool);

//! Wider transposed convolutions stay as they are: for them the sub-pixel form's 2.25x
//! arithmetic (a 3x3 window where each output phase uses 2x2) costs more than it saves.
constexpr std::size_t kMaxSubpixelOutputs = 4;

}  // namespace ddad_rt::cpu
