// The fused CUDA kernels on a real GPU against their CPU emulation (host_emulation.h, which
// the CPU tests tie to the CPU kernels and NumPy). Needs no TensorRT and no OpenVINO, so it
// runs on any machine with a CUDA driver; .ci/gpu-device-check builds it with and without
// fused multiply-adds and runs it, plain and under compute-sanitizer.
//
//   kernel_check [--json PATH]            every case, then timings of the large batch
//   kernel_check --quick [--json PATH]    small cases only, no timings (compute-sanitizer)
//
// --json writes a summary: the GPU, every comparison (label, output, values that differ, max
// ulp, max relative score difference), the kernel timings (per launch and per image) and
// whether all passed.
//
// For each output it prints how many values differ bit for bit from the emulation, the
// largest difference in units in the last place (ulp) and the largest absolute difference.
// Exit status 1 when a map value is off by more ulp than allowed (below), a score by more than
// kScoreRel, or two runs of the same launch differ (the reduction order must not depend on
// scheduling); 77 (CTest's "skipped") when there is no usable GPU.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/device.h"
#include "cuda/host_emulation.h"
#include "cuda/kernels.h"

namespace {

using namespace ddad_rt::cuda;

// Maps whose math uses expf (AE-U's sigma^2, the refinement softmax) may differ from glibc's
// expf by a few ulp (CUDA's expf is within 2 ulp; measured on an H200: at most 5 ulp in the
// maps). Everything else must be bit-identical when the kernels are built as the engine
// builds them (-fmad=false, IEEE division and sqrt); -DKERNEL_CHECK_FUSED_MAD=1 marks a build
// with nvcc's default fused multiply-adds, where those maps may differ by a few ulp too.
constexpr std::int64_t kMaxUlpExp = 8;
#if KERNEL_CHECK_FUSED_MAD
constexpr std::int64_t kMaxUlpExact = 8;
#else
constexpr std::int64_t kMaxUlpExact = 0;
#endif
constexpr double kScoreRel = 1e-6;  // scores: float tile sums, double across tiles
int g_failures = 0;
std::vector<std::string> g_json_checks;   // one JSON object per comparison
std::vector<std::string> g_json_timings;  // one JSON object per timed kernel

std::string json_record(const char* label, const char* what, const char* fields) {
  return std::string("{\"case\": \"") + label + "\", \"output\": \"" + what + "\", " + fields + "}";
}

#define CHECK_CUDA(expr)                                                               \
  do {                                                                                 \
    cudaError_t e_ = (expr);                                                           \
    if (e_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,              \
                   cudaGetErrorString(e_));                                           \
      std::exit(2);                                                                    \
    }                                                                                  \
  } while (0)

// A device copy of a host vector, freed at scope exit.
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  std::size_t count = 0;
  explicit DeviceBuffer(std::size_t n) : count(n) {
    CHECK_CUDA(cudaMalloc(&ptr, (n ? n : 1) * sizeof(T)));
    CHECK_CUDA(cudaMemset(ptr, 0xff, (n ? n : 1) * sizeof(T)));  // NaN for floats
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    CHECK_CUDA(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> to_host() const {
    std::vector<T> out(count);
    CHECK_CUDA(cudaMemcpy(out.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
    return out;
  }
};

// Distance in representable floats (same-sign ordering), saturated for NaN mismatches.
std::int64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return (std::isnan(a) && std::isnan(b)) ? 0 : INT32_MAX;
  std::int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return std::llabs(static_cast<long long>(ia) - ib);
}

void compare_map(const char* label, const char* what, const std::vector<float>& gpu,
                 const std::vector<float>& ref, std::int64_t allowed_ulp) {
  std::int64_t differ = 0, max_ulp = 0;
  double max_abs = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::memcmp(&gpu[i], &ref[i], 4) != 0) ++differ;
    max_ulp = std::max(max_ulp, ulp_distance(gpu[i], ref[i]));
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(gpu[i]) - ref[i]));
  }
  const bool ok = max_ulp <= allowed_ulp;
  g_failures += !ok;
  char fields[256];
  std::snprintf(fields, sizeof fields,
                "\"values\": %zu, \"differ\": %lld, \"max_ulp\": %lld, \"allowed_ulp\": %lld, "
                "\"max_abs\": %.6g, \"passed\": %s",
                ref.size(), static_cast<long long>(differ), static_cast<long long>(max_ulp),
                static_cast<long long>(allowed_ulp), max_abs, ok ? "true" : "false");
  g_json_checks.push_back(json_record(label, what, fields));
  std::printf("  %-26s %-10s %9lld of %9zu differ, max %4lld ulp, max abs %.3g%s\n", label,
              what, static_cast<long long>(differ), ref.size(), static_cast<long long>(max_ulp),
              max_abs, ok ? "" : "   FAIL");
}

