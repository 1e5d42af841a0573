// The fused discrepancy kernel: one pass over the members' reconstructions gives the
// A_rec, A_intra and A_inter maps and their image scores (spatial means).
#pragma once

#include <cstdint>

namespace ddad_rt {

//! Inputs and outputs of one fused discrepancy pass over a batch of n images.
struct DiscrepancyArgs {
  const float* x = nullptr;    //!< normalised input [n, hw]
  const float* udm = nullptr;  //!< UDM reconstructions [n, k, hw]
  const float* ndm = nullptr;  //!< NDM reconstructions [n, k, hw]
  std::int64_t n = 0;
  int k = 0;
  std::int64_t hw = 0;
  float* map_rec = nullptr;  //!< [n, hw] or nullptr when maps are not wanted
  float* map_intra = nullptr;
  float* map_inter = nullptr;
  float* score_rec = nullptr;  //!< [n]
  float* score_intra = nullptr;
  float* score_inter = nullptr;
};

namespace cpu {

//! Runs the fused discrepancy kernel on the CPU. Image means are accumulated in double
//! in pixel order, so results do not depend on threading.
void discrepancy(const DiscrepancyArgs& args);

}  // namespace cpu
}  // namespace ddad_rt
