#include "ddad_rt/engine.h"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include "backend.h"
#include "batching.h"
#include "cpu/cpu_count.h"
#include "cpu/networks.h"
#include "ddad_rt/device.h"
#include "ddad_rt/errors.h"
#include "input.h"

#if defined(DDAD_RT_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include "cuda/kernels.h"
#endif
#if defined(DDAD_RT_HAVE_TENSORRT)
#include "trt/tensorrt_backend.h"
#endif

#ifndef DDAD_RT_VERSION
#define DDAD_RT_VERSION "0.0.0"
#endif

namespace ddad_rt {
namespace {

constexpr std::int64_t kMaxBatchLimit = 4096;

void check_options(const EngineOptions& o) {
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda") {
    throw std::invalid_argument("device must be 'auto', 'cpu' or 'cuda', got '" + o.device + "'");
  }
  if (o.precision != "default" && o.precision != "fp32" && o.precision != "auto" &&
      o.precision != "fp16" && o.precision != "bf16") {
    throw std::invalid_argument(
        "precision must be 'default', 'auto', 'fp32', 'fp16' or 'bf16', got '" + o.precision + "'");
  }
  if (o.max_batch < 1 || o.max_batch > kMaxBatchLimit) {
    throw std::invalid_argument("max_batch must be in [1, " + std::to_string(kMaxBatchLimit) +
                                "], got " + std::to_string(o.max_batch));
  }
  cpu::resolve_threads(o.num_threads);  // throws for < 0 or above 4x the usable CPUs
}

}  // namespace

Engine::Engine(const std::string& bundle_dir, const EngineOptions& options)
    : options_(options) {
  check_options(options_);
  // The GPU question first: device='cuda' without a GPU fails before any loading.
  CudaStatus status;
  if (options_.device != "cpu") {
    status = cuda_status();
    if (!status.usable && options_.device == "cuda") {
      throw EngineError("device='cuda' is unavailable: " + status.explain());
    }
  }
  bundle_ = load_bundle(bundle_dir);
  for (const std::string& key : bundle_.scores) {
    if (auto s = score_from_key(key)) has_.insert(*s);
  }
  default_score_ = *score_from_key(bundle_.default_score);  // load_bundle checked the key
  create_backend(status);
  // Graph bytes are compiled into the backend; do not keep a second copy alive.
  bundle_.graph_bytes.clear();
}

Engine::~Engine() = default;

// The GPU when asked for (or, for "auto", when usable and its backend builds), else the CPU.
// A device this build lacks is refused with the reason, never swapped silently.
void Engine::create_backend(const CudaStatus& status) {
  if (options_.device == "cpu") {
    device_reason_ = "requested";
  } else if (!status.usable) {
    device_reason_ = "auto: no usable GPU: " + status.explain();
  } else {
#if defined(DDAD_RT_HAVE_TENSORRT)
    try {
      backend_ = trt::make_tensorrt_backend(bundle_, options_, status);
      device_reason_ = (options_.device == "cuda" ? "requested: " : "auto: ") + status.gpu;
      return;
    } catch (const std::exception& e) {
      if (options_.device == "cuda") throw;
      // auto may fall back, and says why.
      device_reason_ = std::string("auto: the GPU (") + status.gpu +
                       ") is usable but its backend failed, so the CPU runs: " + e.what();
    }
#endif
  }
#if defined(DDAD_RT_HAVE_OPENVINO)
  backend_ = cpu::make_cpu_backend(bundle_, cpu::make_openvino_networks(bundle_, options_));
#else
  const std::string why = options_.device == "cpu"
                              ? "device='cpu' is unavailable"
                              : "device='auto' fell back to the CPU (" + device_reason_ + "), but it is unavailable";
  throw EngineError(why + ": this build of ddad_rt has no CPU backend (built with "
                    "DDAD_RT_WITH_OPENVINO=OFF, e.g. a TensorRT-only Jetson build). Use "
                    "device='cuda' on a machine with a usable GPU, or rebuild with "
                    "-DDDAD_RT_WITH_OPENVINO=ON");
#endif
}

void Engine::validate(const ImageBatch& images) const {
  validate_images(images, bundle_.height, bundle_.width);
}