void compare_scores(const char* label, const char* what, const std::vector<float>& gpu,
                    const std::vector<float>& ref) {
  double max_rel = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(static_cast<double>(gpu[i]) - ref[i]);
    max_rel = std::max(max_rel, d / std::max(1e-30, std::fabs(static_cast<double>(ref[i]))));
  }
  const bool ok = max_rel <= kScoreRel;
  g_failures += !ok;
  char fields[160];
  std::snprintf(fields, sizeof fields, "\"values\": %zu, \"max_rel\": %.6g, \"passed\": %s",
                ref.size(), max_rel, ok ? "true" : "false");
  g_json_checks.push_back(json_record(label, what, fields));
  std::printf("  %-26s %-10s max relative difference %.3g%s\n", label, what, max_rel,
              ok ? "" : "   FAIL");
}

void require_identical(const char* label, const std::vector<float>& a,
                       const std::vector<float>& b) {
  const bool same = a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
  g_failures += !same;
  if (!same) std::printf("  %-26s two runs of one launch differ   FAIL\n", label);
}

struct DiscrepancyCase {
  int n, k;
  std::int64_t hw;
  bool uncertainty;
};

struct DiscrepancyData {
  std::vector<float> x, udm, ndm, logvar;
};

DiscrepancyData random_inputs(const DiscrepancyCase& c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f), lv(-6.f, 2.f);
  const std::int64_t img = c.n * c.hw, mem = img * c.k;
  DiscrepancyData d{std::vector<float>(img), std::vector<float>(mem), std::vector<float>(mem),
                    std::vector<float>(c.uncertainty ? mem : 0)};
  for (auto& v : d.x) v = u(rng);
  for (auto& v : d.udm) v = u(rng);
  for (auto& v : d.ndm) v = u(rng);
  for (auto& v : d.logvar) v = lv(rng);
  return d;
}

// Host emulation and GPU outputs of one discrepancy launch, in one struct of vectors.
struct DiscrepancyOut {
  std::vector<float> rec, intra, inter, dual_in, intra_in, s_rec, s_intra, s_inter;
};

DiscrepancyOut run_emulated(const DiscrepancyCase& c, const DiscrepancyData& in) {
  const std::int64_t img = c.n * c.hw;
  DiscrepancyOut o{std::vector<float>(img), std::vector<float>(img), std::vector<float>(img),
                   std::vector<float>(2 * img), std::vector<float>(img), std::vector<float>(c.n),
                   std::vector<float>(c.n), std::vector<float>(c.n)};
  std::vector<float> partials(3 * c.n * tiles_per_image(c.hw));
  DiscrepancyParams p{in.x.data(), in.udm.data(), in.ndm.data(),
                      c.uncertainty ? in.logvar.data() : nullptr, c.n, c.k, c.hw,
                      o.rec.data(), o.intra.data(), o.inter.data(), o.dual_in.data(),
                      o.intra_in.data(), partials.data(), o.s_rec.data(), o.s_intra.data(),
                      o.s_inter.data()};
  host::discrepancy(p);
  return o;
}

