#include "ddad_rt/engine.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "backend.h"
#include "ddad_rt/errors.h"
#include "ddad_rt/kernels/discrepancy.h"
#include "input.h"

#ifndef DDAD_RT_VERSION
#define DDAD_RT_VERSION "0.0.0"
#endif

namespace ddad_rt {
namespace {

constexpr std::int64_t kMaxBatchLimit = 4096;

// This build has no GPU backend yet; the message says what would give it one.
const char* kNoCudaReason =
    "this build of ddad_rt has no TensorRT backend (ddad_rt.build_info()['tensorrt'] is "
    "False)";
const char* kNoCudaRemedy =
    "rebuild on a machine with the TensorRT SDK and CUDA: pip install . "
    "-Ccmake.define.DDAD_RT_WITH_TENSORRT=ON (TensorRT_ROOT=/path/to/TensorRT), or use "
    "device='cpu'";

void check_options(const EngineOptions& o) {
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda") {
    throw std::invalid_argument("device must be 'auto', 'cpu' or 'cuda', got '" + o.device + "'");
  }
  if (o.precision != "fp32" && o.precision != "auto" && o.precision != "fp16" &&
      o.precision != "bf16") {
    throw std::invalid_argument("precision must be 'auto', 'fp32', 'fp16' or 'bf16', got '" +
                                o.precision + "'");
  }
  if (o.max_batch < 1 || o.max_batch > kMaxBatchLimit) {
    throw std::invalid_argument("max_batch must be in [1, " + std::to_string(kMaxBatchLimit) +
                                "], got " + std::to_string(o.max_batch));
  }
  if (o.num_threads < 0) {
    throw std::invalid_argument("num_threads must be >= 0 (0 = all cores), got " +
                                std::to_string(o.num_threads));
  }
}

}  // namespace

Engine::Engine(const std::string& bundle_dir, const EngineOptions& options)
    : options_(options) {
  check_options(options_);
  if (options_.device == "cuda") {
    throw EngineError(std::string("device='cuda' is unavailable: ") + kNoCudaReason + "; " +
                      kNoCudaRemedy);
  }
  if (options_.precision == "fp16" || options_.precision == "bf16") {
    throw EngineError("precision='" + options_.precision +
                      "' is not offered by the CPU backend of this build (it offers fp32); "
                      "use precision='fp32' or 'auto'");
  }
  device_reason_ = options_.device == "cpu" ? "requested" : std::string("auto: ") + kNoCudaReason;
  bundle_ = load_bundle(bundle_dir);
  backend_ = cpu::make_openvino_backend(bundle_, options_);
  // Graph bytes are compiled into the backend; do not keep a second copy alive.
  bundle_.graph_bytes.clear();
}

Engine::~Engine() = default;

void Engine::validate(const ImageBatch& images) const {
  validate_images(images, bundle_.height, bundle_.width);
}

void Engine::score(const ImageBatch& images, const ScoreOutputs& out) const {
  validate(images);
  if (!out.score_rec || !out.score_intra || !out.score_inter) {
    throw std::invalid_argument("score outputs must not be null");
  }
  const bool want_maps = out.map_rec != nullptr;
  if (want_maps && (!out.map_intra || !out.map_inter)) {
    throw std::invalid_argument("map outputs must be all set or all null");
  }
  const int k = bundle_.k;
  const std::int64_t hw = bundle_.height * bundle_.width;
  const std::int64_t chunk = std::min(images.n, options_.max_batch);
  // Per-call workspace: calls on several threads never share buffers.
  std::vector<float> x(static_cast<size_t>(chunk * hw));
  std::vector<float> udm(static_cast<size_t>(chunk * k * hw));
  std::vector<float> ndm(static_cast<size_t>(chunk * k * hw));
  for (std::int64_t start = 0; start < images.n; start += chunk) {
    const std::int64_t b = std::min(chunk, images.n - start);
    normalize_images(images, start, b, bundle_.norm_mean, bundle_.norm_std, x.data());
    backend_->run_ensemble(x.data(), b, udm.data(), ndm.data());
    DiscrepancyArgs args;
    args.x = x.data();
    args.udm = udm.data();
    args.ndm = ndm.data();
    args.n = b;
    args.k = k;
    args.hw = hw;
    args.score_rec = out.score_rec + start;
    args.score_intra = out.score_intra + start;
    args.score_inter = out.score_inter + start;
    if (want_maps) {
      args.map_rec = out.map_rec + start * hw;
      args.map_intra = out.map_intra + start * hw;
      args.map_inter = out.map_inter + start * hw;
    }
    cpu::discrepancy(args);
  }
}

std::map<std::string, std::string> Engine::info() const {
  return {
      {"backend", backend_->name()},
      {"device", backend_->device()},
      {"device_reason", device_reason_},
      {"precision", backend_->precision()},
  };
}

std::map<std::string, std::string> build_info() {
  return {
      {"version", DDAD_RT_VERSION},
      {"openvino", cpu::openvino_version()},
      {"cuda_kernels", "false"},
      {"tensorrt", "false"},
  };
}

}  // namespace ddad_rt
