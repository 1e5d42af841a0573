// The native refinement network (Winograd F(4x4, 3x3) for the middle convolution) against a
// plain double-precision direct convolution written from the layer definitions, over image
// sizes that are and are not whole 4x4 tiles, 1 and 2 input channels, widths 16 to 128,
// single- and multi-threaded, batches smaller and larger than the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/lane_vectors.h"
#include "cpu/thread_pool.h"
#include "ddad_rt/kernels/refine_net.h"
#include "ddad_rt/kernels/winograd_math.h"
#include "testing.h"

namespace {

using ddad_rt::Conv3x3;
using ddad_rt::RefineNetWeights;

Conv3x3 random_conv(int cin, int cout, std::mt19937& rng) {
  // He-initialised weights and small biases, the scale of a trained network's layers.
  std::normal_distribution<float> w(0.0f, std::sqrt(2.0f / (9.0f * cin)));
  std::normal_distribution<float> b(0.0f, 0.1f);
  Conv3x3 c{cin, cout, std::vector<float>(static_cast<size_t>(cout) * cin * 9), std::vector<float>(cout)};
  for (auto& v : c.w) v = w(rng);
  for (auto& v : c.b) v = b(rng);
  return c;
}

// Direct 3x3 convolution, padding 1, in double: in [cin, h, w] -> out [cout, h, w].
// Not instrumented by the sanitizers: it is the test's reference, single-threaded, and its
// billions of multiply-adds took 7 of ThreadSanitizer's 7.5 minutes in CI; the network under
// test stays instrumented.
__attribute__((no_sanitize("address", "undefined", "thread")))
std::vector<double> conv(const std::vector<double>& in, const Conv3x3& c, int h, int w, bool relu) {
  std::vector<double> out(static_cast<size_t>(c.cout) * h * w);
  for (int o = 0; o < c.cout; ++o) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        double s = c.b[o];
        for (int i = 0; i < c.cin; ++i) {
          for (int ky = 0; ky < 3; ++ky) {
            for (int kx = 0; kx < 3; ++kx) {
              const int yy = y + ky - 1, xx = x + kx - 1;
              if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
              s += in[(static_cast<size_t>(i) * h + yy) * w + xx] * c.w[(static_cast<size_t>(o) * c.cin + i) * 9 + ky * 3 + kx];
            }
          }
        }
        out[(static_cast<size_t>(o) * h + y) * w + x] = relu ? std::max(s, 0.0) : s;
      }
    }
  }
  return out;
}

// fp32 Winograd F(4x4, 3x3) carries a few times direct convolution's rounding error
// (measured 1e-7 to 1e-6 here). In bf16 its GEMM inputs (the transformed activations and
// weights) carry bf16's 2^-9 relative rounding, which the output transform's large
// coefficients (up to 8) amplify: measured 0.0075-0.0114 on these networks (logit scale
// 0.3-0.5), 8-10x the 0.0008-0.0014 of direct convolution with bf16 inputs and weights
// (DDAD_RT_TEST_VERBOSE=1 prints both). Whether that is good enough for a bundle is what
// `ddad-rt check-precision` measures on its images.
constexpr double kFp32Tolerance = 2e-5;
constexpr double kBf16Tolerance = 0.02;