// Device buffers for one discrepancy launch; params() points a launch at them.
struct DiscrepancyDevice {
  DeviceBuffer<float> x, udm, ndm, logvar, rec, intra, inter, dual_in, intra_in, partials, s_rec,
      s_intra, s_inter;
  DiscrepancyCase c;
  DiscrepancyDevice(const DiscrepancyCase& cs, const DiscrepancyData& in)
      : x(in.x), udm(in.udm), ndm(in.ndm), logvar(in.logvar), rec(cs.n * cs.hw),
        intra(cs.n * cs.hw), inter(cs.n * cs.hw), dual_in(2 * cs.n * cs.hw),
        intra_in(cs.n * cs.hw), partials(3 * cs.n * tiles_per_image(cs.hw)), s_rec(cs.n), s_intra(cs.n), s_inter(cs.n),
        c(cs) {}
  // The refiners' inputs are written only for the refiners a score selection runs.
  DiscrepancyParams params(bool want_dual = true, bool want_intra = true) const {
    return {x.ptr, udm.ptr, ndm.ptr, c.uncertainty ? logvar.ptr : nullptr, c.n, c.k, c.hw,
            rec.ptr, intra.ptr, inter.ptr, want_dual ? dual_in.ptr : nullptr,
            want_intra ? intra_in.ptr : nullptr, partials.ptr, s_rec.ptr, s_intra.ptr, s_inter.ptr};
  }
  DiscrepancyOut outputs() const {
    return {rec.to_host(), intra.to_host(), inter.to_host(), dual_in.to_host(), intra_in.to_host(),
            s_rec.to_host(), s_intra.to_host(), s_inter.to_host()};
  }
};

bool untouched(const std::vector<float>& v) {  // still the 0xff fill of DeviceBuffer
  return std::all_of(v.begin(), v.end(), [](float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return bits == 0xffffffffu;
  });
}

