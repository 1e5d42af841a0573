// Everything of the GPU path that runs without a GPU: the CUDA kernels' per-thread work and
// reduction order (emulated on the CPU, against the CPU kernels), batch splitting and the
// TensorRT profile, fp16 weight conversion, the engine cache's keys and invalidation, the
// run-time library search, and what device="cuda" reports on a machine without a GPU.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "batching.h"
#include "cuda/host_emulation.h"
#include "ddad_rt/kernels/discrepancy.h"
#include "ddad_rt/device.h"
#include "dynlib.h"
#include "gpu_health.h"
#include "testing.h"
#include "trt/engine_cache.h"
#include "trt/gpu_precision.h"
#include "trt/half.h"

namespace fs = std::filesystem;

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A fresh empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("ddad_rt_test_" + std::to_string(getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

// ---- the CUDA kernels, emulated -------------------------------------------------------

struct KernelCase {
  int n, k;
  std::int64_t hw;
  bool uncertainty;
  bool dual, intra;
};

void check_discrepancy_emulation(const KernelCase& c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);
  std::uniform_real_distribution<float> lv(-6.f, 2.f);
  const std::int64_t img = c.n * c.hw, mem = img * c.k;
  std::vector<float> x(img), udm(mem), ndm(mem), logvar(c.uncertainty ? mem : 0);
  for (auto& v : x) v = u(rng);
  for (auto& v : udm) v = u(rng);
  for (auto& v : ndm) v = u(rng);
  for (auto& v : logvar) v = lv(rng);

  // The CPU kernel (itself checked against a double reference in test_discrepancy.cc).
  std::vector<float> rec(img), intra(img), inter(img), s_rec(c.n), s_intra(c.n), s_inter(c.n);
  ddad_rt::DiscrepancyArgs a;
  a.x = x.data();
  a.udm = udm.data();
  a.ndm = ndm.data();
  a.ndm_logvar = c.uncertainty ? logvar.data() : nullptr;
  a.n = c.n;
  a.k = c.k;
  a.hw = c.hw;
  a.map_rec.data = rec.data();
  a.map_intra.data = intra.data();
  a.map_inter.data = inter.data();
  a.score_rec = s_rec.data();
  a.score_intra = s_intra.data();
  a.score_inter = s_inter.data();
  ddad_rt::cpu::discrepancy(a);

  // The GPU kernel's blocks and threads, run in order on the CPU.
  using namespace ddad_rt::cuda;
  std::vector<float> g_rec(img, -7), g_intra(img, -7), g_inter(img, -7);
  std::vector<float> dual_in(c.dual ? 2 * img : 0, -7), intra_in(c.intra ? img : 0, -7);
  std::vector<float> partials(3 * c.n * tiles_per_image(c.hw));
  std::vector<float> gs_rec(c.n), gs_intra(c.n), gs_inter(c.n);
  DiscrepancyParams d;
  d.x = x.data();
  d.udm = udm.data();
  d.ndm = ndm.data();
  d.ndm_logvar = c.uncertainty ? logvar.data() : nullptr;
  d.n = c.n;
  d.k = c.k;
  d.hw = c.hw;
  d.map_rec = g_rec.data();
  d.map_intra = g_intra.data();
  d.map_inter = g_inter.data();
  d.dual_in = c.dual ? dual_in.data() : nullptr;
  d.intra_in = c.intra ? intra_in.data() : nullptr;
  d.partials = partials.data();
  d.score_rec = gs_rec.data();
  d.score_intra = gs_intra.data();
  d.score_inter = gs_inter.data();
  host::discrepancy(d);

  // Every pixel written once, by the same function: identical maps.
  CHECK(g_rec == rec);
  CHECK(g_intra == intra);
  CHECK(g_inter == inter);
  for (int i = 0; i < c.n; ++i) {
    for (std::int64_t p = 0; p < c.hw; ++p) {
      if (c.dual) {
        REQUIRE(dual_in[(2 * i) * c.hw + p] == inter[i * c.hw + p]);
        REQUIRE(dual_in[(2 * i + 1) * c.hw + p] == intra[i * c.hw + p]);
      }
      if (c.intra) REQUIRE(intra_in[i * c.hw + p] == intra[i * c.hw + p]);
    }
    // Scores: float tile sums, double across tiles, vs the CPU's double pixel sum.
    CHECK_NEAR(gs_rec[i], s_rec[i], 2e-6 * std::fabs(s_rec[i]) + 1e-7);
    CHECK_NEAR(gs_intra[i], s_intra[i], 2e-6 * std::fabs(s_intra[i]) + 1e-7);
    CHECK_NEAR(gs_inter[i], s_inter[i], 2e-6 * std::fabs(s_inter[i]) + 1e-7);
  }
  // Deterministic: the same inputs give bit-identical scores.
  std::vector<float> again(c.n);
  d.score_rec = again.data();
  host::discrepancy(d);
  CHECK(again == gs_rec);
}

TEST(cuda_discrepancy_kernel_emulated_matches_cpu_kernel) {
  // One partial tile; exactly one tile; several tiles with a ragged last one; 64x64 and
  // 256x256 (the paper's sizes); AE-U; each refiner input layout alone.
  check_discrepancy_emulation({3, 3, 16 * 16, false, true, true}, 1);
  check_discrepancy_emulation({2, 3, 1024, false, true, false}, 2);
  check_discrepancy_emulation({2, 2, 3000, false, false, true}, 3);
  check_discrepancy_emulation({5, 3, 64 * 64, true, true, true}, 4);
  check_discrepancy_emulation({1, 5, 256 * 256, false, false, false}, 5);
}

TEST(cuda_refine_kernel_emulated_matches_cpu_kernel) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  for (std::int64_t hw : {std::int64_t{100}, std::int64_t{64 * 64}, std::int64_t{2500}}) {
    const int n = 3;
    std::vector<float> logits(2 * n * hw);
    for (auto& v : logits) v = u(rng);
    logits[0] = 1e30f;  // extreme logits must not give NaN
    logits[hw] = -1e30f;
    std::vector<float> map(n * hw), score(n);
    ddad_rt::RefineArgs r;
    r.logits = logits.data();
    r.n = n;
    r.hw = hw;
    r.map.data = map.data();
    r.score = score.data();
    ddad_rt::cpu::refine(r);

    using namespace ddad_rt::cuda;
    std::vector<float> g_map(n * hw, -7), g_score(n), partials(n * tiles_per_image(hw));
    RefineParams p;
    p.logits = logits.data();
    p.n = n;
    p.hw = hw;
    p.map = g_map.data();
    p.partials = partials.data();
    p.score = g_score.data();
    host::refine(p);
    CHECK(g_map == map);
    for (int i = 0; i < n; ++i) {
      CHECK(std::isfinite(g_score[i]));
      CHECK_NEAR(g_score[i], score[i], 2e-6 * std::fabs(score[i]) + 1e-7);
    }
  }
}

