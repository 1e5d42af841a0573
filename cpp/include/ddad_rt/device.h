// The machine as the engine sees it. Whether device="cuda" can work here, and if not, exactly what is missing: the build's CUDA
// kernels and TensorRT backend, the driver, a GPU, the TensorRT libraries (and where we
// looked for them).
#pragma once

#include <string>
#include <vector>

#include "ddad_rt/export.h"

namespace ddad_rt {

//! Everything the GPU path needs, as found on this machine.
struct DDAD_RT_API CudaStatus {
  bool usable = false;            //!< all of the below are present
  bool cuda_kernels = false;      //!< this build has the CUDA kernels
  bool tensorrt_backend = false;  //!< this build has the TensorRT backend
  std::string gpu;                //!< "NVIDIA A100 (compute capability 8.0)" when found
  std::string compute_capability; //!< "8.0" when found
  std::string driver;             //!< "CUDA 13.0" (the driver's CUDA version) when found
  std::string cuda_runtime;       //!< the CUDA runtime this build carries
  std::string tensorrt_library;   //!< the libnvinfer loaded, when found
  std::string tensorrt_version;   //!< its version, e.g. "10.3.0"
  std::vector<std::string> problems;  //!< one sentence each: what is missing and what to do
  //! "problem 1; problem 2" (empty when usable).
  std::string explain() const;
};

//! Probes the machine (cached after the first successful TensorRT load).
DDAD_RT_API CudaStatus cuda_status();

//! Extra folders to look in for libnvinfer and libnvonnxparser before the system search
//! (the Python package adds the tensorrt_libs folder of a pip-installed TensorRT).
//! $DDAD_RT_TENSORRT_LIB_DIR (colon-separated) is always searched first.
DDAD_RT_API void set_tensorrt_library_dirs(const std::vector<std::string>& dirs);
DDAD_RT_API std::vector<std::string> tensorrt_library_dirs();

//! The CPUs this process may run on: its affinity mask, capped by its cgroup's CPU quota;
//! what num_threads = 0 uses.
DDAD_RT_API int usable_cpus();

}  // namespace ddad_rt
