// Running a parsed network in fp16 on TensorRT 11, whose networks are strongly typed (no FP16
// builder flag): TensorRT 10 builds use BuilderFlag::kFP16 instead.
#pragma once

#include <NvInfer.h>

#if NV_TENSORRT_MAJOR >= 11

#include <cstdint>
#include <list>
#include <vector>

#include "trt/half.h"

namespace ddad_rt::trt {

// TensorRT 11 networks are strongly typed: precision follows the tensors' types and there is
// no FP16 builder flag. Run the network in fp16 by giving every fp32 weight an fp16 copy and
// casting the input to fp16 and the outputs back to fp32 (the engine's I/O stays fp32).
class Fp16Weights {
 public:
  // True (and `w` replaced by an fp16 copy) for non-empty fp32 weights; other weights are
  // left alone, and so is the layer: setting empty weights can mean "from input 1".
  bool convert(nvinfer1::Weights& w) {
    if (w.type != nvinfer1::DataType::kFLOAT || w.count == 0 || w.values == nullptr) return false;
    std::vector<std::uint16_t>& out = store_.emplace_back(static_cast<size_t>(w.count));
    const float* in = static_cast<const float*>(w.values);
    for (std::int64_t i = 0; i < w.count; ++i) out[i] = float_to_half_bits(in[i]);
    w = nvinfer1::Weights{nvinfer1::DataType::kHALF, out.data(), w.count};
    return true;
  }

 private:
  std::list<std::vector<std::uint16_t>> store_;  // alive until the engine is built
};

//! Every fp32 weight to an fp16 copy (kept in `weights` until the engine is built), Scale
//! layers kept fp32 between casts, the input cast to fp16 and the outputs back to fp32 under
//! their names: the engine's I/O stays fp32.
void convert_network_to_fp16(nvinfer1::INetworkDefinition& net, Fp16Weights& weights);

}  // namespace ddad_rt::trt

#endif