TEST(cuda_normalize_kernel_emulated_matches_training_arithmetic) {
  const std::vector<std::uint8_t> u8{0, 1, 127, 128, 254, 255};
  const std::vector<std::uint16_t> u16{0, 1, 32767, 65535};
  const std::vector<float> f32{0.f, 0.25f, 0.5f, 1.f};
  const auto run = [](const void* raw, ddad_rt::cuda::RawType type, std::int64_t count) {
    std::vector<float> x(count);
    ddad_rt::cuda::NormalizeParams p;
    p.raw = raw;
    p.type = type;
    p.count = count;
    p.x = x.data();
    ddad_rt::cuda::host::normalize(p);
    return x;
  };
  const auto a = run(u8.data(), ddad_rt::cuda::RawType::kUInt8, u8.size());
  for (size_t i = 0; i < u8.size(); ++i) CHECK(a[i] == (u8[i] / 255.f - 0.5f) / 0.5f);
  const auto b = run(u16.data(), ddad_rt::cuda::RawType::kUInt16, u16.size());
  for (size_t i = 0; i < u16.size(); ++i) CHECK(b[i] == (u16[i] / 65535.f - 0.5f) / 0.5f);
  const auto c = run(f32.data(), ddad_rt::cuda::RawType::kFloat32, f32.size());
  for (size_t i = 0; i < f32.size(); ++i) CHECK(c[i] == (f32[i] - 0.5f) / 0.5f);
}

// ---- batches and profiles -------------------------------------------------------------

