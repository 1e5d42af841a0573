// The fused kernels against a plain double-precision reference written straight from
// DESIGN.md section 2, on random data with several K and image counts, with and without the
// AE-U uncertainty normalisation; and the refinement post-kernel against a softmax.
#include <cmath>
#include <random>
#include <vector>

#include "ddad_rt/kernels/discrepancy.h"
#include "ddad_rt/kernels/discrepancy_math.h"
#include "testing.h"

namespace {

struct Reference {
  std::vector<double> rec, intra, inter;          // maps [n, hw]
  std::vector<double> s_rec, s_intra, s_inter;    // scores [n]
};

// recon[i][m][p] laid out [n, k, hw] as in the engine.
// logvar empty = plain AE; else AE-U log-variances [n, k, hw] of the NDM members.
Reference reference(const std::vector<float>& x, const std::vector<float>& udm,
                    const std::vector<float>& ndm, const std::vector<float>& logvar, int n,
                    int k, int hw) {
  Reference r;
  r.rec.resize(n * hw);
  r.intra.resize(n * hw);
  r.inter.resize(n * hw);
  r.s_rec.assign(n, 0.0);
  r.s_intra.assign(n, 0.0);
  r.s_inter.assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < hw; ++p) {
      double mu_a = 0, mu_b = 0;
      for (int m = 0; m < k; ++m) {
        mu_a += udm[(i * k + m) * hw + p];
        mu_b += ndm[(i * k + m) * hw + p];
      }
      mu_a /= k;
      mu_b /= k;
      double var = 0;
      for (int m = 0; m < k; ++m) {
        const double d = ndm[(i * k + m) * hw + p] - mu_b;
        var += d * d;
      }
      var /= (k - 1);
      double sigma2 = 1.0;
      if (!logvar.empty()) {
        sigma2 = 0;
        for (int m = 0; m < k; ++m) sigma2 += std::exp(double(logvar[(i * k + m) * hw + p]));
        sigma2 /= k;
      }
      const double xv = x[i * hw + p];
      r.rec[i * hw + p] = (xv - mu_b) * (xv - mu_b) / sigma2;
      r.intra[i * hw + p] = std::sqrt(var / sigma2);
      r.inter[i * hw + p] = std::fabs(mu_a - mu_b) / std::sqrt(sigma2);
      r.s_rec[i] += r.rec[i * hw + p] / hw;
      r.s_intra[i] += r.intra[i * hw + p] / hw;
      r.s_inter[i] += r.inter[i * hw + p] / hw;
    }
  }
  return r;
}

void run_case(int n, int k, int hw, unsigned seed, bool maps, bool uncertainty = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);
  std::uniform_real_distribution<float> s(-6.f, 2.f);  // log-variances, as AE-U predicts
  std::vector<float> x(n * hw), udm(n * k * hw), ndm(n * k * hw), logvar;
  for (auto& v : x) v = u(rng);
  for (auto& v : udm) v = u(rng);
  for (auto& v : ndm) v = u(rng);
  if (uncertainty) {
    logvar.resize(n * k * hw);
    for (auto& v : logvar) v = s(rng);
  }
  std::vector<float> m_rec(n * hw, -1), m_intra(n * hw, -1), m_inter(n * hw, -1);
  std::vector<float> s_rec(n, -1), s_intra(n, -1), s_inter(n, -1);
  ddad_rt::DiscrepancyArgs a;
  a.x = x.data();
  a.udm = udm.data();
  a.ndm = ndm.data();
  a.ndm_logvar = uncertainty ? logvar.data() : nullptr;
  a.n = n;
  a.k = k;
  a.hw = hw;
  if (maps) {
    a.map_rec.data = m_rec.data();
    a.map_intra.data = m_intra.data();
    a.map_inter.data = m_inter.data();
  }
  a.score_rec = s_rec.data();
  a.score_intra = s_intra.data();
  a.score_inter = s_inter.data();
  ddad_rt::cpu::discrepancy(a);
  const Reference r = reference(x, udm, ndm, logvar, n, k, hw);
  for (int i = 0; i < n; ++i) {
    CHECK_NEAR(s_rec[i], r.s_rec[i], 1e-5 * std::fabs(r.s_rec[i]) + 1e-7);
    CHECK_NEAR(s_intra[i], r.s_intra[i], 1e-5 * std::fabs(r.s_intra[i]) + 1e-7);
    CHECK_NEAR(s_inter[i], r.s_inter[i], 1e-5 * std::fabs(r.s_inter[i]) + 1e-7);
  }
  if (maps) {
    // Relative: AE-U maps divided by a small sigma^2 reach large values.
    double worst = 0;
    for (int j = 0; j < n * hw; ++j) {
      worst = std::fmax(worst, std::fabs(m_rec[j] - r.rec[j]) / (1 + std::fabs(r.rec[j])));
      worst = std::fmax(worst, std::fabs(m_intra[j] - r.intra[j]) / (1 + std::fabs(r.intra[j])));
      worst = std::fmax(worst, std::fabs(m_inter[j] - r.inter[j]) / (1 + std::fabs(r.inter[j])));
    }
    CHECK(worst <= 1e-5);
  } else {
    CHECK(m_rec[0] == -1.f);  // maps not wanted: untouched
  }
}

}  // namespace

