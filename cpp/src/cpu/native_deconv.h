// The decoders' last layer - a transposed convolution (kernel 4, stride 2, padding 1, few
// output channels: 16 -> 1 for AE, 16 -> 2 for AE-U) - computed by the engine's own fp32 code
// inside the OpenVINO graph: an operation with evaluate(), which OpenVINO's CPU plugin runs
// as a reference node with f32 tensors, whatever the network's inference precision.
//
// Why: OpenVINO runs this layer far below the CPU's rate (3.4 GFLOP/s in fp32), and in a
// bf16 network its sub-pixel rewrite (openvino_rewrites.h) would put bf16 rounding on the
// reconstructions, which A_intra (a standard deviation of nearly equal values) amplifies.
// In fp32 the layer's output carries fp32 rounding only, in either network precision.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <openvino/op/op.hpp>

namespace ddad_rt::cpu {

class ThreadPool;

//! One input tap of an output phase of the transposed convolution (kernel 4, stride 2,
//! padding 1): output pixel (2i + a, 2j + b) reads input (i + dy, j + dx) through kernel tap
//! (ky, kx) = (a + 1 - 2 dy, b + 1 - 2 dx), where that lies in [0, 4).
struct DeconvTap {
  int dy, dx, k;  // input offset; kernel index ky * 4 + kx
};

//! The four taps (two per axis) of output phase (a, b), a and b in {0, 1}.
inline void deconv_phase_taps(int a, int b, DeconvTap taps[4]) {
  int n = 0;
  for (int dy = -1; dy <= 1; ++dy) {
    const int ky = a + 1 - 2 * dy;
    if (ky < 0 || ky > 3) continue;
    for (int dx = -1; dx <= 1; ++dx) {
      const int kx = b + 1 - 2 * dx;
      if (kx < 0 || kx > 3) continue;
      taps[n++] = {dy, dx, ky * 4 + kx};
    }
  }
}

//! x [N, C_in, H, W] -> y [N, C_out, 2H, 2W] with weights [C_in, C_out, 4, 4] (ONNX
//! ConvTranspose layout), no bias; images split over `pool` (may be null: one thread).
void transposed_conv4x4s2(const float* x, std::int64_t n, std::int64_t cin, std::int64_t h,
                          std::int64_t w, const float* weights, std::int64_t cout, float* y,
                          ThreadPool* pool);

//! The OpenVINO operation that runs transposed_conv4x4s2.
class NativeTransposedConv final : public ov::op::Op {
 public:
  OPENVINO_OP("DdadTransposedConv4x4s2", "ddad_rt")

  NativeTransposedConv() = default;
  NativeTransposedConv(const ov::Output<ov::Node>& x, std::shared_ptr<const std::vector<float>> weights,
                       std::int64_t cin, std::int64_t cout, std::shared_ptr<ThreadPool> pool);

  void validate_and_infer_types() override;
  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& inputs) const override;
  bool visit_attributes(ov::AttributeVisitor& visitor) override;
  bool has_evaluate() const override { return true; }
  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;

 private:
  std::shared_ptr<const std::vector<float>> weights_;
  std::int64_t cin_ = 0;
  std::int64_t cout_ = 0;
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace ddad_rt::cpu
