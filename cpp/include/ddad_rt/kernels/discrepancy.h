// The fused kernels: one pass over the members' reconstructions gives the A_rec, A_intra and
// A_inter maps and their image scores (spatial means); one pass over a refinement network's
// logits gives the refined map and its score.
#pragma once

#include <cstdint>

namespace ddad_rt {

//! Where a kernel writes one map: image i's map starts at data + i * image_stride. A null
//! `data` means the map is not wanted; image_stride 0 means hw (maps packed back to back).
struct MapOut {
  float* data = nullptr;
  std::int64_t image_stride = 0;
};

//! Inputs and outputs of one fused discrepancy pass over a batch of n images.
struct DiscrepancyArgs {
  const float* x = nullptr;           //!< normalised input [n, hw]
  const float* udm = nullptr;         //!< UDM reconstructions [n, k, hw]
  const float* ndm = nullptr;         //!< NDM reconstructions [n, k, hw]
  const float* ndm_logvar = nullptr;  //!< AE-U: NDM log-variances [n, k, hw]; else null
  std::int64_t n = 0;
  int k = 0;
  std::int64_t hw = 0;
  MapOut map_rec, map_intra, map_inter;
  float* score_rec = nullptr;  //!< [n]
  float* score_intra = nullptr;
  float* score_inter = nullptr;
};

//! Inputs and outputs of the refinement post-kernel over a batch of n images.
struct RefineArgs {
  const float* logits = nullptr;  //!< the refinement network's output [n, 2, hw]
  std::int64_t n = 0;
  std::int64_t hw = 0;
  MapOut map;                 //!< refined map = softmax channel 1
  float* score = nullptr;     //!< [n] spatial mean of the refined map
};

namespace cpu {

//! Runs the fused discrepancy kernel on the CPU. Image means are accumulated in double
//! in pixel order, so results do not depend on threading.
void discrepancy(const DiscrepancyArgs& args);

//! Runs the refinement post-kernel on the CPU (double accumulation, pixel order).
void refine(const RefineArgs& args);

}  // namespace cpu
}  // namespace ddad_rt
