#include "cpu/cpu_count.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace ddad_rt::cpu {
namespace {

namespace fs = std::filesystem;

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// CPUs granted by quota / period, rounded up; 0 for "no limit" or anything unreadable.
int cpus_of_quota(double quota, double period) {
  if (!(quota > 0) || !(period > 0)) return 0;
  return std::max(1, static_cast<int>(std::ceil(quota / period - 1e-9)));
}

// cgroup v2: "max 100000" (no limit) or "150000 100000" in cpu.max.
int v2_limit(const fs::path& dir) {
  std::istringstream in(read_first_line(dir / "cpu.max"));
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  try {
    return cpus_of_quota(std::stod(quota), period);
  } catch (const std::exception&) {
    return 0;
  }
}

// cgroup v1: cpu.cfs_quota_us (-1 = no limit) and cpu.cfs_period_us.
int v1_limit(const fs::path& dir) {
  try {
    const std::string quota = read_first_line(dir / "cpu.cfs_quota_us");
    const std::string period = read_first_line(dir / "cpu.cfs_period_us");
    if (quota.empty() || period.empty()) return 0;
    return cpus_of_quota(std::stod(quota), std::stod(period));
  } catch (const std::exception&) {
    return 0;
  }
}

// The smallest limit on the folders from root/rel up to root.
template <typename Limit>
int smallest_on_path(const fs::path& root, std::string rel, Limit limit) {
  int best = 0;
  for (;;) {
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    const int here = limit(rel.empty() ? root : root / rel);
    if (here > 0) best = best > 0 ? std::min(best, here) : here;
    if (rel.empty()) return best;
    const std::size_t slash = rel.rfind('/');
    rel = slash == std::string::npos ? std::string() : rel.substr(0, slash);
  }
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace

int cgroup_cpu_limit(const std::string& cgroup_root, const std::string& proc_self_cgroup) {
  const fs::path root(cgroup_root);
  int best = 0;
  const auto take = [&](int limit) {
    if (limit > 0) best = best > 0 ? std::min(best, limit) : limit;
  };
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "hierarchy-ID:controllers:path"; v2 is "0::path".
    const std::size_t a = line.find(':');
    const std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      take(smallest_on_path(root, path, v2_limit));
      continue;
    }
    std::vector<std::string> names;
    std::istringstream c(controllers);
    for (std::string name; std::getline(c, name, ',');) names.push_back(name);
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // v1 mounts the cpu controller as "cpu,cpuacct" (or "cpu"); inside a container the
    // path may be the host's while the mount shows only the container's own folder.
    for (const std::string& mount : {controllers, std::string("cpu")}) {
      take(smallest_on_path(root / mount, path, v1_limit));
      take(v1_limit(root / mount));
    }
  }
  return best;
}

int usable_cpus() {
  // Read each time (an engine is built rarely): affinity and quotas can change at run time.
  std::ifstream in("/proc/self/cgroup");
  std::stringstream text;
  text << in.rdbuf();
  const int quota = cgroup_cpu_limit("/sys/fs/cgroup", text.str());
  const int affinity = affinity_cpus();
  return quota > 0 ? std::min(affinity, quota) : affinity;
}

int max_threads() { return 4 * usable_cpus(); }

int resolve_threads(int num_threads) {
  if (num_threads < 0) {
    throw std::invalid_argument("num_threads must be >= 0 (0 = every CPU this process may use), got " +
                                std::to_string(num_threads));
  }
  if (num_threads > max_threads()) {
    throw std::invalid_argument(
        "num_threads=" + std::to_string(num_threads) + " is more than 4x the " +
        std::to_string(usable_cpus()) +
        " CPUs this process may use (its affinity mask and cgroup quota): ask for at most " +
        std::to_string(max_threads()) + ", or 0 for one thread per usable CPU");
  }
  return num_threads > 0 ? num_threads : usable_cpus();
}

}  // namespace ddad_rt::cpu
