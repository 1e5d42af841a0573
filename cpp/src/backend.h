// The interface every inference backend implements (OpenVINO on CPU; TensorRT later).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/engine.h"

namespace ddad_rt {

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
  //! Runs all 2K members on normalised images [n, 1, H, W]; writes the reconstructions to
  //! udm and ndm, each [n, K, H, W]. n <= the max_batch the backend was built with.
  virtual void run_ensemble(const float* images, std::int64_t n, float* udm, float* ndm) = 0;
};

namespace cpu {
//! The OpenVINO CPU backend.
std::unique_ptr<Backend> make_openvino_backend(const Bundle& bundle, const EngineOptions& options);
//! OpenVINO's version string.
std::string openvino_version();
}  // namespace cpu

}  // namespace ddad_rt
