// Wall time per pipeline stage, summed over every call: what Engine::stage_times reports.
// Calls may run concurrently, so the sums are atomics; reading the clock twice per stage of
// a chunk costs tens of nanoseconds against milliseconds of work, so it is always on.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "ddad_rt/engine.h"

namespace ddad_rt {

template <std::size_t N>
class StageClock {
 public:
  explicit StageClock(std::array<const char*, N> names) : names_(names) {}

  //! Adds the time from its construction to its destruction to `stage`, for `images`.
  class Scope {
   public:
    Scope(StageClock& clock, std::size_t stage, std::int64_t images)
        : clock_(clock), stage_(stage), images_(images), start_(std::chrono::steady_clock::now()) {}
    ~Scope() {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - start_);
      clock_.nanos_[stage_].fetch_add(ns.count(), std::memory_order_relaxed);
      clock_.images_[stage_].fetch_add(images_, std::memory_order_relaxed);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StageClock& clock_;
    std::size_t stage_;
    std::int64_t images_;
    std::chrono::steady_clock::time_point start_;
  };

  //! Every stage that ran at least once; zeroes the sums when `reset`.
  std::map<std::string, StageTime> read(bool reset) {
    std::map<std::string, StageTime> out;
    for (std::size_t i = 0; i < N; ++i) {
      const std::int64_t ns = reset ? nanos_[i].exchange(0) : nanos_[i].load();
      const std::int64_t n = reset ? images_[i].exchange(0) : images_[i].load();
      if (n > 0) out[names_[i]] = {static_cast<double>(ns) * 1e-9, n};
    }
    return out;
  }

 private:
  std::array<const char*, N> names_;
  std::array<std::atomic<std::int64_t>, N> nanos_{};
  std::array<std::atomic<std::int64_t>, N> images_{};
};

}  // namespace ddad_rt
