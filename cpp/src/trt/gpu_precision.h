// Which precision a GPU engine runs, and why. fp16 changes scores; for a screening tool a
// silent precision change is a clinical risk, so fp16 is the default only for a bundle whose
// manifest records a passed fp16 accuracy check made on a GPU (ddad-rt check-precision
// --device cuda --precision fp16), as bf16 needs one on the CPU. Independent of the TensorRT
// headers, so the CPU tests check it.
#pragma once

#include <string>

#include "ddad_rt/bundle.h"

namespace ddad_rt::trt {

//! A precision and the reason for it (engine.info's "precision" and "precision_reason").
struct PrecisionChoice {
  std::string precision;  //!< "fp32" or "fp16"
  std::string reason;
};

//! The precision for `requested` ("default", "auto", "fp32", "fp16"; "bf16" throws
//! EngineError: a CPU precision) on a GPU, for `bundle`.
PrecisionChoice choose_gpu_precision(const std::string& requested, const Bundle& bundle);

}  // namespace ddad_rt::trt
