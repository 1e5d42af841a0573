// The TensorRT backend. Per engine: one TensorRT engine per graph (built from the bundle's
// ONNX with the ONNX parser, or loaded from the on-disk cache), and a small pool of slots.
// A slot is one CUDA stream with every buffer the pipeline needs, allocated once; it serves
// one call at a time. Per batch size a slot keeps execution contexts bound to its buffers
// and, after the first call at that size, a CUDA graph of the whole pipeline - copy in,
// normalisation, ensemble, discrepancy kernel, refiners, refinement kernels, copy out - so a
// call is one memcpy into pinned memory, one graph launch and one memcpy out.
#include "trt/tensorrt_backend.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <sstream>
#include <tuple>

#include "batching.h"
#include "cuda/kernels.h"
#include "ddad_rt/errors.h"
#include "dynlib.h"
#include "gpu_health.h"
#include "input.h"
#include "trt/engine_cache.h"
#include "trt/gpu_precision.h"
#include "trt/half.h"

#if NV_TENSORRT_MAJOR < 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR < 1)
#error "ddad_rt's TensorRT backend needs TensorRT 10.1 or newer (setDeviceMemoryV2)"
#endif

namespace ddad_rt::trt {
namespace {

namespace nv = nvinfer1;
namespace fs = std::filesystem;

// ---- errors and RAII ------------------------------------------------------------------

// A failed CUDA call, with its code: the pipeline's error path tells sticky errors apart.
class CudaError : public EngineError {
 public:
  CudaError(cudaError_t code, const std::string& what) : EngineError(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

[[noreturn]] void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
  throw CudaError(e, std::string("CUDA error ") + cudaGetErrorName(e) + " (" +
                         cudaGetErrorString(e) + ") in " + expr + " at " + file + ":" +
                         std::to_string(line));
}

#define DDAD_CUDA_CHECK(expr)                                        \
  do {                                                               \
    const cudaError_t ddad_err_ = (expr);                            \
    if (ddad_err_ != cudaSuccess) cuda_fail(ddad_err_, #expr, __FILE__, __LINE__); \
  } while (0)

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
struct PinnedFree {
  void operator()(void* p) const noexcept { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const noexcept { cudaStreamDestroy(s); }
};
struct GraphDestroy {
  void operator()(cudaGraph_t g) const noexcept { cudaGraphDestroy(g); }
};
struct GraphExecDestroy {
  void operator()(cudaGraphExec_t g) const noexcept { cudaGraphExecDestroy(g); }
};
using DeviceMem = std::unique_ptr<void, DeviceFree>;
using PinnedMem = std::unique_ptr<void, PinnedFree>;
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;
using Graph = std::unique_ptr<std::remove_pointer_t<cudaGraph_t>, GraphDestroy>;
using GraphExec = std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDestroy>;

DeviceMem device_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (bytes) DDAD_CUDA_CHECK(cudaMalloc(&p, bytes));
  return DeviceMem(p);
}

PinnedMem pinned_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (bytes) DDAD_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return PinnedMem(p);
}

float* as_floats(const DeviceMem& m) { return static_cast<float*>(m.get()); }

// ---- the TensorRT libraries, opened at run time ---------------------------------------

// TensorRT keeps one logger per process: every builder and runtime gets this one. Errors are
// kept for the exception that follows a failed call; warnings print with
// DDAD_RT_TENSORRT_VERBOSE=1.
class Logger final : public nv::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      if (severity <= Severity::kERROR) {
        if (errors_.size() == 16) errors_.erase(errors_.begin());  // keep the newest
        errors_.emplace_back(msg);
      }
      if (severity <= Severity::kWARNING && verbose()) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    } catch (...) {
    }
  }

  // Forgets earlier errors: called when an operation starts, so that its exception carries
  // only its own errors.
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    errors_.clear();
  }

  // The errors logged since the last call, joined.
  std::string take_errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (const std::string& e : errors_) out += (out.empty() ? "" : " | ") + e;
    errors_.clear();
    return out.empty() ? "no error message from TensorRT (set DDAD_RT_TENSORRT_VERBOSE=1)" : out;
  }

 private:
  static bool verbose() {
    const char* v = std::getenv("DDAD_RT_TENSORRT_VERBOSE");
    return v && *v && std::strcmp(v, "0") != 0;
  }
  std::mutex mutex_;
  std::vector<std::string> errors_;
};

Logger& logger() {
  static Logger* instance = new Logger();  // never destroyed: TensorRT may log at exit
  return *instance;
}

std::string version_string(std::int64_t v) {
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." +
         std::to_string(v % 100);
}