Selection Engine::select(const ScoreOutputs& out) const {
  Selection sel;
  for (Score s : kAllScores) {
    if (out.score(s) == nullptr) {
      if (out.map(s) != nullptr) {
        throw std::invalid_argument(std::string("a map output is set for '") + score_key(s) +
                                    "' but its score output is null: set both, or neither");
      }
      continue;
    }
    if (!has_score(s)) {
      throw std::invalid_argument(std::string("the bundle has no '") + score_key(s) +
                                  "' score; it has " + score_keys(has_));
    }
    const bool map = out.map(s) != nullptr;
    if (!sel.scores.empty() && map != sel.maps) {
      throw std::invalid_argument("map outputs must be set for every score asked for, or for none");
    }
    sel.maps = map;
    sel.scores.insert(s);
  }
  if (sel.scores.empty()) {
    throw std::invalid_argument("no score output is set: pass at least one of " + score_keys(has_));
  }
  return sel;
}

void Engine::score(const ImageBatch& images, const ScoreOutputs& out) const {
  validate(images);
  const Selection sel = select(out);
  for (const Chunk& c : plan_chunks(images.n, options_.max_batch)) {
    backend_->score_chunk(images, c.start, c.count, out, sel);
  }
}

double Engine::threshold(Score score, double specificity) const {
  if (!(specificity > 0.0 && specificity < 1.0)) {
    throw std::invalid_argument("specificity must be in (0, 1), got " + std::to_string(specificity));
  }
  if (bundle_.thresholds.empty()) {
    throw BundleError("the bundle " + bundle_.path + " is not calibrated, so it has no "
                      "operating points: run `ddad-rt calibrate " + bundle_.path +
                      " NORMAL_IMAGES` (normal images the model did not train on)");
  }
  const std::string key = specificity_key(specificity);
  auto at = bundle_.thresholds.find(key);
  if (at == bundle_.thresholds.end()) {
    std::string known;
    for (const auto& [k, v] : bundle_.thresholds) known += (known.empty() ? "" : ", ") + k;
    throw std::invalid_argument("the bundle is calibrated at specificity " + known + ", not " +
                                key + ": pick one of those, or recalibrate with --specificity " + key);
  }
  auto t = at->second.find(score_key(score));
  if (t == at->second.end()) {
    throw std::invalid_argument(std::string("the bundle has no calibrated threshold for '") +
                                score_key(score) + "' at specificity " + key);
  }
  return t->second;
}

double Engine::predict(const ImageBatch& images, double specificity, Score score,
                       float* scores_out, std::uint8_t* flags_out) const {
  if (scores_out == nullptr || flags_out == nullptr) {
    throw std::invalid_argument("predict needs a scores and a flags output array");
  }
  const double t = threshold(score, specificity);  // before the work: an uncalibrated bundle fails fast
  ScoreOutputs out;
  out.score(score) = scores_out;
  this->score(images, out);
  for (std::int64_t i = 0; i < images.n; ++i) flags_out[i] = scores_out[i] > t ? 1 : 0;
  return t;
}

std::map<std::string, StageTime> Engine::stage_times(bool reset) {
  return backend_->stage_times(reset);
}

std::map<std::string, std::string> Engine::info() const {
  std::map<std::string, std::string> info{
      {"backend", backend_->name()},
      {"device", backend_->device()},
      {"device_reason", device_reason_},
      {"precision", backend_->precision()},
      {"precision_reason", backend_->precision_reason()},
      {"refine_impl", backend_->refine_impl()},
  };
  for (auto& [key, value] : backend_->extra_info()) info[key] = value;
  return info;
}

std::map<std::string, std::string> build_info() {
  std::map<std::string, std::string> info{
      {"version", DDAD_RT_VERSION},
      {"openvino", ""},
      {"cuda_kernels", "false"},
      {"tensorrt", "false"},
      {"cuda_architectures", ""},
      {"cuda_runtime", ""},
      {"tensorrt_headers", ""},
  };
#if defined(DDAD_RT_HAVE_OPENVINO)
  info["openvino"] = cpu::openvino_version();
#endif
#if defined(DDAD_RT_HAVE_CUDA)
  info["cuda_kernels"] = "true";
  info["cuda_architectures"] = cuda::compiled_architectures();
  info["cuda_runtime"] = std::to_string(CUDART_VERSION / 1000) + "." +
                         std::to_string((CUDART_VERSION % 1000) / 10);
#endif
#if defined(DDAD_RT_HAVE_TENSORRT)
  info["tensorrt"] = "true";
  info["tensorrt_headers"] = trt::headers_version();
#endif
  return info;
}

}  // namespace ddad_rt
