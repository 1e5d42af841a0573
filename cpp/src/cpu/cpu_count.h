// How many CPUs this process may really use. std::thread::hardware_concurrency() counts the
// machine's cores; a container or a `taskset` sees fewer, and sizing a pool from the machine
// oversubscribes it (on a 64-core host with a 2-CPU quota, 64 threads share 2 CPUs).
#pragma once

#include <string>

namespace ddad_rt::cpu {

//! The CPUs this process may run on: its affinity mask, capped by its cgroup's CPU quota
//! (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us, rounded up), at least 1.
int usable_cpus();

//! The CPU quota, in whole CPUs rounded up, of the cgroup that `proc_self_cgroup` (the text
//! of /proc/self/cgroup) names, read from the cgroup file system mounted at `cgroup_root`;
//! the smallest along the path up to the root, as the kernel enforces every level.
//! 0 when no quota is set or none can be read.
int cgroup_cpu_limit(const std::string& cgroup_root, const std::string& proc_self_cgroup);

//! The most threads `num_threads` may ask for: 4x usable_cpus(). More only adds switching
//! and memory, and an unchecked value can exhaust the process table.
int max_threads();

//! Threads to use for a `num_threads` option: the value itself, or usable_cpus() for 0.
//! Throws std::invalid_argument for a negative value or one above max_threads().
int resolve_threads(int num_threads);

}  // namespace ddad_rt::cpu
