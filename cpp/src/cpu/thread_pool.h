// A small fixed thread pool for the CPU kernels: parallel_for runs a body over an index
// range on the pool's workers and the calling thread, and returns when all are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace ddad_rt::cpu {

class ThreadPool {
 public:
  //! Starts one worker thread; tests substitute one that fails.
  using Starter = std::function<std::thread(std::function<void()>)>;

  //! threads: total threads including the caller (>= 1). If a worker cannot be started
  //! (the process or user ran out of threads), the ones already started are stopped and
  //! std::runtime_error says so: never std::terminate from a half-built pool.
  explicit ThreadPool(int threads, const Starter& start = start_thread);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  //! The pool for this caller's parallel_for calls while the returned lock is held, or an
  //! unlocked lock when another caller has it (run single-threaded then).
  std::unique_lock<std::mutex> try_claim() { return std::unique_lock<std::mutex>(claim_, std::try_to_lock); }

  //! The default Starter: std::thread.
  static std::thread start_thread(std::function<void()> body) { return std::thread(std::move(body)); }

  //! Calls body(i, thread) for every i in [0, count), thread in [0, size()). Not reentrant:
  //! one parallel_for at a time per pool. Exceptions from body are rethrown here.
  void parallel_for(std::int64_t count, const std::function<void(std::int64_t, int)>& body);

 private:
  void work(int thread);
  void drain(int thread);
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex claim_;  // held by the caller that owns the pool (try_claim)
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

}  // namespace ddad_rt::cpu