// The entry points behind createInferBuilder, createInferRuntime and createParser (the
// headers' inline factories call these with the headers' version).
struct Api {
  std::vector<std::shared_ptr<DynLib>> libs;
  void* (*create_builder)(void* logger, std::int32_t version) = nullptr;
  void* (*create_runtime)(void* logger, std::int32_t version) = nullptr;
  void* (*create_parser)(void* network, void* logger, int version) = nullptr;
  std::string version;  // of the loaded libnvinfer
  std::string path;

  // The library reads these pointers as ILogger* and INetworkDefinition*: pass exactly those.
  static void* log_ptr() { return static_cast<nv::ILogger*>(&logger()); }
  nv::IBuilder* builder() const {
    return static_cast<nv::IBuilder*>(create_builder(log_ptr(), NV_TENSORRT_VERSION));
  }
  nv::IRuntime* runtime() const {
    return static_cast<nv::IRuntime*>(create_runtime(log_ptr(), NV_TENSORRT_VERSION));
  }
  nvonnxparser::IParser* parser(nv::INetworkDefinition& network) const {
    return static_cast<nvonnxparser::IParser*>(create_parser(
        static_cast<void*>(&network), log_ptr(), NV_ONNX_PARSER_VERSION));
  }
};

std::mutex api_mutex;
std::shared_ptr<Api> loaded_api;

// Loads both libraries; on failure returns null and says why in `problem`.
std::shared_ptr<Api> load_api(const std::vector<std::string>& dirs, std::string& problem) {
  std::lock_guard<std::mutex> lock(api_mutex);
  if (loaded_api) return loaded_api;
  const std::string major = std::to_string(NV_TENSORRT_MAJOR);
  const std::string infer_name = "libnvinfer.so." + major;
  const std::string parser_name = "libnvonnxparser.so." + major;
  auto api = std::make_shared<Api>();
  DynLibSearch infer = open_library(infer_name, dirs, /*global=*/true);
  if (!infer.lib) {
    problem = "the TensorRT " + major + " runtime is not installed: " + infer.explain(infer_name) +
              ". Install TensorRT " + major + " (pip install tensorrt-cu12 or tensorrt-cu13, the "
              "SDK tarball, or JetPack), or point DDAD_RT_TENSORRT_LIB_DIR at its lib folder";
    return nullptr;
  }
  api->libs.push_back(infer.lib);
  api->path = infer.lib->path();
  // libnvinfer opens its builder resources by name at build time; preload them from the same
  // folder so that a TensorRT outside the system library path builds too.
  const fs::path folder = fs::path(infer.lib->path()).parent_path();
  std::error_code ec;
  if (!folder.empty() && fs::is_directory(folder, ec)) {
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("libnvinfer_builder_resource", 0) == 0) {
        if (auto r = open_library(name, {folder.string()}, true).lib) api->libs.push_back(r);
      }
    }
  }
  DynLibSearch parser = open_library(parser_name, folder.empty()
                                                      ? dirs
                                                      : std::vector<std::string>{folder.string()},
                                     true);
  if (!parser.lib && !folder.empty()) parser = open_library(parser_name, dirs, true);
  if (!parser.lib) {
    problem = "TensorRT's ONNX parser is not installed: " + parser.explain(parser_name) +
              ". It ships with TensorRT (pip's tensorrt-cu* wheels, the SDK tarball) or as "
              "libnvonnxparsers" + major + " in JetPack and NVIDIA's apt repository";
    return nullptr;
  }
  api->libs.push_back(parser.lib);
  const auto sym = [&](const std::shared_ptr<DynLib>& lib, const char* name) {
    void* p = lib->symbol(name);
    if (!p) problem = lib->path() + " has no symbol " + name + ": not a TensorRT " + major + " library";
    return p;
  };
  auto lib_version = reinterpret_cast<std::int32_t (*)()>(sym(infer.lib, "getInferLibVersion"));
  api->create_builder = reinterpret_cast<void* (*)(void*, std::int32_t)>(
      sym(infer.lib, "createInferBuilder_INTERNAL"));
  api->create_runtime = reinterpret_cast<void* (*)(void*, std::int32_t)>(
      sym(infer.lib, "createInferRuntime_INTERNAL"));
  api->create_parser = reinterpret_cast<void* (*)(void*, void*, int)>(
      sym(parser.lib, "createNvOnnxParser_INTERNAL"));
  if (!lib_version || !api->create_builder || !api->create_runtime || !api->create_parser) {
    return nullptr;
  }
  const std::int32_t v = lib_version();
  api->version = version_string(v);
  // TensorRT promises that a newer minor release runs code built against older headers, not
  // the reverse: the library must be at least the headers' version, of the same major.
  if (v / 10000 != NV_TENSORRT_MAJOR || v < NV_TENSORRT_VERSION) {
    problem = api->path + " is TensorRT " + api->version + ", but this build was compiled "
              "against TensorRT " + headers_version() + " headers: install TensorRT " +
              headers_version() + " or a newer " + major + ".x" +
              ", or rebuild ddad_rt against the installed one";
    return nullptr;
  }
  loaded_api = api;
  return api;
}

