// A small fixed thread pool for the CPU kernels: parallel_for runs a body over an index
// range on the pool's workers and the calling thread, and returns when all are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ddad_rt::cpu {

class ThreadPool {
 public:
  //! threads: total threads including the caller (>= 1).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  //! Calls body(i, thread) for every i in [0, count), thread in [0, size()). Not reentrant:
  //! one parallel_for at a time per pool. Exceptions from body are rethrown here.
  void parallel_for(std::int64_t count, const std::function<void(std::int64_t, int)>& body);

 private:
  void work(int thread);
  void drain(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  int running_ = 0;
  const std::function<void(std::int64_t, int)>* body_ = nullptr;
  std::int64_t count_ = 0;
  std::atomic<std::int64_t> next_{0};
  std::exception_ptr error_;
};

//! Threads to use for a `num_threads` option: the value itself, or all cores for 0.
int resolve_threads(int num_threads);

}  // namespace ddad_rt::cpu
