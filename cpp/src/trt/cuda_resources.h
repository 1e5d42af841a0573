// CUDA errors and RAII handles for the TensorRT backend: a failed call throws CudaError with
// its code (the backend tells sticky errors apart), and every stream, graph and buffer is
// freed by its owner.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>

#include "ddad_rt/errors.h"

namespace ddad_rt::trt {

// A failed CUDA call, with its code: the pipeline's error path tells sticky errors apart.
class CudaError : public EngineError {
 public:
  CudaError(cudaError_t code, const std::string& what) : EngineError(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
  throw CudaError(e, std::string("CUDA error ") + cudaGetErrorName(e) + " (" +
                         cudaGetErrorString(e) + ") in " + expr + " at " + file + ":" +
                         std::to_string(line));
}

#define DDAD_CUDA_CHECK(expr)                                        \
  do {                                                               \
    const cudaError_t ddad_err_ = (expr);                            \
    if (ddad_err_ != cudaSuccess) cuda_fail(ddad_err_, #expr, __FILE__, __LINE__); \
  } while (0)

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
struct PinnedFree {
  void operator()(void* p) const noexcept { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const noexcept { cudaStreamDestroy(s); }
};
struct GraphDestroy {
  void operator()(cudaGraph_t g) const noexcept { cudaGraphDestroy(g); }
};
struct GraphExecDestroy {
  void operator()(cudaGraphExec_t g) const noexcept { cudaGraphExecDestroy(g); }
};
using DeviceMem = std::unique_ptr<void, DeviceFree>;
using PinnedMem = std::unique_ptr<void, PinnedFree>;
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;
using Graph = std::unique_ptr<std::remove_pointer_t<cudaGraph_t>, GraphDestroy>;
using GraphExec = std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDestroy>;

inline DeviceMem device_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (bytes) DDAD_CUDA_CHECK(cudaMalloc(&p, bytes));
  return DeviceMem(p);
}

inline PinnedMem pinned_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (bytes) DDAD_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return PinnedMem(p);
}

inline float* as_floats(const DeviceMem& m) { return static_cast<float*>(m.get()); }

}  // namespace ddad_rt::trt
