// The fused CUDA kernels. Per-thread work lives in pipeline_math.h (shared with the CPU
// emulation the tests run); what is here is only what needs a GPU: indices from the launch,
// shared memory and barriers.
#include "cuda/kernels.h"

#ifndef DDAD_RT_CUDA_ARCHITECTURES
#define DDAD_RT_CUDA_ARCHITECTURES "unknown"
#endif

namespace ddad_rt::cuda {
namespace {

constexpr int kNormalizeThreads = 256;

__global__ void normalize_kernel(NormalizeParams a) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       idx < a.count; idx += stride) {
    normalize_element(a, idx);
  }
}

// The block's fixed tree over `sums` (kBlockThreads values in shared memory).
__device__ __forceinline__ void block_tree(float* sums, int j) {
  __syncthreads();
  for (int s = kBlockThreads / 2; s > 0; s >>= 1) {
    tree_step(sums, j, s);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kBlockThreads) discrepancy_kernel(DiscrepancyParams a) {
  __shared__ float shared[3][kBlockThreads];
  const int t = blockIdx.x;
  const int i = blockIdx.y;
  const int j = threadIdx.x;
  float sums[3];
  discrepancy_thread(a, i, t, j, sums);
  for (int c = 0; c < 3; ++c) shared[c][j] = sums[c];
  __syncthreads();
  for (int s = kBlockThreads / 2; s > 0; s >>= 1) {
    for (int c = 0; c < 3; ++c) tree_step(shared[c], j, s);
    __syncthreads();
  }
  if (j < 3) {
    const int tiles = gridDim.x;
    a.partials[(static_cast<std::int64_t>(j) * a.n + i) * tiles + t] = shared[j][0];
  }
}

__global__ void refine_kernel(RefineParams a) {
  __shared__ float shared[kBlockThreads];
  const int t = blockIdx.x;
  const int i = blockIdx.y;
  const int j = threadIdx.x;
  shared[j] = refine_thread(a, i, t, j);
  block_tree(shared, j);
  if (j == 0) a.partials[static_cast<std::int64_t>(i) * gridDim.x + t] = shared[0];
}

// One thread per (score, image): the tiles' sums in tile order.
struct MeansParams {
  const float* partials;  // [rows, n, tiles]
  float* out[3];          // [n] per row
  int rows;
  int n;
  int tiles;
  std::int64_t hw;
};

__global__ void means_kernel(MeansParams a) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= a.rows * a.n) return;
  const int row = idx / a.n;
  const int i = idx % a.n;
  a.out[row][i] = mean_of_tiles(a.partials + static_cast<std::int64_t>(idx) * a.tiles, a.tiles,
                                a.hw);
}

cudaError_t launch_means(const float* partials, float* const* outs, int rows, int n,
                         std::int64_t hw, cudaStream_t stream) {
  MeansParams m{partials, {outs[0], rows > 1 ? outs[1] : nullptr, rows > 2 ? outs[2] : nullptr},
                rows, n, tiles_per_image(hw), hw};
  const int threads = 128;
  means_kernel<<<(rows * n + threads - 1) / threads, threads, 0, stream>>>(m);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_normalize(const NormalizeParams& params, cudaStream_t stream) {
  if (params.count == 0) return cudaSuccess;
  const std::int64_t blocks = (params.count + kNormalizeThreads - 1) / kNormalizeThreads;
  const int grid = static_cast<int>(blocks < 65535 ? blocks : 65535);
  normalize_kernel<<<grid, kNormalizeThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

cudaError_t launch_discrepancy(const DiscrepancyParams& params, cudaStream_t stream) {
  if (params.n == 0) return cudaSuccess;
  const dim3 grid(tiles_per_image(params.hw), params.n);
  discrepancy_kernel<<<grid, kBlockThreads, 0, stream>>>(params);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  float* outs[3] = {params.score_rec, params.score_intra, params.score_inter};
  return launch_means(params.partials, outs, 3, params.n, params.hw, stream);
}

cudaError_t launch_refine(const RefineParams& params, cudaStream_t stream) {
  if (params.n == 0) return cudaSuccess;
  const dim3 grid(tiles_per_image(params.hw), params.n);
  refine_kernel<<<grid, kBlockThreads, 0, stream>>>(params);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  float* outs[1] = {params.score};
  return launch_means(params.partials, outs, 1, params.n, params.hw, stream);
}

const char* compiled_architectures() { return DDAD_RT_CUDA_ARCHITECTURES; }

}  // namespace ddad_rt::cuda
