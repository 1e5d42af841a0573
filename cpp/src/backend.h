// The interface every inference backend implements: OpenVINO on the CPU (networks only; the
// engine runs the kernels) and TensorRT on NVIDIA GPUs (the whole pipeline on the device).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/engine.h"

namespace ddad_rt {

//! Where run_ensemble writes: [n, K, H, W] each; ndm_logvar only for AE-U bundles.
struct EnsembleOutputs {
  float* udm = nullptr;
  float* ndm = nullptr;
  float* ndm_logvar = nullptr;
};

//! The two refinement networks of ASR (DESIGN.md section 2).
enum class Refiner { kDual, kIntra };

//! The bundle's graph role of a refiner: "refine_dual" or "refine_intra".
inline const char* refiner_role(Refiner r) {
  return r == Refiner::kDual ? "refine_dual" : "refine_intra";
}

//! Input channels of a refiner: R_dual sees [A_inter, A_intra], R_intra sees [A_intra].
inline int refiner_channels(Refiner r) { return r == Refiner::kDual ? 2 : 1; }

//! Runs a bundle's networks. Implementations are safe to call from several threads at once.
class Backend {
 public:
  virtual ~Backend() = default;
  //! Short name, e.g. "openvino".
  virtual std::string name() const = 0;
  //! "cpu" or "cuda".
  virtual std::string device() const = 0;
  //! The precision the networks run at, e.g. "fp32".
  virtual std::string precision() const = 0;
  //! Why that precision (requested, or what "auto" saw).
  virtual std::string precision_reason() const = 0;
  //! What runs the refinement networks (e.g. "openvino", or the native kernels).
  virtual std::string refine_impl() const = 0;
  //! Runs all 2K members on normalised images [n, 1, H, W]; writes the reconstructions to
  //! out.udm and out.ndm, each [n, K, H, W], and for AE-U bundles the NDM log-variances to
  //! out.ndm_logvar [n, K, H, W]. n <= the max_batch the backend was built with.
  virtual void run_ensemble(const float* images, std::int64_t n, const EnsembleOutputs& out) = 0;
  //! Runs a refinement network: maps [n, C, H, W] (C = 2 for R_dual: A_inter, A_intra;
  //! C = 1 for R_intra) -> logits [n, 2, H, W]. Only for graphs the bundle has.
  virtual void run_refine(Refiner which, const float* maps, std::int64_t n, float* logits) = 0;

  //! True for device backends that run all of a chunk - normalisation, networks, kernels -
  //! themselves (score_chunk); the engine then calls neither run_ensemble nor run_refine.
  virtual bool runs_pipeline() const { return false; }
  //! Scores images [start, start + count) of `images` (count <= max_batch) into `out` at
  //! offset `start`; maps only when `want_maps`.
  virtual void score_chunk(const ImageBatch& /*images*/, std::int64_t /*start*/,
                           std::int64_t /*count*/, const ScoreOutputs& /*out*/,
                           bool /*want_maps*/) {
    throw std::logic_error(name() + " does not run the whole pipeline");
  }
  //! More for Engine::info (e.g. the GPU, the engine cache).
  virtual std::map<std::string, std::string> extra_info() const { return {}; }
};

namespace cpu {
//! The OpenVINO CPU backend.
std::unique_ptr<Backend> make_openvino_backend(const Bundle& bundle, const EngineOptions& options);
//! OpenVINO's version string.
std::string openvino_version();
}  // namespace cpu

}  // namespace ddad_rt
