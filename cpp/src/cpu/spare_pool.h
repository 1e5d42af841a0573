// Objects of finished calls kept for the next one: a call's buffers are allocated once and
// then reused, and calls running at the same time never share one.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace ddad_rt::cpu {

template <typename T>
class SparePool {
 public:
  //! A spare object, or a new (default-constructed) one when none is left.
  std::unique_ptr<T> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (spare_.empty()) return std::make_unique<T>();
    std::unique_ptr<T> item = std::move(spare_.back());
    spare_.pop_back();
    return item;
  }
  //! Keeps `item` for a later take().
  void give_back(std::unique_ptr<T> item) {
    std::lock_guard<std::mutex> lock(mutex_);
    spare_.push_back(std::move(item));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<T>> spare_;
};

}  // namespace ddad_rt::cpu
