// The TensorRT backend: the bundle's graphs built into TensorRT engines (cached on disk), the
// fused CUDA kernels, and the whole pipeline replayed from CUDA graphs. Compiled only with
// the TensorRT headers (DDAD_RT_WITH_TENSORRT); libnvinfer and libnvonnxparser are opened at
// run time. This header needs neither TensorRT nor CUDA headers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "ddad_rt/device.h"

namespace ddad_rt::trt {

//! The outcome of loading libnvinfer and libnvonnxparser.
struct LibraryProbe {
  bool ok = false;
  std::string path;     //!< libnvinfer as loaded
  std::string version;  //!< e.g. "10.3.0"
  std::string problem;  //!< what is missing and where we looked
};

//! Loads (once per process) the TensorRT libraries of the major version this build was
//! compiled against, looking in `dirs` first.
LibraryProbe probe_libraries(const std::vector<std::string>& dirs);

//! The TensorRT version of the headers this build was compiled against, e.g. "10.3.0".
std::string headers_version();

//! Builds the backend on GPU 0. `status` must be usable. Engines come from the cache in
//! options.cache_dir when valid, else are built and cached.
std::unique_ptr<Backend> make_tensorrt_backend(const Bundle& bundle, const EngineOptions& options,
                                               const CudaStatus& status);

}  // namespace ddad_rt::trt
