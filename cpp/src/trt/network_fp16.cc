#include "trt/network_fp16.h"

#if NV_TENSORRT_MAJOR >= 11

#include <string>

namespace ddad_rt::trt {
namespace {

namespace nv = nvinfer1;

template <typename Layer, typename Get, typename Set>
bool convert_weights(Layer* layer, Fp16Weights& weights, Get get, Set set) {
  nv::Weights w = (layer->*get)();
  if (!weights.convert(w)) return false;
  (layer->*set)(w);
  return true;
}

// Kernel and bias of a (de)convolution. A convolution without bias carries empty fp32 bias
// weights; they must take the kernel's type, unless the bias is an input tensor (input 2).
template <typename Conv>
void convert_conv(Conv* c, Fp16Weights& weights) {
  if (!convert_weights(c, weights, &Conv::getKernelWeights, &Conv::setKernelWeights)) return;
  if (!convert_weights(c, weights, &Conv::getBiasWeights, &Conv::setBiasWeights) &&
      c->getBiasWeights().count == 0 && (c->getNbInputs() < 3 || c->getInput(2) == nullptr)) {
    c->setBiasWeights(nv::Weights{nv::DataType::kHALF, nullptr, 0});
  }
}

// Every layer but `except` that reads `from` reads `to` instead.
void redirect_consumers(nv::INetworkDefinition& net, nv::ITensor* from, nv::ITensor* to,
                        const nv::ILayer* except) {
  for (std::int32_t l = 0; l < net.getNbLayers(); ++l) {
    nv::ILayer* layer = net.getLayer(l);
    if (layer == except) continue;
    for (std::int32_t k = 0; k < layer->getNbInputs(); ++k) {
      if (layer->getInput(k) == from) layer->setInput(k, *to);
    }
  }
}

}  // namespace

void convert_network_to_fp16(nv::INetworkDefinition& net, Fp16Weights& weights) {
  std::vector<nv::IScaleLayer*> scales;
  const std::int32_t original_layers = net.getNbLayers();
  for (std::int32_t i = 0; i < original_layers; ++i) {
    nv::ILayer* layer = net.getLayer(i);
    switch (layer->getType()) {
      case nv::LayerType::kCONSTANT: {
        auto* c = static_cast<nv::IConstantLayer*>(layer);
        convert_weights(c, weights, &nv::IConstantLayer::getWeights, &nv::IConstantLayer::setWeights);
        break;
      }
      case nv::LayerType::kCONVOLUTION: {
        auto* c = static_cast<nv::IConvolutionLayer*>(layer);
        convert_conv(c, weights);
        break;
      }
      case nv::LayerType::kDECONVOLUTION: {
        auto* c = static_cast<nv::IDeconvolutionLayer*>(layer);
        convert_conv(c, weights);
        break;
      }
      case nv::LayerType::kSCALE:
        // Shift, scale and power must share one type, and the parser leaves some empty (typed
        // fp32): keep the layer in fp32 between two casts instead of converting its weights.
        scales.push_back(static_cast<nv::IScaleLayer*>(layer));
        break;
      default:
        break;
    }
  }
  for (nv::IScaleLayer* scale : scales) {
    nv::ICastLayer* in = net.addCast(*scale->getInput(0), nv::DataType::kFLOAT);
    scale->setInput(0, *in->getOutput(0));
    nv::ITensor* out = scale->getOutput(0);
    nv::ICastLayer* back = net.addCast(*out, nv::DataType::kHALF);
    redirect_consumers(net, out, back->getOutput(0), back);
  }
  // Inputs: fp32 in, cast to fp16 for every consumer.
  for (std::int32_t i = 0; i < net.getNbInputs(); ++i) {
    nv::ITensor* in = net.getInput(i);
    if (in->getType() != nv::DataType::kFLOAT) continue;
    nv::ICastLayer* cast = net.addCast(*in, nv::DataType::kHALF);
    redirect_consumers(net, in, cast->getOutput(0), cast);
  }
  // Outputs: cast back to fp32 under the original names.
  std::vector<nv::ITensor*> outputs;
  for (std::int32_t i = 0; i < net.getNbOutputs(); ++i) outputs.push_back(net.getOutput(i));
  for (nv::ITensor* out : outputs) {
    const std::string name = out->getName();
    net.unmarkOutput(*out);
    out->setName((name + "_fp16").c_str());
    nv::ICastLayer* cast = net.addCast(*out, nv::DataType::kFLOAT);
    cast->getOutput(0)->setName(name.c_str());
    net.markOutput(*cast->getOutput(0));
  }
}

}  // namespace ddad_rt::trt

#endif
