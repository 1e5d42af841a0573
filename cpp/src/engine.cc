#include "ddad_rt/engine.h"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include "backend.h"
#include "batching.h"
#include "cpu/cpu_count.h"
#include "ddad_rt/errors.h"
#include "ddad_rt/kernels/discrepancy.h"
#include "device_status.h"
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
    if (auto s = score_from_key(key)) has_[static_cast<int>(*s)] = true;
  }
  if (options_.device == "cpu") {
    device_reason_ = "requested";
  } else if (!status.usable) {
    device_reason_ = "auto: no usable GPU: " + status.explain();
  } else {
#if defined(DDAD_RT_HAVE_TENSORRT)
    try {
      backend_ = trt::make_tensorrt_backend(bundle_, options_, status);
      device_reason_ = (options_.device == "cuda" ? "requested: " : "auto: ") + status.gpu;
    } catch (const std::exception& e) {
      if (options_.device == "cuda") throw;
      // auto may fall back, and says why.
      device_reason_ = std::string("auto: the GPU (") + status.gpu +
                       ") is usable but its backend failed, so the CPU runs: " + e.what();
    }
#endif
  }
  if (backend_) {
    bundle_.graph_bytes.clear();
    return;
  }
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
  const bool want_maps = out.map(Score::kRec) != nullptr;
  for (Score s : kAllScores) {
    if (!has_score(s)) continue;
    if (!out.score(s)) {
      throw std::invalid_argument(std::string("score output '") + score_key(s) + "' is null");
    }
    if ((out.map(s) != nullptr) != want_maps) {
      throw std::invalid_argument("map outputs must be all set or all null");
    }
  }
  const bool r_dual = has_score(Score::kRDual);
  const bool r_intra = has_score(Score::kRIntra);
  const int k = bundle_.k;
  const std::int64_t hw = bundle_.height * bundle_.width;
  if (backend_->runs_pipeline()) {
    for (const Chunk& c : plan_chunks(images.n, options_.max_batch)) {
      backend_->score_chunk(images, c.start, c.count, out, want_maps);
    }
    return;
  }
  const std::int64_t chunk = std::min(images.n, options_.max_batch);
  const auto size = [&](std::int64_t per_image) { return static_cast<size_t>(chunk * per_image); };
  // Per-call workspace: calls on several threads never share buffers.
  std::vector<float> x(size(hw)), udm(size(k * hw)), ndm(size(k * hw));
  std::vector<float> logvar(bundle_.uncertainty() ? size(k * hw) : 0);
  // Refiners' inputs: R_dual reads [A_inter, A_intra] as two channels, R_intra [A_intra].
  std::vector<float> dual_in(r_dual ? size(2 * hw) : 0), intra_in(r_intra ? size(hw) : 0);
  std::vector<float> logits(r_dual || r_intra ? size(2 * hw) : 0);
  for (const Chunk& c : plan_chunks(images.n, options_.max_batch)) {
    const std::int64_t start = c.start;
    const std::int64_t b = c.count;
    const auto user_map = [&](Score s) -> MapOut {
      return {want_maps ? out.map(s) + start * hw : nullptr, hw};
    };
    const auto user_score = [&](Score s) { return out.score(s) + start; };
    normalize_images(images, start, b, bundle_.norm_mean, bundle_.norm_std, x.data());
    backend_->run_ensemble(x.data(), b, {udm.data(), ndm.data(), logvar.empty() ? nullptr : logvar.data()});

    DiscrepancyArgs args;
    args.x = x.data();
    args.udm = udm.data();
    args.ndm = ndm.data();
    args.ndm_logvar = logvar.empty() ? nullptr : logvar.data();
    args.n = b;
    args.k = k;
    args.hw = hw;
    args.map_rec = user_map(Score::kRec);
    args.map_intra = user_map(Score::kIntra);
    args.map_inter = user_map(Score::kInter);
    // The kernel writes the maps the refiners read straight into their input buffers.
    if (r_dual) {
      args.map_inter = {dual_in.data(), 2 * hw};
      args.map_intra = {dual_in.data() + hw, 2 * hw};
    } else if (r_intra) {
      args.map_intra = {intra_in.data(), hw};
    }
    args.score_rec = user_score(Score::kRec);
    args.score_intra = user_score(Score::kIntra);
    args.score_inter = user_score(Score::kInter);
    cpu::discrepancy(args);
    for (std::int64_t i = 0; i < b; ++i) {
      const float* intra = r_dual ? dual_in.data() + (2 * i + 1) * hw
                                : r_intra ? intra_in.data() + i * hw : nullptr;
      if (r_dual && r_intra) std::copy(intra, intra + hw, intra_in.data() + i * hw);
      if (want_maps && r_dual) {
        const float* inter = dual_in.data() + 2 * i * hw;
        std::copy(inter, inter + hw, user_map(Score::kInter).data + i * hw);
      }
      if (want_maps && intra) std::copy(intra, intra + hw, user_map(Score::kIntra).data + i * hw);
    }

    for (auto [refiner, score] : {std::pair{Refiner::kDual, Score::kRDual},
                                  std::pair{Refiner::kIntra, Score::kRIntra}}) {
      if (!has_score(score)) continue;
      backend_->run_refine(refiner, refiner == Refiner::kDual ? dual_in.data() : intra_in.data(),
                           b, logits.data());
      RefineArgs r;
      r.logits = logits.data();
      r.n = b;
      r.hw = hw;
      r.map = user_map(score);
      r.score = user_score(score);
      cpu::refine(r);
    }
  }
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
      {"openvino", cpu::openvino_version()},
      {"cuda_kernels", "false"},
      {"tensorrt", "false"},
      {"cuda_architectures", ""},
      {"cuda_runtime", ""},
      {"tensorrt_headers", ""},
  };
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