template <typename T>
using TrtPtr = std::unique_ptr<T>;  // TensorRT 10+ objects are released with delete

// ---- building engines -----------------------------------------------------------------

nv::Dims4 batch_dims(const nv::Dims& graph_dims, std::int64_t batch, std::int64_t channels,
                     std::int64_t height, std::int64_t width) {
  // The exported graphs have a dynamic batch and static C, H, W; fill what is dynamic.
  const auto pick = [&](int i, std::int64_t fallback) {
    return graph_dims.nbDims > i && graph_dims.d[i] > 0 ? graph_dims.d[i] : fallback;
  };
  return nv::Dims4(batch, pick(1, channels), pick(2, height), pick(3, width));
}

#if NV_TENSORRT_MAJOR >= 11
// TensorRT 11 networks are strongly typed: precision follows the tensors' types and there is
// no FP16 builder flag. Run the network in fp16 by giving every fp32 weight an fp16 copy and
// casting the input to fp16 and the outputs back to fp32 (the engine's I/O stays fp32).
class Fp16Weights {
 public:
  // True (and `w` replaced by an fp16 copy) for non-empty fp32 weights; other weights are
  // left alone, and so is the layer: setting empty weights can mean "from input 1".
  bool convert(nv::Weights& w) {
    if (w.type != nv::DataType::kFLOAT || w.count == 0 || w.values == nullptr) return false;
    std::vector<std::uint16_t>& out = store_.emplace_back(static_cast<size_t>(w.count));
    const float* in = static_cast<const float*>(w.values);
    for (std::int64_t i = 0; i < w.count; ++i) out[i] = float_to_half_bits(in[i]);
    w = nv::Weights{nv::DataType::kHALF, out.data(), w.count};
    return true;
  }

 private:
  std::list<std::vector<std::uint16_t>> store_;  // alive until the engine is built
};

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
#endif

// How build_plan turns a graph into a network; part of every plan's cache key. Change it
// with any change to the builder settings, so cached plans built the old way are rebuilt.
constexpr const char* kBuildRecipe =
    "v1: TF32 off; fp16 = BuilderFlag::kFP16 (TensorRT 10) or weights to half with Scale "
    "layers kept fp32 (TensorRT 11); one optimisation profile per slot";
constexpr int kMaxSlots = 2;  // concurrent calls on the GPU (one profile each); more callers wait

struct BuildRequest {
  const Api* api;
  std::string role;
  const std::string* onnx;
  std::int64_t channels, height, width, max_batch;
  int profiles;  // identical optimisation profiles, one per concurrent slot
  std::string precision;
  std::string* timing_cache;  // in: previous cache (may be empty); out: updated
};

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

// ---- the backend ----------------------------------------------------------------------

// One graph as a TensorRT engine, with the names of its I/O tensors.
struct Net {
  std::string role;
  TrtPtr<nv::ICudaEngine> engine;
  std::string input;
  std::vector<std::string> outputs;
};

constexpr size_t kMaxPlansPerSlot = 8;   // batch sizes with contexts and graphs, LRU

class TensorRtBackend final : public Backend {
 public:
  TensorRtBackend(const Bundle& bundle, const EngineOptions& options, const CudaStatus& status)
      : k_(bundle.k), height_(bundle.height), width_(bundle.width), hw_(bundle.height * bundle.width),
        max_batch_(options.max_batch), has_logvar_(bundle.uncertainty()),
        norm_mean_(bundle.norm_mean), norm_std_(bundle.norm_std), gpu_(status.gpu) {
    std::string problem;
    api_ = load_api(tensorrt_library_dirs(), problem);
    if (!api_) throw EngineError("device='cuda' is unavailable: " + problem);
    const PrecisionChoice choice = choose_gpu_precision(options.precision, bundle);
    precision_ = choice.precision;
    precision_reason_ = choice.reason;
    DDAD_CUDA_CHECK(cudaSetDevice(device_));
    cache_dir_ = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    runtime_.reset(api_->runtime());
    if (!runtime_) throw EngineError("createInferRuntime failed: " + logger().take_errors());

    const TimingCacheKey timing_key{api_->version, status.compute_capability};
    timing_path_ = (fs::path(cache_dir_) / timing_key.file_name()).string();
    std::vector<std::pair<std::string, std::int64_t>> roles{{"ensemble", 1}};
    for (Refiner r : {Refiner::kDual, Refiner::kIntra}) {
      if (bundle.has_graph(refiner_role(r))) roles.emplace_back(refiner_role(r), refiner_channels(r));
    }
    for (const auto& [role, channels] : roles) {
      PlanKey key;
      key.bundle_identity = bundle.identity;
      key.role = role;
      key.graph_sha256 = bundle.files.at(bundle.graphs.at(role));
      key.max_batch = max_batch_;
      key.precision = precision_;
      key.tensorrt_version = api_->version;
      key.compute_capability = status.compute_capability;
      key.profiles = kMaxSlots;
      key.ddad_rt_version = DDAD_RT_VERSION;
      key.build_recipe = kBuildRecipe;
      nets_.emplace(role, load_or_build(bundle, key, channels, timing_key));
    }
    has_dual_ = nets_.count("refine_dual") != 0;
    has_intra_ = nets_.count("refine_intra") != 0;
    for (const auto& [role, net] : nets_) {
      scratch_bytes_ = std::max<std::int64_t>(scratch_bytes_, net.engine->getDeviceMemorySizeV2());
    }
  }

