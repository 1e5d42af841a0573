// Launchers of the fused CUDA kernels (kernels.cu). Each enqueues its kernels on `stream`
// and returns the launch status; they never synchronise, so the TensorRT backend can record
// the whole pipeline into a CUDA graph.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/pipeline_math.h"

namespace ddad_rt::cuda {

//! Raw images -> network units (shared normalize_pixel).
cudaError_t launch_normalize(const NormalizeParams& params, cudaStream_t stream);

//! The fused discrepancy kernel: maps, refiner inputs, tile sums, then the image means.
//! `params.partials` needs 3 * n * tiles_per_image(hw) floats.
cudaError_t launch_discrepancy(const DiscrepancyParams& params, cudaStream_t stream);

//! The refinement post-kernel: softmax channel 1, tile sums, then the image means.
//! `params.partials` needs n * tiles_per_image(hw) floats.
cudaError_t launch_refine(const RefineParams& params, cudaStream_t stream);

//! The architectures this build carries code for, e.g. "sm_75 sm_80 ... compute_120".
const char* compiled_architectures();

}  // namespace ddad_rt::cuda
