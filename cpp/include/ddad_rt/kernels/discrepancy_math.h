// Per-pixel math of DDAD-ASR's anomaly maps (DESIGN.md section 2), written once for the CPU
// loops and the CUDA kernels: both call these functions, so CPU tests check the GPU math.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DDAD_HD __host__ __device__ __forceinline__
#else
#define DDAD_HD inline
#endif

namespace ddad_rt {

//! The three discrepancy values of one pixel.
struct PixelDiscrepancy {
  float rec;    //!< A_rec   = (x - mu_B)^2            (AE-U: / sigma^2)
  float intra;  //!< A_intra = std over NDM members    (AE-U: sqrt(var / sigma^2))
  float inter;  //!< A_inter = |mu_A - mu_B|           (AE-U: / sigma)
};

//! Maps one stored pixel value to the network's input space: (v / full_scale - mean) / std,
//! with full_scale 255 (uint8), 65535 (uint16) or 1 (float in [0, 1]). Divisions, not
//! multiplications by reciprocals, so the result is bit-identical to training's
//! `(x / 255 - 0.5) / 0.5` in PyTorch and NumPy.
DDAD_HD float normalize_pixel(float v, float full_scale, float mean, float std) {
  return (v / full_scale - mean) / std;
}

//! Discrepancies of one pixel. `udm` and `ndm` point at member 0's value of this pixel;
//! member m sits at offset m * stride. Requires k >= 2 (A_intra is a sample std).
//! `ndm_logvar` (AE-U only, else null) holds the NDM members' predicted log-variances s_k;
//! then sigma^2 = mean_k exp(s_k) normalises all three maps, as the authors' evaluation does.
DDAD_HD PixelDiscrepancy discrepancy_pixel(float x, const float* udm, const float* ndm,
                                           const float* ndm_logvar, int k, std::int64_t stride) {
  float sum_a = 0.f;
  float sum_b = 0.f;
  for (int m = 0; m < k; ++m) {
    sum_a += udm[m * stride];
    sum_b += ndm[m * stride];
  }
  const float inv_k = 1.f / static_cast<float>(k);
  const float mu_a = sum_a * inv_k;
  const float mu_b = sum_b * inv_k;
  // Two-pass variance: K is tiny, and this is exact where the one-pass formula cancels.
  float ss = 0.f;
  for (int m = 0; m < k; ++m) {
    const float d = ndm[m * stride] - mu_b;
    ss += d * d;
  }
  const float var = ss / static_cast<float>(k - 1);
  const float diff = x - mu_b;
  PixelDiscrepancy out;
  if (ndm_logvar == nullptr) {
    out.rec = diff * diff;
    out.intra = sqrtf(var);
    out.inter = fabsf(mu_a - mu_b);
  } else {
    float sum_u = 0.f;
    for (int m = 0; m < k; ++m) sum_u += expf(ndm_logvar[m * stride]);
    const float sigma2 = sum_u * inv_k;
    out.rec = diff * diff / sigma2;
    out.intra = sqrtf(var / sigma2);
    out.inter = fabsf(mu_a - mu_b) / sqrtf(sigma2);
  }
  return out;
}

//! The refined anomaly probability of one pixel: channel 1 of the 2-way softmax over the
//! refinement network's logits (l0 = normal, l1 = anomalous). Written as a logistic of the
//! difference, which equals the softmax exactly and cannot overflow: exp(+inf) gives 0.
DDAD_HD float refined_pixel(float l0, float l1) { return 1.f / (1.f + expf(l0 - l1)); }

}  // namespace ddad_rt
