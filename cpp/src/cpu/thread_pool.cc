#include "cpu/thread_pool.h"

namespace ddad_rt::cpu {

ThreadPool::ThreadPool(int threads, const Starter& start) {
  workers_.reserve(threads > 1 ? threads - 1 : 0);
  for (int t = 1; t < threads; ++t) {
    try {
      workers_.push_back(start([this, t] { work(t); }));
    } catch (const std::exception& e) {
      // The destructor does not run for a constructor that throws: stop what started here.
      stop_workers();
      throw std::runtime_error("could not start CPU thread " + std::to_string(t + 1) + " of " +
                               std::to_string(threads) + " (" + e.what() +
                               "): the process is out of threads; ask for fewer (num_threads)");
    }
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

void ThreadPool::drain(int thread) {
  for (std::int64_t i = next_++; i < count_; i = next_++) {
    try {
      (*body_)(i, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_ = count_;  // stop handing out work
    }
  }
}

void ThreadPool::work(int thread) {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain(thread);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--running_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(std::int64_t count,
                              const std::function<void(std::int64_t, int)>& body) {
  if (count <= 0) return;
  if (workers_.empty() || count == 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    next_ = 0;
    error_ = nullptr;
    running_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  drain(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
    body_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace ddad_rt::cpu