void check_against_reference(int cin, int mid, int h, int w, int n, int threads,
                             const std::string& isa = "auto", const std::string& precision = "fp32") {
  std::mt19937 rng(cin * 1000 + mid + h * 7 + w * 13 + n + threads);
  RefineNetWeights wt{random_conv(cin, mid, rng), random_conv(mid, mid, rng), random_conv(mid, 2, rng)};
  ddad_rt::cpu::RefineNet net(wt, threads, isa, precision);
  if (isa == "generic") CHECK(net.kernels() == (precision == "bf16" ? "generic_bf16" : "generic"));
  if (isa == "auto" && precision == "bf16") CHECK(net.kernels() == "avx512_bf16");
  // Anomaly maps are non-negative with a few bright spots.
  std::exponential_distribution<float> maps_dist(20.0f);
  std::vector<float> maps(static_cast<size_t>(n) * cin * h * w);
  for (auto& v : maps) v = maps_dist(rng);
  std::vector<float> logits(static_cast<size_t>(n) * 2 * h * w, -1e30f);
  net.run(maps.data(), n, h, w, logits.data());
  double worst = 0.0, scale = 0.0;
  for (int i = 0; i < n; ++i) {
    std::vector<double> x(maps.begin() + static_cast<long>(i) * cin * h * w,
                          maps.begin() + static_cast<long>(i + 1) * cin * h * w);
    const auto ref = conv(conv(conv(x, wt.conv1, h, w, true), wt.conv2, h, w, true), wt.conv3, h, w, false);
    if (std::getenv("DDAD_RT_TEST_VERBOSE") && precision == "bf16") {
      // What direct convolution with bf16 inputs and weights would be off by.
      auto round_bf16 = [](double v) { return static_cast<double>(ddad_rt::cpu::from_bf16(ddad_rt::cpu::to_bf16(static_cast<float>(v)))); };
      auto h1 = conv(x, wt.conv1, h, w, true);
      for (double& v : h1) v = round_bf16(v);
      Conv3x3 c2 = wt.conv2;
      for (float& v : c2.w) v = static_cast<float>(round_bf16(v));
      const auto direct = conv(conv(h1, c2, h, w, true), wt.conv3, h, w, false);
      double dw = 0;
      for (size_t p = 0; p < ref.size(); ++p) dw = std::max(dw, std::fabs(ref[p] - direct[p]));
      std::printf("  direct bf16 conv2: max abs error %.3g\n", dw);
    }
    for (size_t p = 0; p < ref.size(); ++p) {
      worst = std::max(worst, std::fabs(ref[p] - logits[static_cast<size_t>(i) * 2 * h * w + p]));
      scale = std::max(scale, std::fabs(ref[p]));
    }
  }
  const double tolerance = precision == "bf16" ? kBf16Tolerance : kFp32Tolerance;
  if (std::getenv("DDAD_RT_TEST_VERBOSE")) {
    std::printf("  %s %s cin %d mid %d %dx%d: max abs error %.3g of logit scale %.3g (%.2g)\n",
                isa.c_str(), precision.c_str(), cin, mid, h, w, worst, scale, worst / std::max(scale, 1.0));
  }
  if (!(worst <= tolerance * std::max(scale, 1.0))) {
    std::ostringstream os;
    os << precision << " " << isa << " cin " << cin << " mid " << mid << " " << h << "x" << w
       << " n " << n << " threads " << threads << ": max abs error " << worst << " (logit scale "
       << scale << ")";
    ::testing::record_failure(__FILE__, __LINE__, os.str());
  }
}

}  // namespace

TEST(winograd_transforms_reproduce_a_direct_tile) {
  // One 6x6 window, one 3x3 kernel: A^T[(G g G^T) . (B^T d B)]A equals the 4x4 direct result.
  namespace wg = ddad_rt::winograd;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  double d[6][6], g[9], ug[36];
  for (auto& row : d) for (double& v : row) v = u(rng);
  for (double& v : g) v = u(rng);
  wg::weight_transform(g, ug);
  double vd[6][6], tmp[6][6];
  for (int j = 0; j < 6; ++j) {
    double col[6], o[6];
    for (int i = 0; i < 6; ++i) col[i] = d[i][j];
    wg::input_1d(col, o);
    for (int i = 0; i < 6; ++i) tmp[i][j] = o[i];
  }
  for (int i = 0; i < 6; ++i) wg::input_1d(tmp[i], vd[i]);
  double m[6][6], t2[4][6];
  for (int i = 0; i < 6; ++i) for (int j = 0; j < 6; ++j) m[i][j] = vd[i][j] * ug[i * 6 + j];
  for (int j = 0; j < 6; ++j) {
    double col[6], o[4];
    for (int i = 0; i < 6; ++i) col[i] = m[i][j];
    wg::output_1d(col, o);
    for (int i = 0; i < 4; ++i) t2[i][j] = o[i];
  }
  for (int i = 0; i < 4; ++i) {
    double y[4];
    wg::output_1d(t2[i], y);
    for (int j = 0; j < 4; ++j) {
      double direct = 0;
      for (int ky = 0; ky < 3; ++ky) for (int kx = 0; kx < 3; ++kx) direct += d[i + ky][j + kx] * g[ky * 3 + kx];
      CHECK_NEAR(y[j], direct, 1e-12);
    }
  }
}

TEST(refine_net_matches_direct_convolution) {
  check_against_reference(2, 128, 64, 64, 2, 1);   // the paper's R_dual at 64x64
  check_against_reference(1, 128, 64, 64, 1, 2);   // R_intra, one image split over 2 threads
  check_against_reference(2, 128, 64, 64, 3, 2);   // whole images per thread, unevenly
  check_against_reference(2, 32, 30, 21, 2, 1);    // not whole tiles; a narrow network
  check_against_reference(1, 16, 5, 7, 1, 3);      // smaller than two tiles, 3 threads
  check_against_reference(2, 48, 17, 33, 4, 2);    // width not a multiple of 64
  // The portable kernels, which a CPU with AVX-512 would otherwise never run.
  check_against_reference(2, 128, 64, 64, 1, 1, "generic");
  check_against_reference(2, 32, 30, 21, 2, 2, "generic");
  check_against_reference(1, 16, 5, 7, 1, 1, "generic");
}

