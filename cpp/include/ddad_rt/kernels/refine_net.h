// ASR's refinement network run natively on the CPU: Conv3x3(C->M)+ReLU, Conv3x3(M->M)+ReLU,
// Conv3x3(M->2), padding 1, BatchNorm folded into the convolutions (as the exported graph
// has them). The M->M convolution - nearly all of the network's work - runs as Winograd
// F(4x4, 3x3): a quarter of direct convolution's multiplies, as 36 small GEMMs per block of
// tiles that stay in cache. Activations are kept channels-last between the layers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ddad_rt {

//! A 3x3 convolution with padding 1: w [cout, cin, 3, 3], b [cout].
struct Conv3x3 {
  int cin = 0;
  int cout = 0;
  std::vector<float> w;
  std::vector<float> b;
};

//! The refinement network's three convolutions (ReLU after the first two).
struct RefineNetWeights {
  Conv3x3 conv1, conv2, conv3;
  //! Throws std::invalid_argument unless the shapes chain: cin -> M -> M -> 2.
  void validate() const;
};

namespace cpu {

class ThreadPool;

//! The refinement network on the CPU. run() may be called from several threads at once.
class RefineNet {
 public:
  //! threads: workers for one run() call (0 = every usable CPU). isa: "auto" (the best this
  //! CPU runs) or "generic" (the portable kernels, e.g. to test them on an AVX-512 machine).
  //! precision: "fp32", or "bf16" (the Winograd GEMMs in bf16 with fp32 accumulation; needs
  //! AVX512_BF16 unless isa is "generic", which emulates it).
  RefineNet(RefineNetWeights weights, int threads, const std::string& isa = "auto",
            const std::string& precision = "fp32");
  //! Runs on `pool`, which other networks may share: one run() at a time has the pool, and
  //! a concurrent caller runs on its own thread. Workspaces are kept and reused either way.
  RefineNet(RefineNetWeights weights, std::shared_ptr<ThreadPool> pool,
            const std::string& isa = "auto", const std::string& precision = "fp32");
  ~RefineNet();
  RefineNet(const RefineNet&) = delete;
  RefineNet& operator=(const RefineNet&) = delete;

  //! maps [n, cin, h, w] -> logits [n, 2, h, w].
  void run(const float* maps, std::int64_t n, std::int64_t h, std::int64_t w, float* logits) const;

  //! "avx512" when the CPU runs the AVX-512 kernels, else "generic".
  static std::string isa();
  //! Whether this CPU runs the bf16 network natively (AVX512_BF16).
  static bool has_native_bf16();
  //! The kernels this network runs.
  std::string kernels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cpu
}  // namespace ddad_rt
