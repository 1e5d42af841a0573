#include "ddad_rt/kernels/discrepancy.h"

#include "ddad_rt/kernels/discrepancy_math.h"

namespace ddad_rt::cpu {
namespace {

float* map_row(const MapOut& m, std::int64_t i, std::int64_t hw) {
  if (m.data == nullptr) return nullptr;
  return m.data + i * (m.image_stride ? m.image_stride : hw);
}

}  // namespace

void discrepancy(const DiscrepancyArgs& a) {
  const std::int64_t hw = a.hw;
  const std::int64_t member_stride = hw;
  const std::int64_t image_stride = static_cast<std::int64_t>(a.k) * hw;
  for (std::int64_t i = 0; i < a.n; ++i) {
    const float* x = a.x + i * hw;
    const float* udm = a.udm + i * image_stride;
    const float* ndm = a.ndm + i * image_stride;
    const float* logvar = a.ndm_logvar ? a.ndm_logvar + i * image_stride : nullptr;
    float* m_rec = map_row(a.map_rec, i, hw);
    float* m_intra = map_row(a.map_intra, i, hw);
    float* m_inter = map_row(a.map_inter, i, hw);
    double sum_rec = 0.0, sum_intra = 0.0, sum_inter = 0.0;
    for (std::int64_t p = 0; p < hw; ++p) {
      const PixelDiscrepancy d = discrepancy_pixel(x[p], udm + p, ndm + p,
                                                   logvar ? logvar + p : nullptr, a.k,
                                                   member_stride);
      sum_rec += d.rec;
      sum_intra += d.intra;
      sum_inter += d.inter;
      if (m_rec) m_rec[p] = d.rec;
      if (m_intra) m_intra[p] = d.intra;
      if (m_inter) m_inter[p] = d.inter;
    }
    const double inv = 1.0 / static_cast<double>(hw);
    a.score_rec[i] = static_cast<float>(sum_rec * inv);
    a.score_intra[i] = static_cast<float>(sum_intra * inv);
    a.score_inter[i] = static_cast<float>(sum_inter * inv);
  }
}

void refine(const RefineArgs& a) {
  const std::int64_t hw = a.hw;
  for (std::int64_t i = 0; i < a.n; ++i) {
    const float* l0 = a.logits + i * 2 * hw;
    const float* l1 = l0 + hw;
    float* m = map_row(a.map, i, hw);
    double sum = 0.0;
    for (std::int64_t p = 0; p < hw; ++p) {
      const float r = refined_pixel(l0[p], l1[p]);
      sum += r;
      if (m) m[p] = r;
    }
    a.score[i] = static_cast<float>(sum / static_cast<double>(hw));
  }
}

}  // namespace ddad_rt::cpu
