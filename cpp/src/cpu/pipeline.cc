// The CPU pipeline: normalise a chunk, run the ensemble, one fused discrepancy pass, then
// only the refiners the selection needs, each followed by its softmax-mean kernel.
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "cpu/networks.h"
#include "cpu/spare_pool.h"
#include "ddad_rt/kernels/discrepancy.h"
#include "input.h"
#include "stage_clock.h"

namespace ddad_rt::cpu {
namespace {

// The stages Engine::stage_times reports, in pipeline order.
enum Stage : std::size_t { kInput, kEnsemble, kDiscrepancy, kRefineDual, kRefineIntra, kSoftmax, kStages };
constexpr std::array<const char*, kStages> kStageNames{
    "input", "ensemble", "discrepancy", "refine_dual", "refine_intra", "refine_softmax"};
using Clock = StageClock<kStages>;

// One call's buffers, kept in a SparePool: a chunk never pays for fresh pages again.
struct Workspace {
  std::vector<float> x, udm, ndm, logvar;
  // The refiners' inputs: R_dual reads [A_inter, A_intra] as two channels, R_intra [A_intra].
  std::vector<float> dual_in, intra_in, logits;
  // Scores of the discrepancy pass nobody asked for (it always computes all three).
  std::vector<float> unused_scores;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Bundle& bundle, std::unique_ptr<Networks> networks)
      : networks_(std::move(networks)), k_(bundle.k), hw_(bundle.height * bundle.width),
        mean_(bundle.norm_mean), std_(bundle.norm_std), uncertainty_(bundle.uncertainty()) {}

  std::string name() const override { return networks_->name(); }
  std::string device() const override { return "cpu"; }
  std::string precision() const override { return networks_->precision(); }
  std::string precision_reason() const override { return networks_->precision_reason(); }
  std::string refine_impl() const override { return networks_->refine_impl(); }
  std::map<std::string, std::string> extra_info() const override { return networks_->extra_info(); }
  std::map<std::string, StageTime> stage_times(bool reset) override { return clock_.read(reset); }

  void score_chunk(const ImageBatch& images, std::int64_t start, std::int64_t count,
                   const ScoreOutputs& out, const Selection& selection) override {
    std::unique_ptr<Workspace> ws = workspaces_.take();
    run(*ws, images, start, count, out, selection);
    workspaces_.give_back(std::move(ws));  // not on failure: a half-used one is simply dropped
  }

 private:
  void run(Workspace& ws, const ImageBatch& images, std::int64_t start, std::int64_t b,
           const ScoreOutputs& out, const Selection& sel) {
    const bool r_dual = sel.wants(Score::kRDual);
    const bool r_intra = sel.wants(Score::kRIntra);
    size(ws, b, r_dual, r_intra);
    {
      Clock::Scope t(clock_, kInput, b);
      normalize_images(images, start, b, mean_, std_, ws.x.data());
    }
    {
      Clock::Scope t(clock_, kEnsemble, b);
      networks_->run_ensemble(ws.x.data(), b, {ws.udm.data(), ws.ndm.data(),
                                               uncertainty_ ? ws.logvar.data() : nullptr});
    }
    {
      Clock::Scope t(clock_, kDiscrepancy, b);
      discrepancy_pass(ws, start, b, out, sel);
    }
    for (auto [refiner, score] : {std::pair{Refiner::kDual, Score::kRDual},
                                  std::pair{Refiner::kIntra, Score::kRIntra}}) {
      if (!sel.wants(score)) continue;
      {
        Clock::Scope t(clock_, refiner == Refiner::kDual ? kRefineDual : kRefineIntra, b);
        networks_->run_refine(refiner, refiner == Refiner::kDual ? ws.dual_in.data() : ws.intra_in.data(),
                              b, ws.logits.data());
      }
      RefineArgs r;
      r.logits = ws.logits.data();
      r.n = b;
      r.hw = hw_;
      r.map = {sel.maps ? out.map(score) + start * hw_ : nullptr, hw_};
      r.score = out.score(score) + start;
      Clock::Scope t(clock_, kSoftmax, b);
      cpu::refine(r);
    }
  }

