// Whether a GPU engine can still run. Some CUDA errors (an illegal address in a kernel, a
// hardware exception, an uncorrectable ECC error) corrupt the process's CUDA context: every
// later CUDA call fails with the same error until the process restarts. An engine that hit
// one says so in every later call instead of failing each with a confusing copy of it.
// Host-only (no CUDA headers), so the CPU tests check it; cuda/device.cc checks the codes
// against the CUDA runtime's enum wherever CUDA is compiled.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "ddad_rt/errors.h"

namespace ddad_rt {

//! cudaError_t values that the CUDA documentation calls sticky ("leaves the process in an
//! inconsistent state and any further CUDA work will return the same error").
namespace sticky_cuda_error {
constexpr int kEccUncorrectable = 214, kIllegalAddress = 700, kLaunchTimeout = 702,
              kAssert = 710, kHardwareStackError = 714, kIllegalInstruction = 715,
              kMisalignedAddress = 716, kInvalidAddressSpace = 717, kInvalidPc = 718,
              kLaunchFailure = 719, kExternalDevice = 911;
}  // namespace sticky_cuda_error

//! True for a cudaError_t value after which the CUDA context is unusable.
inline bool is_sticky_cuda_error(int code) {
  using namespace sticky_cuda_error;
  switch (code) {
    case kEccUncorrectable: case kIllegalAddress: case kLaunchTimeout: case kAssert:
    case kHardwareStackError: case kIllegalInstruction: case kMisalignedAddress:
    case kInvalidAddressSpace: case kInvalidPc: case kLaunchFailure: case kExternalDevice:
      return true;
    default:
      return false;
  }
}

//! A GPU engine's health: alive until mark_dead(), then every check() throws.
class GpuHealth {
 public:
  //! Records why the engine cannot run any more (the first reason is kept).
  void mark_dead(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (dead_) return;
    reason_ = reason;
    dead_ = true;
  }

  bool dead() const { return dead_; }

  //! Throws EngineError when the engine is dead.
  void check() const {
    if (!dead_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    throw EngineError(message(reason_));
  }

  //! What an error says once the engine is dead.
  static std::string message(const std::string& reason) {
    return "this GPU engine is unusable: an earlier call hit a CUDA error that corrupts the "
           "process's CUDA context (" + reason + "), and every later GPU call in this process "
           "fails the same way; restart the process (scoring elsewhere in it can use "
           "device='cpu'), and if it recurs check the GPU (nvidia-smi, dmesg for Xid errors)";
  }

 private:
  std::atomic<bool> dead_{false};
  mutable std::mutex mutex_;
  std::string reason_;
};

}  // namespace ddad_rt
