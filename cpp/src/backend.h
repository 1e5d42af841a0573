// The one interface every backend implements: "score this chunk into these outputs". The
// CPU backend (cpu/pipeline.cc: OpenVINO's networks + the native kernels) and the TensorRT
// backend (the whole pipeline on the GPU) both run normalisation, networks and kernels
// themselves, so a new score is added behind this interface once per backend and tested
// against the CPU reference by one test body (tests/python/test_backends.py).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/engine.h"

namespace ddad_rt {

//! The two refinement networks of ASR (DESIGN.md section 2).
enum class Refiner { kDual, kIntra };

//! The bundle's graph role of a refiner: "refine_dual" or "refine_intra".
inline const char* refiner_role(Refiner r) {
  return r == Refiner::kDual ? "refine_dual" : "refine_intra";
}

//! Input channels of a refiner: R_dual sees [A_inter, A_intra], R_intra sees [A_intra].
inline int refiner_channels(Refiner r) { return r == Refiner::kDual ? 2 : 1; }

//! What one call computes: the scores wanted (each one the bundle has, never empty) and
//! whether their maps are wanted too. Only the networks those scores need run: the
//! ensemble always (rec, intra and inter come from its one fused kernel), R_dual for
//! r_dual, R_intra for r_intra.
struct Selection {
  ScoreSet scores;
  bool maps = false;
  bool wants(Score s) const { return scores.contains(s); }
};

//! Runs a bundle's pipeline. Implementations are safe to call from several threads at once.
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
  //! Scores images [start, start + count) of `images` (count <= max_batch; already
  //! validated) into `out` at offset `start`: the selected scores, and their maps when
  //! `selection.maps`. Writes no other output.
  virtual void score_chunk(const ImageBatch& images, std::int64_t start, std::int64_t count,
                           const ScoreOutputs& out, const Selection& selection) = 0;
  //! More for Engine::info (e.g. threads, the GPU, the engine cache).
  virtual std::map<std::string, std::string> extra_info() const { return {}; }
  //! Engine::stage_times; none by default.
  virtual std::map<std::string, StageTime> stage_times(bool /*reset*/) { return {}; }
};

}  // namespace ddad_rt
