// Thread counts and the thread pool: "all cores" means the CPUs this process may use (its
// cgroup quota, read here from fake cgroup trees), a runaway num_threads is refused before
// any thread starts, and a pool whose thread cannot start fails cleanly.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "cpu/cpu_count.h"
#include "cpu/thread_pool.h"
#include "testing.h"

namespace fs = std::filesystem;

namespace {

// A fake cgroup file system under the temp dir, removed at scope exit.
struct FakeCgroup {
  fs::path root = fs::temp_directory_path() / ("ddad_rt_cgroup_" + std::to_string(getpid()));
  FakeCgroup() { fs::remove_all(root); }
  ~FakeCgroup() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

}  // namespace

TEST(cgroup_v2_quota_is_read_and_rounded_up) {
  FakeCgroup cg;
  cg.write("cpu.max", "max 100000\n");
  cg.write("kubepods/pod1/cpu.max", "150000 100000\n");  // 1.5 CPUs -> 2 threads
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), "0::/kubepods/pod1\n") == 2);
  // No quota anywhere on the path: no limit.
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), "0::/\n") == 0);
  // A parent's tighter quota applies to its children too.
  cg.write("kubepods/cpu.max", "100000 100000\n");
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), "0::/kubepods/pod1\n") == 1);
  // Unreadable or missing files: no limit, never an error.
  CHECK(ddad_rt::cpu::cgroup_cpu_limit((cg.root / "nowhere").string(), "0::/x\n") == 0);
  cg.write("bad/cpu.max", "garbage\n");
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), "0::/bad\n") == 0);
}

TEST(cgroup_v1_quota_is_read) {
  FakeCgroup cg;
  cg.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  cg.write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const std::string self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n";
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), self) == 3);
  // -1: no quota.
  cg.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(cg.root.string(), self) == 0);
  // Inside a container the mount holds only the container's own folder.
  FakeCgroup inside;
  inside.write("cpu,cpuacct/cpu.cfs_quota_us", "50000\n");
  inside.write("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  CHECK(ddad_rt::cpu::cgroup_cpu_limit(inside.root.string(), self) == 1);
}

TEST(num_threads_is_checked_before_any_thread_starts) {
  const int cpus = ddad_rt::cpu::usable_cpus();
  CHECK(cpus >= 1);
  CHECK(ddad_rt::cpu::resolve_threads(0) == cpus);
  CHECK(ddad_rt::cpu::resolve_threads(1) == 1);
  CHECK(ddad_rt::cpu::resolve_threads(4 * cpus) == 4 * cpus);
  CHECK_THROWS_WITH(ddad_rt::cpu::resolve_threads(4 * cpus + 1), std::invalid_argument,
                    "ask for at most " + std::to_string(4 * cpus));
  CHECK_THROWS_WITH(ddad_rt::cpu::resolve_threads(100000), std::invalid_argument,
                    "CPUs this process may use");
  CHECK_THROWS_WITH(ddad_rt::cpu::resolve_threads(-1), std::invalid_argument, ">= 0");
}

TEST(a_thread_that_cannot_start_fails_the_pool_cleanly) {
  std::atomic<int> started{0};
  // The third worker cannot start, as when the process table is full.
  const ddad_rt::cpu::ThreadPool::Starter flaky = [&](std::function<void()> body) {
    if (started == 2) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    }
    ++started;
    return std::thread(std::move(body));
  };
  // Without the fix this is std::terminate (joinable std::threads destroyed): the test
  // binary would abort here.
  CHECK_THROWS_WITH(ddad_rt::cpu::ThreadPool(8, flaky), std::runtime_error,
                    "could not start CPU thread 4 of 8");
  // The pool still works with threads that start.
  ddad_rt::cpu::ThreadPool pool(3);
  std::atomic<long> sum{0};
  pool.parallel_for(100, [&](std::int64_t i, int) { sum += i; });
  CHECK(sum == 4950);
}

TEST(thread_pool_claim_is_exclusive) {
  ddad_rt::cpu::ThreadPool pool(2);
  auto first = pool.try_claim();
  CHECK(first.owns_lock());
  CHECK(!pool.try_claim().owns_lock());
  first.unlock();
  CHECK(pool.try_claim().owns_lock());
}