TEST(batches_split_into_full_chunks_and_a_remainder) {
  using ddad_rt::Chunk;
  using ddad_rt::plan_chunks;
  CHECK(plan_chunks(0, 64).empty());
  CHECK((plan_chunks(1, 64) == std::vector<Chunk>{{0, 1}}));
  CHECK((plan_chunks(64, 64) == std::vector<Chunk>{{0, 64}}));
  CHECK((plan_chunks(65, 64) == std::vector<Chunk>{{0, 64}, {64, 1}}));
  CHECK((plan_chunks(300, 128) == std::vector<Chunk>{{0, 128}, {128, 128}, {256, 44}}));
  CHECK((plan_chunks(3, 1) == std::vector<Chunk>{{0, 1}, {1, 1}, {2, 1}}));
  // Every image exactly once, in order, none above max_batch.
  for (std::int64_t n : {1, 7, 255, 256, 257, 1000}) {
    std::int64_t next = 0;
    for (const Chunk& c : plan_chunks(n, 256)) {
      CHECK(c.start == next);
      CHECK(c.count >= 1 && c.count <= 256);
      next += c.count;
    }
    CHECK(next == n);
  }
  bool threw = false;
  try {
    plan_chunks(5, 0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(tensorrt_profile_covers_batch_1_to_max_batch_tuned_for_max_batch) {
  const ddad_rt::BatchProfile p = ddad_rt::batch_profile(256);
  CHECK(p.min == 1);
  CHECK(p.opt == 256);
  CHECK(p.max == 256);
  const ddad_rt::BatchProfile one = ddad_rt::batch_profile(1);
  CHECK(one.min == 1 && one.opt == 1 && one.max == 1);
}

// ---- fp16 weights ---------------------------------------------------------------------

// binary16 bits -> float, exactly (every half is a float).
float half_to_float(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  }
  return sign ? -v : v;
}

TEST(fp16_conversion_rounds_to_nearest_even) {
  using ddad_rt::trt::float_to_half_bits;
  CHECK(float_to_half_bits(0.f) == 0x0000);
  CHECK(float_to_half_bits(-0.f) == 0x8000);
  CHECK(float_to_half_bits(1.f) == 0x3c00);
  CHECK(float_to_half_bits(-2.f) == 0xc000);
  CHECK(float_to_half_bits(65504.f) == 0x7bff);
  CHECK(float_to_half_bits(65520.f) == 0x7c00);  // the tie above the largest half: to inf
  CHECK(float_to_half_bits(1e6f) == 0x7c00);
  CHECK(float_to_half_bits(-INFINITY) == 0xfc00);
  CHECK((float_to_half_bits(NAN) & 0x7c00) == 0x7c00 && (float_to_half_bits(NAN) & 0x3ff) != 0);
  CHECK(float_to_half_bits(std::ldexp(1.f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_half_bits(std::ldexp(1.f, -25)) == 0x0000);  // tie: to even (zero)
  CHECK(float_to_half_bits(std::ldexp(3.f, -25)) == 0x0002);  // tie: to even (2)
  // Random floats over the whole half range: the result is a nearest half, ties to even.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> e(-27.f, 16.f);
  std::uniform_real_distribution<float> m(1.f, 2.f);
  int bad = 0;
  for (int i = 0; i < 200000; ++i) {
    float f = std::ldexp(m(rng), static_cast<int>(std::floor(e(rng))));
    if (i % 2) f = -f;
    const std::uint16_t h = float_to_half_bits(f);
    const float got = half_to_float(h);
    if ((h & 0x7fff) == 0x7c00) {  // inf: only past the rounding limit
      bad += std::fabs(f) < 65520.f;
      continue;
    }
    const float up = half_to_float(static_cast<std::uint16_t>(h + 1));
    const float down = (h & 0x7fff) ? half_to_float(static_cast<std::uint16_t>(h - 1)) : -got;
    const double err = std::fabs(double(f) - got);
    if (err > std::fabs(double(f) - up) || err > std::fabs(double(f) - down)) ++bad;
    if (err == std::fabs(double(f) - up) || err == std::fabs(double(f) - down)) bad += (h & 1);
  }
  CHECK(bad == 0);
}

// ---- the engine cache -----------------------------------------------------------------

ddad_rt::trt::PlanKey sample_key() {
  ddad_rt::trt::PlanKey k;
  k.bundle_identity = std::string(64, 'a');
  k.role = "ensemble";
  k.graph_sha256 = std::string(64, 'b');
  k.max_batch = 64;
  k.precision = "fp16";
  k.tensorrt_version = "10.3.0";
  k.compute_capability = "8.7";
  k.ddad_rt_version = "0.1.0";
  k.build_recipe = "v1";
  return k;
}

TEST(engine_cache_key_changes_with_everything_a_plan_depends_on) {
  using ddad_rt::trt::PlanKey;
  const PlanKey base = sample_key();
  std::vector<PlanKey> variants(10, base);
  variants[7].profiles = 3;
  variants[8].ddad_rt_version = "0.2.0";  // an upgrade rebuilds plans
  variants[9].build_recipe = "v2: another builder setting";
  variants[0].bundle_identity = std::string(64, 'c');
  variants[1].role = "refine_dual";
  variants[2].graph_sha256 = std::string(64, 'd');
  variants[3].max_batch = 256;
  variants[4].precision = "fp32";
  variants[5].tensorrt_version = "10.4.0";
  variants[6].compute_capability = "8.6";
  for (const PlanKey& v : variants) {
    CHECK(v.text() != base.text());
    CHECK(v.file_name() != base.file_name());
  }
  CHECK(base.file_name().rfind("ensemble-", 0) == 0);
  CHECK(contains(base.file_name(), ".plan"));
  CHECK(sample_key().file_name() == base.file_name());  // stable
  const ddad_rt::trt::TimingCacheKey t{"10.3.0", "8.7"};
  CHECK(t.file_name() == "timing-trt10.3.0-sm87.cache");
}

TEST(engine_cache_round_trip_and_invalidation) {
  using namespace ddad_rt::trt;
  TempDir dir;
  const PlanKey key = sample_key();
  const std::string path = (dir.path / "sub" / key.file_name()).string();
  CHECK(read_cache_file(path, key.text()).status == CacheRead::kAbsent);

  std::string plan(100000, '\0');
  for (size_t i = 0; i < plan.size(); ++i) plan[i] = static_cast<char>(i * 131 % 251);
  write_cache_file(path, key.text(), plan.data(), plan.size());
  CacheEntry hit = read_cache_file(path, key.text());
  CHECK(hit.status == CacheRead::kHit);
  CHECK(hit.payload == plan);
  // No temporary files left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path / "sub")) files += e.is_regular_file();
  CHECK(files == 1);

  // Another max_batch (or version, or anything in the key) never reads this file: its name
  // differs. Forced onto this file, the recorded key refuses it.
  PlanKey other = key;
  other.max_batch = 128;
  CHECK(other.file_name() != key.file_name());
  CacheEntry stale = read_cache_file(path, other.text());
  CHECK(stale.status == CacheRead::kStale);
  CHECK(stale.payload.empty());
  other = key;
  other.tensorrt_version = "10.4.0";
  CHECK(read_cache_file(path, other.text()).status == CacheRead::kStale);

  // One flipped payload byte.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5000, std::ios::end);
    char c;
    f.read(&c, 1);
    f.seekp(-5000, std::ios::end);
    c = static_cast<char>(c ^ 0x40);
    f.write(&c, 1);
  }
  CacheEntry flipped = read_cache_file(path, key.text());
  CHECK(flipped.status == CacheRead::kCorrupt);
  CHECK(contains(flipped.reason, "sha256"));
  CHECK(flipped.payload.empty());

  // Truncated (a crash mid-copy, a full disk).
  write_cache_file(path, key.text(), plan.data(), plan.size());
  fs::resize_file(path, fs::file_size(path) - 1000);
  CacheEntry cut = read_cache_file(path, key.text());
  CHECK(cut.status == CacheRead::kCorrupt);
  CHECK(contains(cut.reason, "bytes"));

  // Not a cache file at all; an empty file.
  { std::ofstream(path, std::ios::trunc) << "some TensorRT plan written by another tool"; }
  CHECK(read_cache_file(path, key.text()).status == CacheRead::kCorrupt);
  { std::ofstream(path, std::ios::trunc); }
  CHECK(read_cache_file(path, key.text()).status == CacheRead::kCorrupt);

  // Rewriting repairs it.
  write_cache_file(path, key.text(), plan.data(), plan.size());
  CHECK(read_cache_file(path, key.text()).status == CacheRead::kHit);
}

TEST(engine_cache_write_failure_is_an_error_not_a_crash) {
  using namespace ddad_rt::trt;
  TempDir dir;
  const fs::path blocker = dir.path / "file";
  { std::ofstream(blocker) << "x"; }
  bool threw = false;
  try {
    write_cache_file((blocker / "sub" / "a.plan").string(), "k", "x", 1);  // parent is a file
  } catch (const std::runtime_error& e) {
    threw = contains(e.what(), "cache folder");
  }
  CHECK(threw);
}

TEST(engine_cache_dir_honours_environment) {
  const char* old = std::getenv("DDAD_RT_CACHE_DIR");
  const std::string saved = old ? old : "";
  setenv("DDAD_RT_CACHE_DIR", "/some/where", 1);
  CHECK(ddad_rt::trt::default_cache_dir() == "/some/where");
  unsetenv("DDAD_RT_CACHE_DIR");
  const std::string fallback = ddad_rt::trt::default_cache_dir();
  CHECK(contains(fallback, "ddad_rt"));
  CHECK(contains(fallback, "tensorrt"));
  if (old) setenv("DDAD_RT_CACHE_DIR", saved.c_str(), 1);
}

// Sets an environment variable for one scope, restoring it after.
struct ScopedEnv {
  std::string name, saved;
  bool had;
  ScopedEnv(const std::string& n, const char* value) : name(n) {
    const char* old = std::getenv(n.c_str());
    had = old != nullptr;
    saved = had ? old : "";
    if (value) {
      setenv(n.c_str(), value, 1);
    } else {
      unsetenv(n.c_str());
    }
  }
  ~ScopedEnv() {
    if (had) {
      setenv(name.c_str(), saved.c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
};

TEST(engine_cache_without_a_home_folder_is_private_to_the_user) {
  TempDir tmp;
  ScopedEnv a("DDAD_RT_CACHE_DIR", nullptr), b("XDG_CACHE_HOME", nullptr), c("HOME", nullptr),
      d("TMPDIR", tmp.path.c_str());
  const fs::path mine = tmp.path / ("ddad_rt-" + std::to_string(geteuid()));
  CHECK(ddad_rt::trt::default_cache_dir() == (mine / "tensorrt").string());
  struct stat st {};
  REQUIRE(lstat(mine.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // Left group/world-writable by an earlier version: made private again.
  chmod(mine.c_str(), 0777);
  ddad_rt::trt::default_cache_dir();
  REQUIRE(lstat(mine.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // Planted by someone else, or a link: refused, never used.
  fs::remove_all(mine);
  fs::create_symlink(tmp.path, mine);
  CHECK_THROWS_WITH(ddad_rt::trt::default_cache_dir(), std::runtime_error, "not a directory");
  fs::remove(mine);
  if (geteuid() == 0) {  // only root can give a folder away
    fs::create_directory(mine);
    REQUIRE(chown(mine.c_str(), 65534, 65534) == 0);
    CHECK_THROWS_WITH(ddad_rt::trt::default_cache_dir(), std::runtime_error, "belongs to user 65534");
  }
}

// ---- run-time library loading ---------------------------------------------------------

TEST(library_search_reports_every_place_it_looked) {
  TempDir dir;
  const std::string name = "libddad_rt_missing_for_test.so.10";
  // A file of the right name that is not a library.
  TempDir fake;
  { std::ofstream(fake.path / name) << "not an ELF file"; }
  const ddad_rt::DynLibSearch s =
      ddad_rt::open_library(name, {dir.path.string(), fake.path.string()});
  CHECK(!s.lib);
  const std::string why = s.explain(name);
  CHECK(contains(why, name + " not found"));
  CHECK(contains(why, dir.path.string() + " (no " + name + ")"));
  CHECK(contains(why, "exists but does not load"));
  CHECK(contains(why, "LD_LIBRARY_PATH"));
}

TEST(library_search_finds_a_system_library) {
  const ddad_rt::DynLibSearch s = ddad_rt::open_library("libm.so.6", {"/nonexistent"});
  REQUIRE(s.lib != nullptr);
  CHECK(s.lib->symbol("cos") != nullptr);
  CHECK(s.lib->symbol("no_such_symbol_here") == nullptr);
}

TEST(path_lists_split_on_colons) {
  CHECK((ddad_rt::split_path_list("/a::/b:") == std::vector<std::string>{"/a", "/b"}));
  CHECK(ddad_rt::split_path_list("").empty());
}

// ---- device="cuda" on this machine ----------------------------------------------------

TEST(cuda_status_without_a_gpu_says_what_is_missing) {
  const ddad_rt::CudaStatus s = ddad_rt::cuda_status();
  if (s.usable) return;  // a GPU machine: the GPU tests cover it
  REQUIRE(!s.problems.empty());
  const std::string why = s.explain();
  if (!s.tensorrt_backend) CHECK(contains(why, "no TensorRT backend"));
  if (!s.cuda_kernels) CHECK(contains(why, "no CUDA kernels"));
  if (s.cuda_kernels && s.gpu.empty()) {
    CHECK(contains(why, "driver") || contains(why, "GPU"));
    CHECK(contains(s.cuda_runtime, "CUDA "));
  }
  if (s.tensorrt_backend && s.tensorrt_library.empty()) {
    CHECK(contains(why, "libnvinfer.so."));
    CHECK(contains(why, "looked in"));
  }
}

}  // namespace

// ---- the GPU error path -----------------------------------------------------------------

TEST(sticky_cuda_errors_are_told_apart) {
  // cudaErrorIllegalAddress, cudaErrorLaunchFailure, an uncorrectable ECC error: sticky.
  CHECK(ddad_rt::is_sticky_cuda_error(700));
  CHECK(ddad_rt::is_sticky_cuda_error(719));
  CHECK(ddad_rt::is_sticky_cuda_error(214));
  // cudaSuccess, cudaErrorMemoryAllocation, cudaErrorLaunchOutOfResources: the context lives.
  CHECK(!ddad_rt::is_sticky_cuda_error(0));
  CHECK(!ddad_rt::is_sticky_cuda_error(2));
  CHECK(!ddad_rt::is_sticky_cuda_error(701));
}

TEST(a_dead_gpu_engine_says_so_in_every_later_call) {
  ddad_rt::GpuHealth health;
  health.check();  // alive: no throw
  CHECK(!health.dead());
  health.mark_dead("CUDA error cudaErrorIllegalAddress in enqueueV3");
  health.mark_dead("a later, secondary error");  // the first cause is the one reported
  std::atomic<int> told{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      try {
        health.check();
      } catch (const ddad_rt::EngineError& e) {
        const std::string what = e.what();
        if (contains(what, "unusable") && contains(what, "cudaErrorIllegalAddress") &&
            contains(what, "restart the process") && !contains(what, "secondary")) {
          ++told;
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  CHECK(told == 4);
}

// ---- GPU precision --------------------------------------------------------------------

TEST(gpu_fp16_is_the_default_only_with_a_passed_gpu_check) {
  using ddad_rt::trt::choose_gpu_precision;
  ddad_rt::Bundle b;
  for (const char* requested : {"default", "auto"}) {
    const auto unchecked = choose_gpu_precision(requested, b);
    CHECK(unchecked.precision == "fp32");
    CHECK(contains(unchecked.reason, "no passed fp16 accuracy check made on a GPU"));
    CHECK(contains(unchecked.reason, "check-precision"));
  }
  b.validated_precisions = {"bf16"};  // a CPU check says nothing about fp16
  CHECK(choose_gpu_precision("default", b).precision == "fp32");
  b.validated_precisions = {"fp16"};
  const auto checked = choose_gpu_precision("default", b);
  CHECK(checked.precision == "fp16" && contains(checked.reason, "passed on a GPU"));
  CHECK(choose_gpu_precision("fp32", b).precision == "fp32");
  CHECK(choose_gpu_precision("fp16", ddad_rt::Bundle{}).precision == "fp16");  // asked for
  CHECK_THROWS_WITH(choose_gpu_precision("bf16", b), ddad_rt::EngineError, "CPU precision");
}