TEST(discrepancy_matches_reference_k3) { run_case(5, 3, 64 * 64, 1, true); }
TEST(discrepancy_matches_reference_k2) { run_case(3, 2, 32 * 48, 2, true); }
TEST(discrepancy_matches_reference_k5_scores_only) { run_case(7, 5, 16 * 16, 3, false); }
TEST(discrepancy_uncertainty_matches_reference_k3) { run_case(4, 3, 64 * 64, 4, true, true); }
TEST(discrepancy_uncertainty_matches_reference_k2_scores_only) {
  run_case(3, 2, 32 * 32, 5, false, true);
}

TEST(discrepancy_writes_strided_maps) {
  // The engine packs [A_inter, A_intra] as the two channels of R_dual's input [n, 2, hw].
  const int n = 3, k = 3, hw = 40;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(n * hw), udm(n * k * hw), ndm(n * k * hw);
  for (auto* v : {&x, &udm, &ndm}) for (auto& e : *v) e = u(rng);
  std::vector<float> packed(n * 2 * hw, -1), intra(n * hw), inter(n * hw);
  std::vector<float> s(3 * n);
  ddad_rt::DiscrepancyArgs a;
  a.x = x.data(); a.udm = udm.data(); a.ndm = ndm.data();
  a.n = n; a.k = k; a.hw = hw;
  a.score_rec = s.data(); a.score_intra = s.data() + n; a.score_inter = s.data() + 2 * n;
  a.map_inter = {packed.data(), 2 * hw};
  a.map_intra = {packed.data() + hw, 2 * hw};
  ddad_rt::cpu::discrepancy(a);
  a.map_inter = {inter.data(), 0};
  a.map_intra = {intra.data(), 0};
  ddad_rt::cpu::discrepancy(a);
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < hw; ++p) {
      CHECK(packed[i * 2 * hw + p] == inter[i * hw + p]);
      CHECK(packed[i * 2 * hw + hw + p] == intra[i * hw + p]);
    }
  }
}

TEST(refine_matches_softmax_reference) {
  const int n = 4, hw = 64 * 64;
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 4.f);
  std::vector<float> logits(n * 2 * hw);
  for (auto& v : logits) v = g(rng);
  logits[0] = 200.f;   // extreme logits must not overflow into NaN
  logits[hw] = -200.f;
  logits[1] = -200.f;
  logits[hw + 1] = 200.f;
  std::vector<float> map(n * hw), score(n);
  ddad_rt::RefineArgs a;
  a.logits = logits.data(); a.n = n; a.hw = hw;
  a.map = {map.data(), 0};
  a.score = score.data();
  ddad_rt::cpu::refine(a);
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int p = 0; p < hw; ++p) {
      const double l0 = logits[i * 2 * hw + p], l1 = logits[i * 2 * hw + hw + p];
      const double mx = std::fmax(l0, l1);
      const double ref = std::exp(l1 - mx) / (std::exp(l0 - mx) + std::exp(l1 - mx));
      CHECK_NEAR(map[i * hw + p], ref, 1e-6);
      sum += ref;
    }
    CHECK_NEAR(score[i], sum / hw, 1e-6);
  }
  CHECK(map[0] == 0.f);
  CHECK(map[1] == 1.f);
}

TEST(discrepancy_identical_members_give_zero_discrepancy) {
  // All members agree -> A_intra = A_inter = 0; A_rec is the plain squared error.
  const int n = 2, k = 3, hw = 16;
  std::vector<float> x(n * hw, 0.25f), udm(n * k * hw, -0.5f), ndm(n * k * hw, -0.5f);
  std::vector<float> s_rec(n), s_intra(n), s_inter(n);
  ddad_rt::DiscrepancyArgs a;
  a.x = x.data(); a.udm = udm.data(); a.ndm = ndm.data();
  a.n = n; a.k = k; a.hw = hw;
  a.score_rec = s_rec.data(); a.score_intra = s_intra.data(); a.score_inter = s_inter.data();
  ddad_rt::cpu::discrepancy(a);
  for (int i = 0; i < n; ++i) {
    CHECK_NEAR(s_rec[i], 0.5625, 1e-7);
    CHECK(s_intra[i] == 0.f);
    CHECK(s_inter[i] == 0.f);
  }
}

TEST(normalize_pixel_matches_training_arithmetic) {
  // Training computes (u8 / 255 - 0.5) / 0.5 in float32; the engine must be bit-identical.
  for (int v = 0; v < 256; ++v) {
    const float expected = (static_cast<float>(v) / 255.f - 0.5f) / 0.5f;
    CHECK(ddad_rt::normalize_pixel(static_cast<float>(v), 255.f, 0.5f, 0.5f) == expected);
  }
  CHECK(ddad_rt::normalize_pixel(0.f, 255.f, 0.5f, 0.5f) == -1.f);
  CHECK(ddad_rt::normalize_pixel(255.f, 255.f, 0.5f, 0.5f) == 1.f);
  CHECK(ddad_rt::normalize_pixel(65535.f, 65535.f, 0.5f, 0.5f) == 1.f);
}