TEST(bf16_refine_net_stays_within_bf16_rounding_of_direct_convolution) {
  // The portable emulation runs everywhere; the AVX512_BF16 kernels where the CPU has them
  // (elsewhere precision "bf16" must refuse, with the reason).
  check_against_reference(2, 128, 64, 64, 1, 1, "generic", "bf16");
  check_against_reference(2, 48, 17, 33, 2, 2, "generic", "bf16");
  std::mt19937 rng(11);
  RefineNetWeights wt{random_conv(2, 32, rng), random_conv(32, 32, rng), random_conv(32, 2, rng)};
  if (!ddad_rt::cpu::RefineNet::has_native_bf16()) {
    CHECK_THROWS_WITH(ddad_rt::cpu::RefineNet(wt, 1, "auto", "bf16"), std::invalid_argument, "AVX512_BF16");
    return;
  }
  check_against_reference(2, 128, 64, 64, 2, 1, "auto", "bf16");   // the paper's R_dual
  check_against_reference(1, 128, 64, 64, 1, 2, "auto", "bf16");   // one image over 2 threads
  check_against_reference(2, 32, 30, 21, 3, 2, "auto", "bf16");    // not whole tiles
  check_against_reference(2, 48, 17, 33, 2, 1, "auto", "bf16");    // width not a multiple of 64
  CHECK_THROWS_WITH(ddad_rt::cpu::RefineNet(wt, 1, "auto", "fp16"), std::invalid_argument, "'fp32' or 'bf16'");
}

TEST(refine_net_rejects_shapes_that_do_not_chain) {
  std::mt19937 rng(1);
  RefineNetWeights bad{random_conv(2, 32, rng), random_conv(32, 16, rng), random_conv(16, 2, rng)};
  CHECK_THROWS_WITH(ddad_rt::cpu::RefineNet(bad, 1), std::invalid_argument, "C -> M -> M -> 2");
  RefineNetWeights odd{random_conv(2, 20, rng), random_conv(20, 20, rng), random_conv(20, 2, rng)};
  CHECK_THROWS_WITH(ddad_rt::cpu::RefineNet(odd, 1), std::invalid_argument, "multiple of 16");
  RefineNetWeights good{random_conv(2, 16, rng), random_conv(16, 16, rng), random_conv(16, 2, rng)};
  CHECK_THROWS_WITH(ddad_rt::cpu::RefineNet(good, 1, "sse2"), std::invalid_argument, "'auto' or 'generic'");
}

TEST(refine_nets_sharing_one_pool_give_serial_results_from_many_threads) {
  // The engine's two refiners share one pool; 6 callers at once: one gets the pool, the
  // others run on their own threads with reused workspaces. Results must be bit-identical
  // to serial calls (run under ThreadSanitizer in .ci/sanitizers).
  std::mt19937 rng(11);
  auto pool = std::make_shared<ddad_rt::cpu::ThreadPool>(2);
  const int mid = 16, h = 16, w = 16, n = 3;
  ddad_rt::cpu::RefineNet dual(RefineNetWeights{random_conv(2, mid, rng), random_conv(mid, mid, rng),
                                                random_conv(mid, 2, rng)}, pool);
  ddad_rt::cpu::RefineNet intra(RefineNetWeights{random_conv(1, mid, rng), random_conv(mid, mid, rng),
                                                 random_conv(mid, 2, rng)}, pool);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> maps2(static_cast<size_t>(n) * 2 * h * w), maps1(static_cast<size_t>(n) * h * w);
  for (auto& v : maps2) v = u(rng);
  for (auto& v : maps1) v = u(rng);
  std::vector<float> want2(static_cast<size_t>(n) * 2 * h * w), want1(want2.size());
  dual.run(maps2.data(), n, h, w, want2.data());
  intra.run(maps1.data(), n, h, w, want1.data());
  std::atomic<int> same{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 4; ++rep) {
        std::vector<float> got(want2.size());
        const bool use_dual = (t + rep) % 2 == 0;
        (use_dual ? dual : intra).run(use_dual ? maps2.data() : maps1.data(), n, h, w, got.data());
        same += got == (use_dual ? want2 : want1);
      }
    });
  }
  for (auto& c : callers) c.join();
  CHECK(same == 24);
}
