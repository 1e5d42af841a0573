#include "ddad_rt/kernels/discrepancy.h"

#include "ddad_rt/kernels/discrepancy_math.h"

namespace ddad_rt::cpu {

void discrepancy(const DiscrepancyArgs& a) {
  const std::int64_t hw = a.hw;
  const std::int64_t member_stride = hw;
  const std::int64_t image_stride = static_cast<std::int64_t>(a.k) * hw;
  const bool want_maps = a.map_rec != nullptr;
  for (std::int64_t i = 0; i < a.n; ++i) {
    const float* x = a.x + i * hw;
    const float* udm = a.udm + i * image_stride;
    const float* ndm = a.ndm + i * image_stride;
    double sum_rec = 0.0, sum_intra = 0.0, sum_inter = 0.0;
    for (std::int64_t p = 0; p < hw; ++p) {
      const PixelDiscrepancy d = discrepancy_pixel(x[p], udm + p, ndm + p, a.k, member_stride);
      sum_rec += d.rec;
      sum_intra += d.intra;
      sum_inter += d.inter;
      if (want_maps) {
        a.map_rec[i * hw + p] = d.rec;
        a.map_intra[i * hw + p] = d.intra;
        a.map_inter[i * hw + p] = d.inter;
      }
    }
    const double inv = 1.0 / static_cast<double>(hw);
    a.score_rec[i] = static_cast<float>(sum_rec * inv);
    a.score_intra[i] = static_cast<float>(sum_intra * inv);
    a.score_inter[i] = static_cast<float>(sum_inter * inv);
  }
}

}  // namespace ddad_rt::cpu
