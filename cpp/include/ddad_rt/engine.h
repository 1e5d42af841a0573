// The ddad_rt inference engine: loads a bundle, runs all 2K ensemble members in one network
// call on a backend, computes the anomaly maps and scores in a fused kernel, then runs the
// bundle's refinement networks (ASR) on those maps and reduces their logits in a second one.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddad_rt/bundle.h"
#include "ddad_rt/scores.h"
#include "ddad_rt/tensor.h"

namespace ddad_rt {

class Backend;

//! How to build an engine.
struct EngineOptions {
  std::string device = "auto";     //!< "auto" (GPU when usable, else CPU), "cpu" or "cuda"
  //! "fp32" (on a GPU: TF32 off); "fp16" (GPU); "bf16" (CPUs with native bf16: AVX512_BF16
  //! or AMX). "default" and "auto": a reduced precision only where the bundle records a
  //! passed accuracy check for it - on the CPU bf16 (and only where the CPU has it
  //! natively; "default" is always fp32 there), on a GPU fp16 (a check made on a GPU) -
  //! else fp32. engine.info()["precision_reason"] says which and why.
  std::string precision = "default";
  std::int64_t max_batch = 64;     //!< larger batches are split inside the engine
  //! CPU threads for the backend: 0 = one per CPU this process may use (affinity mask and
  //! cgroup quota), at most 4x that many.
  int num_threads = 0;
  //! Where the GPU backend caches its TensorRT engines; empty = $DDAD_RT_CACHE_DIR, else
  //! $XDG_CACHE_HOME/ddad_rt/tensorrt, else ~/.cache/ddad_rt/tensorrt.
  std::string cache_dir;
};

//! Where score() writes, indexed by Score. Scores are [n]; maps are [n, h, w]. Every score
//! the bundle has needs a score pointer; maps are either all null (not wanted) or all set.
//! Pointers for scores the bundle does not have are ignored.
struct ScoreOutputs {
  std::array<float*, kNumScores> scores{};
  std::array<float*, kNumScores> maps{};
  float*& score(Score s) { return scores[static_cast<int>(s)]; }
  float*& map(Score s) { return maps[static_cast<int>(s)]; }
  float* score(Score s) const { return scores[static_cast<int>(s)]; }
  float* map(Score s) const { return maps[static_cast<int>(s)]; }
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
  //! True when the bundle provides score `s`.
  bool has_score(Score s) const { return has_[static_cast<int>(s)]; }
  const EngineOptions& options() const { return options_; }
  //! Backend name ("openvino", "tensorrt"), device ("cpu", "cuda") and precision, and why
  //! those were chosen; on a GPU also the GPU, the TensorRT version and the engine cache.
  std::map<std::string, std::string> info() const;

 private:
  Bundle bundle_;
  EngineOptions options_;
  std::string device_reason_;
  std::unique_ptr<Backend> backend_;
  std::array<bool, kNumScores> has_{};
};

//! What this build contains (backends, kernels, versions): "version", "openvino",
//! "cuda_kernels" and "tensorrt" ("true"/"false"), "cuda_architectures", "cuda_runtime",
//! "tensorrt_headers".
std::map<std::string, std::string> build_info();

}  // namespace ddad_rt
