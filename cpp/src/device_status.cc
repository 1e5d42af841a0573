#include "ddad_rt/device.h"

#include <cstdlib>
#include <mutex>

#include "cpu/cpu_count.h"
#include "dynlib.h"

#if defined(DDAD_RT_HAVE_CUDA)
#include "cuda/device.h"
#endif
#if defined(DDAD_RT_HAVE_TENSORRT)
#include "trt/tensorrt_backend.h"
#endif

namespace ddad_rt {
namespace {

std::mutex dirs_mutex;
std::vector<std::string> extra_dirs;

}  // namespace

std::string CudaStatus::explain() const {
  std::string out;
  for (const std::string& p : problems) out += (out.empty() ? "" : "; ") + p;
  return out;
}

void set_tensorrt_library_dirs(const std::vector<std::string>& dirs) {
  std::lock_guard<std::mutex> lock(dirs_mutex);
  extra_dirs = dirs;
}

std::vector<std::string> tensorrt_library_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("DDAD_RT_TENSORRT_LIB_DIR")) dirs = split_path_list(env);
  std::lock_guard<std::mutex> lock(dirs_mutex);
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  return dirs;
}

CudaStatus cuda_status() {
  CudaStatus s;
#if defined(DDAD_RT_HAVE_CUDA)
  s.cuda_kernels = true;
#endif
#if defined(DDAD_RT_HAVE_TENSORRT)
  s.tensorrt_backend = true;
#endif
  if (!s.cuda_kernels) {
    s.problems.push_back(
        "this build of ddad_rt has no CUDA kernels (nvcc was not found when it was built): "
        "rebuild where the CUDA toolkit is installed, e.g. pip install . "
        "-Ccmake.define.DDAD_RT_WITH_TENSORRT=ON with TensorRT_ROOT set");
  }
  if (!s.tensorrt_backend) {
    s.problems.push_back(
        "this build of ddad_rt has no TensorRT backend (ddad_rt.build_info()['tensorrt'] is "
        "False): rebuild on a machine with CUDA and the TensorRT headers: pip install . "
        "-Ccmake.define.DDAD_RT_WITH_TENSORRT=ON (TensorRT_ROOT=/path/to/TensorRT)");
  }
#if defined(DDAD_RT_HAVE_CUDA)
  const cuda::DeviceProbe dev = cuda::probe_device();
  s.cuda_runtime = cuda::cuda_version_string(dev.runtime_version);
  if (dev.driver_version) s.driver = cuda::cuda_version_string(dev.driver_version);
  if (dev.ok) {
    s.compute_capability = std::to_string(dev.cc_major) + "." + std::to_string(dev.cc_minor);
    s.gpu = dev.name + " (compute capability " + s.compute_capability + ")";
    if (dev.cc_major < 7 || (dev.cc_major == 7 && dev.cc_minor < 5)) {
      s.problems.push_back("the GPU " + s.gpu + " is older than Turing (7.5), the oldest "
                           "architecture this build supports");
    }
  } else {
    s.problems.push_back(dev.problem);
  }
#endif
#if defined(DDAD_RT_HAVE_TENSORRT)
  const trt::LibraryProbe lib = trt::probe_libraries(tensorrt_library_dirs());
  s.tensorrt_library = lib.path;
  s.tensorrt_version = lib.version;
  if (!lib.ok) s.problems.push_back(lib.problem);
#endif
  s.usable = s.problems.empty();
  return s;
}

int usable_cpus() { return cpu::usable_cpus(); }

}  // namespace ddad_rt