  ~TensorRtBackend() override {
    cudaSetDevice(device_);
    slots_.clear();  // contexts and graphs before the engines, engines before the runtime
    nets_.clear();
  }

  std::string name() const override { return "tensorrt"; }
  std::string device() const override { return "cuda"; }
  std::string precision() const override { return precision_; }
  std::string precision_reason() const override { return precision_reason_; }
  std::string refine_impl() const override { return "tensorrt"; }

  std::map<std::string, std::string> extra_info() const override {
    std::string cache;
    for (const auto& [role, what] : cache_report_) cache += (cache.empty() ? "" : "; ") + role + ": " + what;
    return {{"gpu", gpu_},
            {"tensorrt", api_->version},
            {"tensorrt_library", api_->path},
            {"engine_cache_dir", cache_dir_},
            {"engine_cache", cache},
            {"cuda_graphs", graph_failures_ == 0
                                ? "replayed after the first call at each batch size"
                                : "capture failed " + std::to_string(graph_failures_.load()) +
                                      " time(s); those calls run without a graph (" +
                                      last_graph_failure() + ")"}};
  }

  void score_chunk(const ImageBatch& images, std::int64_t start, std::int64_t count,
                   const ScoreOutputs& out, const Selection& selection) override {
    health_.check();
    DDAD_CUDA_CHECK(cudaSetDevice(device_));
    Lease lease(*this);
    try {
      run_chunk(*lease.slot, images, start, count, out, selection);
    } catch (const std::exception& e) {
      const auto* cuda_error = dynamic_cast<const CudaError*>(&e);
      if (settle_after_failure(lease, cuda_error ? cuda_error->code() : cudaSuccess, e.what())) throw;
      throw EngineError(std::string(e.what()) + "; " + GpuHealth::message(e.what()));
    }
  }

 private:
  // A captured pipeline differs by input type, by the scores asked for (which refiners run)
  // and by whether maps are copied back.
  struct GraphKey {
    int type;
    unsigned scores;
    bool maps;
    bool operator<(const GraphKey& o) const {
      return std::tie(type, scores, maps) < std::tie(o.type, o.scores, o.maps);
    }
  };

  // Execution contexts for one batch size, bound to a slot's buffers, and the CUDA graphs of
  // the pipeline at that size (per input type and maps wanted). A null graph: capture failed,
  // run eagerly.
  struct Plan {
    std::int64_t batch = 0;
    TrtPtr<nv::IExecutionContext> ensemble, dual, intra;
    std::map<GraphKey, GraphExec> graphs;
  };

  struct Slot {
    int index = 0;              // also the optimisation profile its contexts use
    Stream stream;
    DeviceMem scratch;          // TensorRT activations, shared by this slot's contexts
    DeviceMem raw, x, udm, ndm, logvar, dual_in, intra_in, logits, partials, scores, maps;
    PinnedMem raw_host, scores_host, maps_host;
    std::list<Plan> plans;      // most recently used first

    Plan& plan_for(TensorRtBackend& b, std::int64_t batch) {
      for (auto it = plans.begin(); it != plans.end(); ++it) {
        if (it->batch == batch) {
          plans.splice(plans.begin(), plans, it);
          return plans.front();
        }
      }
      Plan p;  // complete before it is listed: a failed context leaves no half plan behind
      p.batch = batch;
      p.ensemble = b.context("ensemble", *this, batch, as_floats(x),
                             {as_floats(udm), as_floats(ndm), as_floats(logvar)});
      if (b.has_dual_) {
        p.dual = b.context("refine_dual", *this, batch, as_floats(dual_in), {as_floats(logits)});
      }
      if (b.has_intra_) {
        p.intra = b.context("refine_intra", *this, batch, as_floats(intra_in), {as_floats(logits)});
      }
      if (plans.size() >= kMaxPlansPerSlot) plans.pop_back();
      plans.push_front(std::move(p));
      return plans.front();
    }

