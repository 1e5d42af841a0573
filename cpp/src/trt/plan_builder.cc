#include "trt/plan_builder.h"

#include "batching.h"
#include "ddad_rt/errors.h"
#include "trt/network_fp16.h"

namespace ddad_rt::trt {

nv::Dims4 batch_dims(const nv::Dims& graph_dims, std::int64_t batch, std::int64_t channels,
                     std::int64_t height, std::int64_t width) {
  // The exported graphs have a dynamic batch and static C, H, W; fill what is dynamic.
  const auto pick = [&](int i, std::int64_t fallback) {
    return graph_dims.nbDims > i && graph_dims.d[i] > 0 ? graph_dims.d[i] : fallback;
  };
  return nv::Dims4(batch, pick(1, channels), pick(2, height), pick(3, width));
}


std::string build_plan(const BuildRequest& r) {
  const auto fail = [&](const std::string& what) -> EngineError {
    return EngineError("TensorRT could not build the bundle's " + r.role + " graph: " + what +
                       ": " + logger().take_errors());
  };
  logger().clear();
  // Declared first, destroyed last: a timing cache must outlive the builders that use it.
  TrtPtr<nv::ITimingCache> timing;
  TrtPtr<nv::IBuilder> builder(r.api->builder());
  if (!builder) throw fail("createInferBuilder failed");
  TrtPtr<nv::INetworkDefinition> network(builder->createNetworkV2(0));
  if (!network) throw fail("createNetworkV2 failed");
  TrtPtr<nvonnxparser::IParser> parser(r.api->parser(*network));
  if (!parser) throw fail("createParser failed");
  if (!parser->parse(r.onnx->data(), r.onnx->size())) {
    std::string errors;
    for (std::int32_t i = 0; i < parser->getNbErrors(); ++i) {
      errors += (errors.empty() ? "" : " | ") + std::string(parser->getError(i)->desc());
    }
    throw fail("the ONNX parser refused it (" + errors + ")");
  }
  if (network->getNbInputs() != 1) {
    throw EngineError("the bundle's " + r.role + " graph must have exactly one input");
  }
  nv::ITensor* input = network->getInput(0);
  const nv::Dims graph_dims = input->getDimensions();
  TrtPtr<nv::IBuilderConfig> config(builder->createBuilderConfig());
  // One identical profile per slot: contexts of a dynamic-shape engine that run at the same
  // time must each use their own profile. (The builder owns the profiles.)
  const BatchProfile range = batch_profile(r.max_batch);
  const char* name = input->getName();
  for (int i = 0; i < r.profiles; ++i) {
    nv::IOptimizationProfile* profile = builder->createOptimizationProfile();
    profile->setDimensions(name, nv::OptProfileSelector::kMIN,
                           batch_dims(graph_dims, range.min, r.channels, r.height, r.width));
    profile->setDimensions(name, nv::OptProfileSelector::kOPT,
                           batch_dims(graph_dims, range.opt, r.channels, r.height, r.width));
    profile->setDimensions(name, nv::OptProfileSelector::kMAX,
                           batch_dims(graph_dims, range.max, r.channels, r.height, r.width));
    if (config->addOptimizationProfile(profile) != i) throw fail("addOptimizationProfile failed");
  }
  // fp32 means fp32: TF32 (on by default) rounds matmul/conv inputs to 10-bit mantissas.
  config->clearFlag(nv::BuilderFlag::kTF32);
#if NV_TENSORRT_MAJOR >= 11
  Fp16Weights fp16_weights;
  if (r.precision == "fp16") convert_network_to_fp16(*network, fp16_weights);
#else
  if (r.precision == "fp16") config->setFlag(nv::BuilderFlag::kFP16);
#endif
  timing.reset(config->createTimingCache(r.timing_cache->data(), r.timing_cache->size()));
  if (!timing || !config->setTimingCache(*timing, /*ignoreMismatch=*/false)) {
    // Unreadable or from another device: start afresh rather than fail the build.
    timing.reset(config->createTimingCache(nullptr, 0));
    if (timing) config->setTimingCache(*timing, false);
    logger().clear();
  }
  TrtPtr<nv::IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
  if (!plan || plan->size() == 0) throw fail("buildSerializedNetwork failed");
  if (const nv::ITimingCache* updated = config->getTimingCache()) {
    if (TrtPtr<nv::IHostMemory> bytes{updated->serialize()}) {
      r.timing_cache->assign(static_cast<const char*>(bytes->data()), bytes->size());
    }
  }
  return std::string(static_cast<const char*>(plan->data()), plan->size());
}

}  // namespace ddad_rt::trt