// Score selections (only R_intra's input, or no refiner input) give the same maps and
// scores bit for bit, and leave the inputs of refiners that do not run untouched.
void check_selections(const DiscrepancyCase& c, const DiscrepancyData& in,
                      const DiscrepancyOut& all, const char* label) {
  for (const bool want_intra : {true, false}) {
    DiscrepancyDevice dev(c, in);
    CHECK_CUDA(launch_discrepancy(dev.params(false, want_intra), nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    const DiscrepancyOut got = dev.outputs();
    const bool same = got.rec == all.rec && got.intra == all.intra && got.inter == all.inter &&
                      got.s_rec == all.s_rec && got.s_intra == all.s_intra &&
                      got.s_inter == all.s_inter && (!want_intra || got.intra_in == all.intra_in);
    const bool clean = untouched(got.dual_in) && (want_intra || untouched(got.intra_in));
    g_failures += !(same && clean);
    const char* what = want_intra ? "select r_intra" : "select none";
    char fields[96];
    std::snprintf(fields, sizeof fields, "\"same_as_all\": %s, \"unused_untouched\": %s, \"passed\": %s",
                  same ? "true" : "false", clean ? "true" : "false", same && clean ? "true" : "false");
    g_json_checks.push_back(json_record(label, what, fields));
    std::printf("  %-26s %-10s %s, other refiner inputs %s%s\n", label, what,
                same ? "identical to all" : "DIFFERENT", clean ? "untouched" : "WRITTEN",
                same && clean ? "" : "   FAIL");
  }
}

void check_discrepancy(const DiscrepancyCase& c, unsigned seed) {
  const DiscrepancyData in = random_inputs(c, seed);
  const DiscrepancyOut ref = run_emulated(c, in);
  DiscrepancyDevice dev(c, in);
  CHECK_CUDA(launch_discrepancy(dev.params(), nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  const DiscrepancyOut got = dev.outputs();
  CHECK_CUDA(launch_discrepancy(dev.params(), nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  const DiscrepancyOut again = dev.outputs();

  char label[96];
  std::snprintf(label, sizeof label, "discrepancy n=%d k=%d hw=%lld%s", c.n, c.k,
                static_cast<long long>(c.hw), c.uncertainty ? " AE-U" : "");
  const std::int64_t allowed = c.uncertainty ? kMaxUlpExp : kMaxUlpExact;
  compare_map(label, "A_rec", got.rec, ref.rec, allowed);
  compare_map(label, "A_intra", got.intra, ref.intra, allowed);
  compare_map(label, "A_inter", got.inter, ref.inter, allowed);
  compare_map(label, "R_dual in", got.dual_in, ref.dual_in, allowed);
  compare_scores(label, "rec", got.s_rec, ref.s_rec);
  compare_scores(label, "intra", got.s_intra, ref.s_intra);
  compare_scores(label, "inter", got.s_inter, ref.s_inter);
  compare_map(label, "R_intra in", got.intra_in, ref.intra, allowed);
  require_identical(label, again.s_rec, got.s_rec);
  require_identical(label, again.s_intra, got.s_intra);
  require_identical(label, again.rec, got.rec);
  check_selections(c, in, got, label);
}

void check_refine(int n, std::int64_t hw, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  std::vector<float> logits(2 * n * hw);
  for (auto& v : logits) v = u(rng);
  logits[0] = 1e30f;  // extreme logits must give 0 and 1, never NaN
  logits[hw] = -1e30f;
  std::vector<float> map(n * hw), score(n), partials(n * tiles_per_image(hw));
  host::refine({logits.data(), n, hw, map.data(), partials.data(), score.data()});

  DeviceBuffer<float> d_logits(logits), d_map(n * hw), d_partials(partials.size()), d_score(n);
  CHECK_CUDA(launch_refine({d_logits.ptr, n, hw, d_map.ptr, d_partials.ptr, d_score.ptr}, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  char label[96];
  std::snprintf(label, sizeof label, "refine n=%d hw=%lld", n, static_cast<long long>(hw));
  compare_map(label, "map", d_map.to_host(), map, kMaxUlpExp);
  compare_scores(label, "score", d_score.to_host(), score);
}

void check_normalize() {
  std::vector<std::uint8_t> u8(256);
  std::vector<std::uint16_t> u16(65536);
  std::vector<float> f32(4097);
  for (int i = 0; i < 256; ++i) u8[i] = static_cast<std::uint8_t>(i);
  for (int i = 0; i < 65536; ++i) u16[i] = static_cast<std::uint16_t>(i);
  for (int i = 0; i < 4097; ++i) f32[i] = static_cast<float>(i) / 4096.f;
  const auto run = [](const char* what, const void* host_raw, std::size_t bytes, RawType type,
                      std::int64_t count) {
    std::vector<float> ref(count);
    host::normalize({host_raw, type, 0.5f, 0.5f, count, ref.data()});
    DeviceBuffer<unsigned char> raw(bytes);
    CHECK_CUDA(cudaMemcpy(raw.ptr, host_raw, bytes, cudaMemcpyHostToDevice));
    DeviceBuffer<float> x(count);
    CHECK_CUDA(launch_normalize({raw.ptr, type, 0.5f, 0.5f, count, x.ptr}, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
    compare_map("normalize", what, x.to_host(), ref, kMaxUlpExact);
  };
  run("uint8", u8.data(), u8.size(), RawType::kUInt8, 256);
  run("uint16", u16.data(), 2 * u16.size(), RawType::kUInt16, 65536);
  run("float32", f32.data(), 4 * f32.size(), RawType::kFloat32, 4097);
}

// Median of `reps` timed launches, in microseconds, after warm-up.
template <typename Launch>
double time_us(Launch launch, int reps) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) CHECK_CUDA(launch());
  std::vector<float> ms(reps);
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(start));
    CHECK_CUDA(launch());
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    CHECK_CUDA(cudaEventElapsedTime(&ms[r], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return 1000.0 * ms[reps / 2];
}

void record_timing(const char* kernel, int n, double us, double bytes) {
  std::printf("  time %-18s n=%d 64x64 K=3: %8.1f us per launch, %7.4f us per image, %6.0f GB/s\n",
              kernel, n, us, us / n, bytes / us / 1e3);
  char json[256];
  std::snprintf(json, sizeof json,
                "{\"kernel\": \"%s\", \"batch\": %d, \"image\": \"64x64\", \"k\": 3, "
                "\"us_per_launch\": %.3f, \"us_per_image\": %.5f, \"gb_per_s\": %.1f}",
                kernel, n, us, us / n, bytes / us / 1e3);
  g_json_timings.push_back(json);
}

// The paper's 64x64 K=3 ensemble at a screening batch: bytes moved per launch vs time.
void time_kernels() {
  for (bool uncertainty : {false, true}) {
    const DiscrepancyCase c{1024, 3, 64 * 64, uncertainty};
    const DiscrepancyData in = random_inputs(c, 11);
    DiscrepancyDevice dev(c, in);
    const double us = time_us([&] { return launch_discrepancy(dev.params(), nullptr); }, 50);
    const double bytes = 4.0 * c.n * c.hw * ((uncertainty ? 3 : 2) * c.k + 1 + 3 + 2);
    record_timing(uncertainty ? "discrepancy AE-U" : "discrepancy", c.n, us, bytes);
  }
  const int n = 1024;
  const std::int64_t hw = 64 * 64;
  DeviceBuffer<float> logits(2 * n * hw), map(n * hw), partials(n * tiles_per_image(hw)), score(n);
  CHECK_CUDA(cudaMemset(logits.ptr, 0, 4 * logits.count));
  const double us = time_us(
      [&] { return launch_refine({logits.ptr, n, hw, map.ptr, partials.ptr, score.ptr}, nullptr); },
      50);
  record_timing("refine", n, us, 4.0 * n * hw * 3);
  // normalize: uint8 pixels in, float32 out
  DeviceBuffer<unsigned char> raw(n * hw);
  DeviceBuffer<float> x(n * hw);
  const double norm_us = time_us(
      [&] { return launch_normalize({raw.ptr, RawType::kUInt8, 0.5f, 0.5f, n * hw, x.ptr}, nullptr); },
      50);
  record_timing("normalize uint8", n, norm_us, 5.0 * n * hw);
}

}  // namespace

void write_json(const std::string& path, const cudaDeviceProp& prop, bool quick) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    ++g_failures;
    return;
  }
  std::fprintf(f, "{\"gpu\": \"%s\", \"compute_capability\": \"%d.%d\", \"built_for\": \"%s\", "
               "\"quick\": %s, \"failures\": %d, \"passed\": %s,\n \"checks\": [\n",
               prop.name, prop.major, prop.minor, compiled_architectures(), quick ? "true" : "false",
               g_failures, g_failures ? "false" : "true");
  for (std::size_t i = 0; i < g_json_checks.size(); ++i) {
    std::fprintf(f, "  %s%s\n", g_json_checks[i].c_str(), i + 1 < g_json_checks.size() ? "," : "");
  }
  std::fprintf(f, " ],\n \"timings\": [\n");
  for (std::size_t i = 0; i < g_json_timings.size(); ++i) {
    std::fprintf(f, "  %s%s\n", g_json_timings[i].c_str(), i + 1 < g_json_timings.size() ? "," : "");
  }
  std::fprintf(f, " ]}\n");
  std::fclose(f);
}

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--json PATH]\n", argv[0]);
      return 2;
    }
  }
  int devices = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess || devices == 0) {
    std::printf("kernel_check skipped: no usable GPU (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "no device");
    return 77;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("kernel_check on %s (sm_%d%d), architectures built: %s%s\n", prop.name,
              prop.major, prop.minor, compiled_architectures(), quick ? ", quick" : "");
  // The engine's own device probe (device.cc), as device="auto" asks it.
  const DeviceProbe probe = probe_device();
  std::printf("probe_device: ok=%d count=%d name=%s cc=%d.%d driver=%s runtime=%s%s%s\n",
              probe.ok, probe.device_count, probe.name.c_str(), probe.cc_major, probe.cc_minor,
              cuda_version_string(probe.driver_version).c_str(),
              cuda_version_string(probe.runtime_version).c_str(), probe.ok ? "" : " problem: ",
              probe.problem.c_str());
  g_failures += !probe.ok;
  check_normalize();
  check_discrepancy({3, 3, 16 * 16, false}, 1);
  check_discrepancy({2, 2, 3000, false}, 3);
  check_discrepancy({5, 3, 64 * 64, true}, 4);
  check_refine(3, 100, 7);
  check_refine(3, 64 * 64, 8);
  // batch 1 at an odd image size (37x53), AE and AE-U
  check_discrepancy({1, 3, 37 * 53, false}, 12);
  check_discrepancy({1, 3, 37 * 53, true}, 13);
  check_refine(1, 37 * 53, 14);
  if (!quick) {
    // batch 256: the paper's size, and an odd one (61x67) with AE-U
    check_discrepancy({256, 3, 64 * 64, false}, 15);
    check_discrepancy({256, 3, 61 * 67, true}, 16);
    check_refine(256, 61 * 67, 17);
    check_discrepancy({64, 3, 64 * 64, false}, 5);
    check_discrepancy({16, 5, 256 * 256, true}, 6);
    check_discrepancy({2, 3, 512 * 512, false}, 9);
    check_refine(64, 256 * 256, 10);
    time_kernels();
  }
  if (!json_path.empty()) write_json(json_path, prop, quick);
  std::printf("kernel_check: %s\n", g_failures ? "FAILED" : "passed");
  return g_failures ? 1 : 0;
}