    // Map buffers are only allocated when someone asks for maps; graphs that copy maps are
    // captured after this, so their addresses never change.
    void ensure_maps(const TensorRtBackend& b) {
      if (maps) return;
      const std::size_t bytes = sizeof(float) * kNumScores * b.max_batch_ * b.hw_;
      maps = device_alloc(bytes);
      maps_host = pinned_alloc(bytes);
    }
  };

  // One slot for one call; back to the pool at scope exit unless retired.
  struct Lease {
    explicit Lease(TensorRtBackend& b) : backend(b) {
      std::unique_lock<std::mutex> lock(b.slots_mutex_);
      b.slots_cv_.wait(lock, [&] {
        return b.health_.dead() || !b.free_.empty() || b.slots_.size() < kMaxSlots;
      });
      b.health_.check();
      if (!b.free_.empty()) {
        slot = b.free_.back();
        b.free_.pop_back();
      } else {
        b.slots_.push_back(b.make_slot());
        slot = b.slots_.back().get();
      }
    }
    ~Lease() {
      if (!slot) return;  // retired
      {
        std::lock_guard<std::mutex> lock(backend.slots_mutex_);
        backend.free_.push_back(slot);
      }
      backend.slots_cv_.notify_one();
    }
    //! The slot never goes back to the pool (its stream is in an unknown state).
    void retire() { slot = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    TensorRtBackend& backend;
    Slot* slot = nullptr;
  };

  // After a failed call the slot's stream may still hold queued work (a kernel, a copy into
  // its pinned buffers): it goes back to the pool only once that work has finished. A
  // sticky error, or a stream that cannot be synchronised, kills the engine: the slot is
  // retired and every later call says why. Returns true when the engine is still usable.
  bool settle_after_failure(Lease& lease, cudaError_t code, const std::string& what) {
    const cudaError_t sync = cudaStreamSynchronize(lease.slot->stream.get());
    const cudaError_t last = cudaGetLastError();  // clears a non-sticky error for the next call
    const bool sticky = is_sticky_cuda_error(code) || is_sticky_cuda_error(sync) ||
                        is_sticky_cuda_error(last);
    if (!sticky && sync == cudaSuccess) return true;
    health_.mark_dead(sync != cudaSuccess && !is_sticky_cuda_error(code)
                          ? what + "; then synchronising its stream failed: " + cudaGetErrorName(sync)
                          : what);
    lease.retire();
    slots_cv_.notify_all();  // callers waiting for a slot must see the engine is dead
    return false;
  }

  void run_chunk(Slot& slot, const ImageBatch& images, std::int64_t start, std::int64_t count,
                 const ScoreOutputs& out, const Selection& sel) {
    Plan& plan = slot.plan_for(*this, count);
    const std::size_t pixel_bytes = dtype_size(images.dtype);
    const std::size_t in_bytes = static_cast<std::size_t>(count * hw_) * pixel_bytes;
    std::memcpy(slot.raw_host.get(),
                static_cast<const char*>(images.data) + static_cast<std::size_t>(start * hw_) * pixel_bytes,
                in_bytes);
    if (sel.maps) slot.ensure_maps(*this);
    static_assert(static_cast<int>(DType::kUInt8) == static_cast<int>(cuda::RawType::kUInt8) &&
                      static_cast<int>(DType::kUInt16) == static_cast<int>(cuda::RawType::kUInt16) &&
                      static_cast<int>(DType::kFloat32) == static_cast<int>(cuda::RawType::kFloat32),
                  "cuda::RawType mirrors DType");
    const auto type = static_cast<cuda::RawType>(static_cast<int>(images.dtype));
    const GraphKey gkey{static_cast<int>(type), sel.scores.bits(), sel.maps};
    auto g = plan.graphs.find(gkey);
    if (g != plan.graphs.end() && g->second) {
      DDAD_CUDA_CHECK(cudaGraphLaunch(g->second.get(), slot.stream.get()));
    } else {
      enqueue(slot, plan, type, sel, count);
      if (g == plan.graphs.end()) {
        DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
        plan.graphs[gkey] = capture(slot, plan, type, sel, count);
      }
    }
    DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
    // From pinned staging to the caller's arrays.
    const float* scores = static_cast<const float*>(slot.scores_host.get());
    const float* maps = static_cast<const float*>(slot.maps_host.get());
    for (Score s : kAllScores) {
      if (!sel.wants(s)) continue;
      const int idx = static_cast<int>(s);
      std::memcpy(out.score(s) + start, scores + idx * max_batch_, sizeof(float) * count);
      if (sel.maps) {
        std::memcpy(out.map(s) + start * hw_, maps + idx * max_batch_ * hw_,
                    sizeof(float) * count * hw_);
      }
    }
  }

