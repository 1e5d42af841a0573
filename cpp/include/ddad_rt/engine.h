// The ddad_rt inference engine: loads a bundle, runs all 2K ensemble members in one network
// call on a backend, and computes the anomaly maps and scores in a fused kernel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddad_rt/bundle.h"
#include "ddad_rt/tensor.h"

namespace ddad_rt {

class Backend;

//! How to build an engine.
struct EngineOptions {
  std::string device = "auto";     //!< "auto", "cpu" or "cuda"
  std::string precision = "fp32";  //!< "fp32" (reduced precisions come with later backends)
  std::int64_t max_batch = 64;     //!< larger batches are split inside the engine
  int num_threads = 0;             //!< CPU threads for the backend; 0 = all cores
};

//! Where score() writes. Scores are [n]; maps are [n, h, w] and may be null (not wanted).
struct ScoreOutputs {
  float* score_rec = nullptr;
  float* score_intra = nullptr;
  float* score_inter = nullptr;
  float* map_rec = nullptr;
  float* map_intra = nullptr;
  float* map_inter = nullptr;
};

//! A loaded bundle bound to a backend. score() may be called from several threads at once.
class Engine {
 public:
  Engine(const std::string& bundle_dir, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  //! Validates `images` (throws std::invalid_argument naming the problem) and scores them.
  void score(const ImageBatch& images, const ScoreOutputs& out) const;

  //! Checks an input batch without running it; score() calls this first.
  void validate(const ImageBatch& images) const;

  const Bundle& bundle() const { return bundle_; }
  const EngineOptions& options() const { return options_; }
  //! Backend name ("openvino"), device ("cpu"), and why that device was chosen.
  std::map<std::string, std::string> info() const;

 private:
  Bundle bundle_;
  EngineOptions options_;
  std::string device_reason_;
  std::unique_ptr<Backend> backend_;
};

//! What this build contains (backends, kernels, versions).
std::map<std::string, std::string> build_info();

}  // namespace ddad_rt
