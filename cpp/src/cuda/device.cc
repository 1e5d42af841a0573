#include "cuda/device.h"

#include <cuda_runtime_api.h>

#include "gpu_health.h"

namespace ddad_rt::cuda {

// gpu_health.h spells the sticky codes without CUDA headers: they must be the runtime's.
static_assert(sticky_cuda_error::kEccUncorrectable == cudaErrorECCUncorrectable &&
                  sticky_cuda_error::kIllegalAddress == cudaErrorIllegalAddress &&
                  sticky_cuda_error::kLaunchTimeout == cudaErrorLaunchTimeout &&
                  sticky_cuda_error::kAssert == cudaErrorAssert &&
                  sticky_cuda_error::kHardwareStackError == cudaErrorHardwareStackError &&
                  sticky_cuda_error::kIllegalInstruction == cudaErrorIllegalInstruction &&
                  sticky_cuda_error::kMisalignedAddress == cudaErrorMisalignedAddress &&
                  sticky_cuda_error::kInvalidAddressSpace == cudaErrorInvalidAddressSpace &&
                  sticky_cuda_error::kInvalidPc == cudaErrorInvalidPc &&
                  sticky_cuda_error::kLaunchFailure == cudaErrorLaunchFailure &&
                  sticky_cuda_error::kExternalDevice == cudaErrorExternalDevice,
              "sticky CUDA error codes differ from this CUDA runtime's");

std::string cuda_version_string(int version) {
  return "CUDA " + std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

DeviceProbe probe_device() {
  DeviceProbe p;
  cudaRuntimeGetVersion(&p.runtime_version);
  if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess) p.driver_version = 0;
  const cudaError_t err = cudaGetDeviceCount(&p.device_count);
  if (err != cudaSuccess || p.device_count == 0) {
    p.device_count = 0;
    switch (err) {
      case cudaErrorInsufficientDriver:
        p.problem = p.driver_version == 0
                        ? "no NVIDIA driver (libcuda.so.1 was not found): install the NVIDIA "
                          "driver, or on Jetson flash JetPack"
                        : "the NVIDIA driver (" + cuda_version_string(p.driver_version) +
                              ") is older than this build's " +
                              cuda_version_string(p.runtime_version) +
                              " runtime: update the driver, or build ddad_rt with an older CUDA";
        break;
      case cudaErrorNoDevice:
      case cudaSuccess:
        p.problem = "no NVIDIA GPU found (the driver sees none; check CUDA_VISIBLE_DEVICES and "
                    "nvidia-smi)";
        break;
      default:
        p.problem = std::string("the CUDA runtime could not list GPUs: ") + cudaGetErrorName(err) +
                    " (" + cudaGetErrorString(err) + ")";
    }
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return p;
  }
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, p.device); e != cudaSuccess) {
    p.problem = std::string("cannot read GPU 0's properties: ") + cudaGetErrorString(e);
    return p;
  }
  p.name = prop.name;
  p.cc_major = prop.major;
  p.cc_minor = prop.minor;
  p.ok = true;
  return p;
}

}  // namespace ddad_rt::cuda