  Net load_or_build(const Bundle& bundle, const PlanKey& key, std::int64_t channels,
                    const TimingCacheKey& timing_key) {
    Net net;
    net.role = key.role;
    const std::string path = (fs::path(cache_dir_) / key.file_name()).string();
    logger().clear();
    CacheEntry entry = read_cache_file(path, key.text());
    std::string why_built = entry.reason;
    if (entry.status == CacheRead::kHit) {
      net.engine.reset(runtime_->deserializeCudaEngine(entry.payload.data(), entry.payload.size()));
      if (net.engine) {
        cache_report_[key.role] = "loaded from " + path;
      } else {
        why_built = "the cached plan was rejected by TensorRT (" + logger().take_errors() + ")";
      }
    }
    if (!net.engine) {
      std::string timing = read_cache_file(timing_path_, timing_key.text()).payload;
      const std::string plan = build_plan({api_.get(), key.role, &bundle.graph_bytes.at(bundle.graphs.at(key.role)),
                                           channels, height_, width_, max_batch_, kMaxSlots, precision_,
                                           &timing});
      net.engine.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
      if (!net.engine) {
        throw EngineError("TensorRT could not load the engine it just built for " + key.role +
                          ": " + logger().take_errors());
      }
      std::string saved = "cached at " + path;
      try {
        write_cache_file(path, key.text(), plan.data(), plan.size());
        if (!timing.empty()) write_cache_file(timing_path_, timing_key.text(), timing.data(), timing.size());
      } catch (const std::exception& e) {
        saved = std::string("not cached: ") + e.what();
      }
      cache_report_[key.role] = "built (" + why_built + "), " + saved;
    }
    // Check the I/O the pipeline binds by name.
    for (std::int32_t i = 0; i < net.engine->getNbIOTensors(); ++i) {
      const char* name = net.engine->getIOTensorName(i);
      if (net.engine->getTensorDataType(name) != nv::DataType::kFLOAT) {
        throw BundleError("the bundle's " + key.role + " graph has a non-float32 tensor '" + name +
                          "': re-export it with ddad_train.export");
      }
      if (net.engine->getTensorIOMode(name) == nv::TensorIOMode::kINPUT) {
        net.input = name;
      } else {
        net.outputs.emplace_back(name);
      }
    }
    const std::vector<std::string> wanted =
        key.role == "ensemble"
            ? (has_logvar_ ? std::vector<std::string>{"udm", "ndm", "ndm_logvar"}
                           : std::vector<std::string>{"udm", "ndm"})
            : std::vector<std::string>{"logits"};
    for (const std::string& w : wanted) {
      if (std::find(net.outputs.begin(), net.outputs.end(), w) == net.outputs.end()) {
        throw BundleError("the bundle's " + key.role + " graph has no output named '" + w +
                          "': the bundle was not written by ddad_train.export; re-export it");
      }
    }
    // enqueueV3 needs an address for every output: an output the pipeline does not bind
    // would fail every call, so refuse the graph now.
    for (const std::string& o : net.outputs) {
      if (std::find(wanted.begin(), wanted.end(), o) == wanted.end()) {
        throw BundleError("the bundle's " + key.role + " graph has an unexpected output '" + o +
                          "': the bundle was not written by ddad_train.export; re-export it");
      }
    }
    net.outputs = wanted;
    return net;
  }

  std::unique_ptr<Slot> make_slot() {
    auto s = std::make_unique<Slot>();
    s->index = static_cast<int>(slots_.size());  // under slots_mutex_ (Lease)
    cudaStream_t stream = nullptr;
    DDAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    s->stream.reset(stream);
    const std::size_t mb = static_cast<std::size_t>(max_batch_);
    const std::size_t img = mb * static_cast<std::size_t>(hw_);
    const std::size_t members = img * static_cast<std::size_t>(k_);
    s->scratch = device_alloc(static_cast<std::size_t>(scratch_bytes_));
    s->raw = device_alloc(img * sizeof(float));  // room for the widest input type
    s->x = device_alloc(img * sizeof(float));
    s->udm = device_alloc(members * sizeof(float));
    s->ndm = device_alloc(members * sizeof(float));
    if (has_logvar_) s->logvar = device_alloc(members * sizeof(float));
    if (has_dual_) s->dual_in = device_alloc(2 * img * sizeof(float));
    if (has_intra_) s->intra_in = device_alloc(img * sizeof(float));
    if (has_dual_ || has_intra_) s->logits = device_alloc(2 * img * sizeof(float));
    s->partials = device_alloc(3 * mb * cuda::tiles_per_image(hw_) * sizeof(float));
    s->scores = device_alloc(kNumScores * mb * sizeof(float));
    s->raw_host = pinned_alloc(img * sizeof(float));
    s->scores_host = pinned_alloc(kNumScores * mb * sizeof(float));
    return s;
  }

