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
#include "ddad_rt/device.h"
#include "ddad_rt/export.h"
#include "ddad_rt/scores.h"
#include "ddad_rt/tensor.h"

namespace ddad_rt {

class Backend;
struct Selection;

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

//! Where score() writes, indexed by Score. Scores are [n]; maps are [n, h, w].
//! The scores computed are those with a score pointer set: at least one, each one the
//! bundle has (Engine::scores(); for every score, set a pointer for each of them). Their
//! maps are either all null (not wanted) or all set. Only the networks the chosen scores
//! need run: rec, intra and inter come from the ensemble alone, r_dual adds R_dual, r_intra
//! adds R_intra.
struct ScoreOutputs {
  std::array<float*, kNumScores> scores{};
  std::array<float*, kNumScores> maps{};
  float*& score(Score s) { return scores[static_cast<int>(s)]; }
  float*& map(Score s) { return maps[static_cast<int>(s)]; }
  float* score(Score s) const { return scores[static_cast<int>(s)]; }
  float* map(Score s) const { return maps[static_cast<int>(s)]; }
};

//! Time one pipeline stage took, summed over calls (Engine::stage_times).
struct StageTime {
  double seconds = 0;       //!< wall time inside the stage, summed over calls
  std::int64_t images = 0;  //!< images it processed
};

//! A loaded bundle bound to a backend. score() and predict() may be called from several
//! threads at once.
class DDAD_RT_API Engine {
 public:
  //! Throws BundleError (bundle), EngineError (device, backend) or std::invalid_argument
  //! (an option out of range).
  Engine(const std::string& bundle_dir, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  //! Validates `images` and `out` (throws std::invalid_argument naming the problem) and
  //! scores them.
  void score(const ImageBatch& images, const ScoreOutputs& out) const;

  //! Scores `images` for `score` (one the bundle has) into scores_out [n] and flags
  //! (flags_out [n]: 1 above the threshold, else 0) those above the bundle's calibrated
  //! threshold at `specificity`, which it returns. Throws as threshold() does.
  double predict(const ImageBatch& images, double specificity, Score score, float* scores_out,
                 std::uint8_t* flags_out) const;

  //! The bundle's calibrated threshold for `score` at `specificity` (e.g. 0.95). Throws
  //! BundleError when the bundle is not calibrated (`ddad-rt calibrate` sets it), and
  //! std::invalid_argument when it is, but not at that specificity or for that score.
  double threshold(Score score, double specificity) const;

  //! Checks an input batch without running it; score() calls this first.
  void validate(const ImageBatch& images) const;

  const Bundle& bundle() const { return bundle_; }
  //! The scores the bundle provides.
  ScoreSet scores() const { return has_; }
  //! True when the bundle provides score `s`.
  bool has_score(Score s) const { return has_.contains(s); }
  //! The score a screening flag uses unless told otherwise (manifest "default_score").
  Score default_score() const { return default_score_; }
  const EngineOptions& options() const { return options_; }
  //! Backend name ("openvino", "tensorrt"), device ("cpu", "cuda") and precision, and why
  //! those were chosen; on a GPU also the GPU, the TensorRT version and the engine cache.
  std::map<std::string, std::string> info() const;
  //! Where the time goes: wall time per pipeline stage (e.g. "input", "ensemble",
  //! "discrepancy", "refine_dual", "refine_intra", "refine_softmax" on the CPU), summed over
  //! every call since the engine was made or last reset (`reset` zeroes the sums after
  //! reading them). Concurrent calls add up, so the sum can exceed elapsed time. Backends
  //! that do not time their stages (TensorRT: its stages overlap on the GPU) return none.
  std::map<std::string, StageTime> stage_times(bool reset = false);

 private:
  void create_backend(const CudaStatus& status);
  Selection select(const ScoreOutputs& out) const;

  Bundle bundle_;
  EngineOptions options_;
  std::string device_reason_;
  std::unique_ptr<Backend> backend_;
  ScoreSet has_;
  Score default_score_ = Score::kInter;
};

//! What this build contains (backends, kernels, versions): "version", "openvino",
//! "cuda_kernels" and "tensorrt" ("true"/"false"), "cuda_architectures", "cuda_runtime",
//! "tensorrt_headers".
DDAD_RT_API std::map<std::string, std::string> build_info();

}  // namespace ddad_rt
