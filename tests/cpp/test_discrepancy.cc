// The fused discrepancy kernel against a plain double-precision reference written
// straight from DESIGN.md section 2, on random data with several K and image counts.
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
Reference reference(const std::vector<float>& x, const std::vector<float>& udm,
                    const std::vector<float>& ndm, int n, int k, int hw) {
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
      const double xv = x[i * hw + p];
      r.rec[i * hw + p] = (xv - mu_b) * (xv - mu_b);
      r.intra[i * hw + p] = std::sqrt(var);
      r.inter[i * hw + p] = std::fabs(mu_a - mu_b);
      r.s_rec[i] += r.rec[i * hw + p] / hw;
      r.s_intra[i] += r.intra[i * hw + p] / hw;
      r.s_inter[i] += r.inter[i * hw + p] / hw;
    }
  }
  return r;
}

void run_case(int n, int k, int hw, unsigned seed, bool maps) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);
  std::vector<float> x(n * hw), udm(n * k * hw), ndm(n * k * hw);
  for (auto& v : x) v = u(rng);
  for (auto& v : udm) v = u(rng);
  for (auto& v : ndm) v = u(rng);
  std::vector<float> m_rec(n * hw, -1), m_intra(n * hw, -1), m_inter(n * hw, -1);
  std::vector<float> s_rec(n, -1), s_intra(n, -1), s_inter(n, -1);
  ddad_rt::DiscrepancyArgs a;
  a.x = x.data();
  a.udm = udm.data();
  a.ndm = ndm.data();
  a.n = n;
  a.k = k;
  a.hw = hw;
  if (maps) {
    a.map_rec = m_rec.data();
    a.map_intra = m_intra.data();
    a.map_inter = m_inter.data();
  }
  a.score_rec = s_rec.data();
  a.score_intra = s_intra.data();
  a.score_inter = s_inter.data();
  ddad_rt::cpu::discrepancy(a);
  const Reference r = reference(x, udm, ndm, n, k, hw);
  for (int i = 0; i < n; ++i) {
    CHECK_NEAR(s_rec[i], r.s_rec[i], 1e-5 * std::fabs(r.s_rec[i]) + 1e-7);
    CHECK_NEAR(s_intra[i], r.s_intra[i], 1e-5 * std::fabs(r.s_intra[i]) + 1e-7);
    CHECK_NEAR(s_inter[i], r.s_inter[i], 1e-5 * std::fabs(r.s_inter[i]) + 1e-7);
  }
  if (maps) {
    double worst = 0;
    for (int j = 0; j < n * hw; ++j) {
      worst = std::fmax(worst, std::fabs(m_rec[j] - r.rec[j]));
      worst = std::fmax(worst, std::fabs(m_intra[j] - r.intra[j]));
      worst = std::fmax(worst, std::fabs(m_inter[j] - r.inter[j]));
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