  // The fused kernel writes the maps the refiners read straight into their input buffers,
  // then the ones the caller asked for are copied out of them.
  void discrepancy_pass(Workspace& ws, std::int64_t start, std::int64_t b, const ScoreOutputs& out,
                        const Selection& sel) {
    const bool r_dual = sel.wants(Score::kRDual);
    const bool r_intra = sel.wants(Score::kRIntra);
    const auto user_map = [&](Score s) -> MapOut {
      return {sel.maps && sel.wants(s) ? out.map(s) + start * hw_ : nullptr, hw_};
    };
    float* spare = ws.unused_scores.data();
    const auto user_score = [&](Score s) {
      return sel.wants(s) ? out.score(s) + start : spare + static_cast<int>(s) * b;
    };
    DiscrepancyArgs args;
    args.x = ws.x.data();
    args.udm = ws.udm.data();
    args.ndm = ws.ndm.data();
    args.ndm_logvar = uncertainty_ ? ws.logvar.data() : nullptr;
    args.n = b;
    args.k = k_;
    args.hw = hw_;
    args.map_rec = user_map(Score::kRec);
    args.map_intra = user_map(Score::kIntra);
    args.map_inter = user_map(Score::kInter);
    if (r_dual) {
      args.map_inter = {ws.dual_in.data(), 2 * hw_};
      args.map_intra = {ws.dual_in.data() + hw_, 2 * hw_};
    } else if (r_intra) {
      args.map_intra = {ws.intra_in.data(), hw_};
    }
    args.score_rec = user_score(Score::kRec);
    args.score_intra = user_score(Score::kIntra);
    args.score_inter = user_score(Score::kInter);
    cpu::discrepancy(args);
    const MapOut want_inter = user_map(Score::kInter);
    const MapOut want_intra = user_map(Score::kIntra);
    for (std::int64_t i = 0; i < b; ++i) {
      const float* intra = r_dual ? ws.dual_in.data() + (2 * i + 1) * hw_
                                  : r_intra ? ws.intra_in.data() + i * hw_ : nullptr;
      if (r_dual && r_intra) std::copy(intra, intra + hw_, ws.intra_in.data() + i * hw_);
      if (want_inter.data && r_dual) {
        const float* inter = ws.dual_in.data() + 2 * i * hw_;
        std::copy(inter, inter + hw_, want_inter.data + i * hw_);
      }
      if (want_intra.data && intra) std::copy(intra, intra + hw_, want_intra.data + i * hw_);
    }
  }

  // Grows the workspace to b images; buffers a selection does not need stay as they are.
  void size(Workspace& ws, std::int64_t b, bool r_dual, bool r_intra) const {
    const auto grow = [b](std::vector<float>& v, std::int64_t per_image) {
      const auto want = static_cast<std::size_t>(b * per_image);
      if (v.size() < want) v.resize(want);
    };
    grow(ws.x, hw_);
    grow(ws.udm, k_ * hw_);
    grow(ws.ndm, k_ * hw_);
    if (uncertainty_) grow(ws.logvar, k_ * hw_);
    if (r_dual) grow(ws.dual_in, 2 * hw_);
    if (r_intra) grow(ws.intra_in, hw_);
    if (r_dual || r_intra) grow(ws.logits, 2 * hw_);
    grow(ws.unused_scores, kNumScores);
  }

  std::unique_ptr<Networks> networks_;
  int k_;
  std::int64_t hw_;
  float mean_, std_;
  bool uncertainty_;
  SparePool<Workspace> workspaces_;
  Clock clock_{kStageNames};
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Bundle& bundle, std::unique_ptr<Networks> networks) {
  return std::make_unique<CpuBackend>(bundle, std::move(networks));
}

}  // namespace ddad_rt::cpu