  TrtPtr<nv::IExecutionContext> context(const std::string& role, Slot& slot, std::int64_t batch,
                                        float* input, const std::vector<float*>& outputs) {
    const Net& net = nets_.at(role);
    logger().clear();
    TrtPtr<nv::IExecutionContext> ctx(
        net.engine->createExecutionContext(nv::ExecutionContextAllocationStrategy::kUSER_MANAGED));
    if (!ctx) throw EngineError("TensorRT could not create an execution context for " + role + ": " + logger().take_errors());
    ctx->setDeviceMemoryV2(slot.scratch.get(), scratch_bytes_);
    bool ok = ctx->setOptimizationProfileAsync(slot.index, slot.stream.get());
    DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
    const nv::Dims graph_dims = net.engine->getTensorShape(net.input.c_str());
    const std::int64_t channels = role == "refine_dual" ? 2 : 1;
    ok = ok && ctx->setInputShape(net.input.c_str(), batch_dims(graph_dims, batch, channels, height_, width_));
    ok = ok && ctx->setTensorAddress(net.input.c_str(), input);
    for (size_t i = 0; i < net.outputs.size(); ++i) {
      ok = ok && ctx->setTensorAddress(net.outputs[i].c_str(), outputs.at(i));
    }
    if (!ok || !ctx->allInputDimensionsSpecified()) {
      throw EngineError("TensorRT refused the " + role + " bindings at batch " + std::to_string(batch) +
                        " (profile " + std::to_string(slot.index) + "): " + logger().take_errors());
    }
    // The shared scratch is sized for the largest shape of every engine; check, not assume.
    const std::size_t needed = ctx->updateDeviceMemorySizeForShapes();
    if (needed > static_cast<std::size_t>(scratch_bytes_)) {
      throw EngineError("TensorRT needs " + std::to_string(needed) + " bytes of activation memory for " +
                        role + " at batch " + std::to_string(batch) + ", more than the " +
                        std::to_string(scratch_bytes_) + " it reported for the engine");
    }
    return ctx;
  }

  float* score_ptr(const Slot& s, Score score) const {
    return as_floats(s.scores) + static_cast<int>(score) * max_batch_;
  }
  float* map_ptr(const Slot& s, Score score, const Selection& sel) const {
    return sel.maps && sel.wants(score) ? as_floats(s.maps) + static_cast<int>(score) * max_batch_ * hw_
                                        : nullptr;
  }

  // The whole pipeline for `n` images on the slot's stream; no synchronisation inside, so it
  // can be captured into a CUDA graph.
  void enqueue(Slot& s, Plan& p, cuda::RawType type, const Selection& sel, std::int64_t n) {
    cudaStream_t stream = s.stream.get();
    const std::size_t pixel_bytes = type == cuda::RawType::kUInt8 ? 1 : type == cuda::RawType::kUInt16 ? 2 : 4;
    DDAD_CUDA_CHECK(cudaMemcpyAsync(s.raw.get(), s.raw_host.get(), static_cast<std::size_t>(n * hw_) * pixel_bytes,
                                    cudaMemcpyHostToDevice, stream));
    cuda::NormalizeParams norm;
    norm.raw = s.raw.get();
    norm.type = type;
    norm.mean = norm_mean_;
    norm.std = norm_std_;
    norm.count = n * hw_;
    norm.x = as_floats(s.x);
    DDAD_CUDA_CHECK(cuda::launch_normalize(norm, stream));
    if (!p.ensemble->enqueueV3(stream)) {
      throw EngineError("TensorRT inference failed (ensemble): " + logger().take_errors());
    }
    cuda::DiscrepancyParams d;
    d.x = as_floats(s.x);
    d.udm = as_floats(s.udm);
    d.ndm = as_floats(s.ndm);
    d.ndm_logvar = has_logvar_ ? as_floats(s.logvar) : nullptr;
    d.n = static_cast<int>(n);
    d.k = k_;
    d.hw = hw_;
    d.map_rec = map_ptr(s, Score::kRec, sel);
    d.map_intra = map_ptr(s, Score::kIntra, sel);
    d.map_inter = map_ptr(s, Score::kInter, sel);
    // Only the refiners the selection needs get their inputs, and run.
    d.dual_in = sel.wants(Score::kRDual) ? as_floats(s.dual_in) : nullptr;
    d.intra_in = sel.wants(Score::kRIntra) ? as_floats(s.intra_in) : nullptr;
    d.partials = as_floats(s.partials);
    d.score_rec = score_ptr(s, Score::kRec);
    d.score_intra = score_ptr(s, Score::kIntra);
    d.score_inter = score_ptr(s, Score::kInter);
    DDAD_CUDA_CHECK(cuda::launch_discrepancy(d, stream));
    for (auto [ctx, score] : {std::pair{p.dual.get(), Score::kRDual}, std::pair{p.intra.get(), Score::kRIntra}}) {
      if (!ctx || !sel.wants(score)) continue;
      if (!ctx->enqueueV3(stream)) {
        throw EngineError(std::string("TensorRT inference failed (") + score_key(score) + "): " +
                          logger().take_errors());
      }
      cuda::RefineParams r;
      r.logits = as_floats(s.logits);
      r.n = static_cast<int>(n);
      r.hw = hw_;
      r.map = map_ptr(s, score, sel);
      r.partials = as_floats(s.partials);
      r.score = score_ptr(s, score);
      DDAD_CUDA_CHECK(cuda::launch_refine(r, stream));
    }
    DDAD_CUDA_CHECK(cudaMemcpyAsync(s.scores_host.get(), s.scores.get(), sizeof(float) * kNumScores * max_batch_,
                                    cudaMemcpyDeviceToHost, stream));
    if (sel.maps) {
      for (Score score : kAllScores) {
        if (!sel.wants(score)) continue;
        const std::size_t offset = static_cast<std::size_t>(static_cast<int>(score) * max_batch_ * hw_);
        DDAD_CUDA_CHECK(cudaMemcpyAsync(static_cast<float*>(s.maps_host.get()) + offset, as_floats(s.maps) + offset,
                                        sizeof(float) * n * hw_, cudaMemcpyDeviceToHost, stream));
      }
    }
  }

