#include "trt/gpu_precision.h"

#include <algorithm>

#include "ddad_rt/errors.h"

namespace ddad_rt::trt {

PrecisionChoice choose_gpu_precision(const std::string& requested, const Bundle& bundle) {
  if (requested == "bf16") {
    throw EngineError("precision='bf16' is a CPU precision; on a GPU use 'fp16' or 'fp32'");
  }
  if (requested == "fp32" || requested == "fp16") return {requested, "requested"};
  const auto& ok = bundle.validated_precisions;
  if (std::find(ok.begin(), ok.end(), "fp16") != ok.end()) {
    return {"fp16", requested + ": the bundle's fp16 accuracy check passed on a GPU"};
  }
  return {"fp32", requested + ": the bundle has no passed fp16 accuracy check made on a GPU, "
                              "so fp32 (TF32 off); `ddad-rt check-precision BUNDLE --data DATA "
                              "--device cuda --precision fp16` records one, or ask for "
                              "precision='fp16'"};
}

}  // namespace ddad_rt::trt
