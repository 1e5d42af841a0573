// What the CUDA runtime can see: driver, devices, the first device's architecture. Only
// compiled when the build has CUDA; the CUDA runtime is linked statically, so asking works on
// machines without a driver and says so instead of failing to load.
#pragma once

#include <string>

namespace ddad_rt::cuda {

//! The outcome of asking the CUDA runtime for a device.
struct DeviceProbe {
  bool ok = false;           //!< a device is usable
  int device_count = 0;
  int device = 0;            //!< the device used (0: pick another with CUDA_VISIBLE_DEVICES)
  std::string name;          //!< e.g. "NVIDIA A100-SXM4-40GB"
  int cc_major = 0;          //!< compute capability
  int cc_minor = 0;
  int driver_version = 0;    //!< e.g. 13000 for CUDA 13.0; 0 when there is no driver
  int runtime_version = 0;   //!< the CUDA runtime this build carries
  std::string problem;       //!< why not usable: no driver, no device, driver too old...
};

//! Asks the CUDA runtime about device 0.
DeviceProbe probe_device();

//! "CUDA 13.0" from 13000.
std::string cuda_version_string(int version);

}  // namespace ddad_rt::cuda
