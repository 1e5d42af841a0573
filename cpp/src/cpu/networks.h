// The bundle's networks on the CPU: what the CPU pipeline (cpu/pipeline.cc) asks of a
// network runtime. OpenVINO implements it (cpu/openvino_networks.cc); the pipeline around it
// - normalisation, the fused kernels, which networks a selection needs - is written once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "backend.h"
#include "ddad_rt/bundle.h"
#include "ddad_rt/engine.h"

namespace ddad_rt::cpu {

//! Where run_ensemble writes: [n, K, H, W] each; ndm_logvar only for AE-U bundles.
struct EnsembleOutputs {
  float* udm = nullptr;
  float* ndm = nullptr;
  float* ndm_logvar = nullptr;
};

//! Runs a bundle's networks on the CPU. Implementations are safe to call from several
//! threads at once.
class Networks {
 public:
  virtual ~Networks() = default;
  //! Short name, e.g. "openvino".
  virtual std::string name() const = 0;
  virtual std::string precision() const = 0;
  virtual std::string precision_reason() const = 0;
  //! What runs the refinement networks (e.g. "openvino", or the native kernels).
  virtual std::string refine_impl() const = 0;
  //! Runs all 2K members on normalised images [n, 1, H, W]; writes the reconstructions to
  //! out.udm and out.ndm, each [n, K, H, W], and for AE-U bundles the NDM log-variances to
  //! out.ndm_logvar [n, K, H, W]. n <= the max_batch the networks were built with.
  virtual void run_ensemble(const float* images, std::int64_t n, const EnsembleOutputs& out) = 0;
  //! Runs a refinement network: maps [n, C, H, W] (C = 2 for R_dual: A_inter, A_intra;
  //! C = 1 for R_intra) -> logits [n, 2, H, W]. Only for graphs the bundle has.
  virtual void run_refine(Refiner which, const float* maps, std::int64_t n, float* logits) = 0;
  virtual std::map<std::string, std::string> extra_info() const { return {}; }
};

//! The bundle's networks compiled by OpenVINO. Only in builds with OpenVINO
//! (DDAD_RT_HAVE_OPENVINO).
std::unique_ptr<Networks> make_openvino_networks(const Bundle& bundle, const EngineOptions& options);
//! OpenVINO's version string ("" in a build without it).
std::string openvino_version();

//! The CPU backend: `networks` plus the native kernels, one chunk at a time.
std::unique_ptr<Backend> make_cpu_backend(const Bundle& bundle, std::unique_ptr<Networks> networks);

}  // namespace ddad_rt::cpu