  // Records the pipeline into a CUDA graph (nothing runs). A failed capture leaves an empty
  // graph handle: that plan runs eagerly from then on.
  GraphExec capture(Slot& s, Plan& p, cuda::RawType type, const Selection& sel, std::int64_t n) {
    cudaStream_t stream = s.stream.get();
    DDAD_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t raw_graph = nullptr;
    try {
      enqueue(s, p, type, sel, n);
    } catch (const std::exception& e) {
      note_graph_failure(e.what());
      cudaStreamEndCapture(stream, &raw_graph);
      if (raw_graph) cudaGraphDestroy(raw_graph);
      cudaGetLastError();
      return GraphExec();
    }
    if (cudaError_t e = cudaStreamEndCapture(stream, &raw_graph); e != cudaSuccess || !raw_graph) {
      note_graph_failure(std::string("end capture: ") + cudaGetErrorName(e));
      cudaGetLastError();
      return GraphExec();
    }
    Graph graph(raw_graph);
    cudaGraphExec_t exec = nullptr;
    if (cudaError_t e = cudaGraphInstantiate(&exec, graph.get(), 0); e != cudaSuccess) {
      note_graph_failure(std::string("instantiate: ") + cudaGetErrorName(e));
      cudaGetLastError();
      return GraphExec();
    }
    return GraphExec(exec);
  }

  void note_graph_failure(const std::string& why) {
    ++graph_failures_;
    std::lock_guard<std::mutex> lock(graph_failure_mutex_);
    graph_failure_ = why;
  }
  std::string last_graph_failure() const {
    std::lock_guard<std::mutex> lock(graph_failure_mutex_);
    return graph_failure_;
  }

  GpuHealth health_;
  std::atomic<int> graph_failures_{0};
  mutable std::mutex graph_failure_mutex_;
  std::string graph_failure_;
  int device_ = 0;
  int k_;
  std::int64_t height_, width_, hw_;
  std::int64_t max_batch_;
  bool has_logvar_;
  float norm_mean_, norm_std_;
  bool has_dual_ = false, has_intra_ = false;
  std::string gpu_;
  std::string precision_, precision_reason_;
  std::string cache_dir_, timing_path_;
  std::map<std::string, std::string> cache_report_;
  std::int64_t scratch_bytes_ = 0;
  // Destroyed bottom-up: slots (contexts, graphs, buffers), then engines, then the runtime,
  // then the libraries.
  std::shared_ptr<Api> api_;
  TrtPtr<nv::IRuntime> runtime_;
  std::map<std::string, Net> nets_;
  std::mutex slots_mutex_;
  std::condition_variable slots_cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> free_;
};

}  // namespace

std::string headers_version() {
  return std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
         std::to_string(NV_TENSORRT_PATCH);
}

LibraryProbe probe_libraries(const std::vector<std::string>& dirs) {
  LibraryProbe p;
  std::string problem;
  if (auto api = load_api(dirs, problem)) {
    p.ok = true;
    p.path = api->path;
    p.version = api->version;
  } else {
    p.problem = problem;
  }
  return p;
}

std::unique_ptr<Backend> make_tensorrt_backend(const Bundle& bundle, const EngineOptions& options,
                                               const CudaStatus& status) {
  return std::make_unique<TensorRtBackend>(bundle, options, status);
}

}  // namespace ddad_rt::trt
