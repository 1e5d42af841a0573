#include "cpu/openvino_rewrites.h"

#include <vector>

#include <openvino/core/graph_util.hpp>
#include <openvino/op/ops.hpp>

#include "cpu/native_deconv.h"

namespace ddad_rt::cpu {
namespace {

// True if `out` is a MatMul with constant weights, possibly scaled and biased (the ONNX
// frontend reads Gemm as alpha * (x W) + beta * b) within a few elementwise ops.
bool is_dense_layer(const ov::Output<ov::Node>& out, int depth = 3) {
  const std::shared_ptr<ov::Node> node = out.get_node_shared_ptr();
  if (ov::as_type_ptr<ov::op::v0::MatMul>(node)) {
    return ov::as_type_ptr<ov::op::v0::Constant>(node->get_input_node_shared_ptr(1)) != nullptr;
  }
  if (depth == 0 || !(ov::as_type_ptr<ov::op::v1::Add>(node) || ov::as_type_ptr<ov::op::v1::Multiply>(node))) {
    return false;
  }
  return is_dense_layer(node->input_value(0), depth - 1) || is_dense_layer(node->input_value(1), depth - 1);
}

// The transposed convolution's weights [C_in, C_out, 4, 4] when it has the decoders' form
// (kernel 4, stride 2, padding 1, no output-shape input) and few outputs; else empty.
std::shared_ptr<ov::op::v0::Constant> subpixel_candidate(const ov::op::v1::ConvolutionBackpropData& deconv) {
  if (deconv.get_input_size() != 2) return nullptr;
  auto w = ov::as_type_ptr<ov::op::v0::Constant>(deconv.get_input_node_shared_ptr(1));
  if (!w || w->get_shape().size() != 4) return nullptr;
  const ov::Shape& s = w->get_shape();
  const ov::CoordinateDiff pad{1, 1};
  const ov::CoordinateDiff no_pad{0, 0};
  const bool form = s[2] == 4 && s[3] == 4 && deconv.get_strides() == ov::Strides{2, 2} &&
                    deconv.get_dilations() == ov::Strides{1, 1} && deconv.get_pads_begin() == pad &&
                    deconv.get_pads_end() == pad && deconv.get_output_padding() == no_pad &&
                    deconv.get_auto_pad() == ov::op::PadType::EXPLICIT;
  return form && s[1] <= kMaxSubpixelOutputs && deconv.get_input_element_type(0) == ov::element::f32
             ? w
             : nullptr;
}

// Output pixel (2i + a, 2j + b) of the transposed convolution reads input pixels (i + dy,
// j + dx), dy, dx in {-1, 0, 1}, through two kernel taps per axis and phase
// (deconv_phase_taps). So a 3x3 convolution (padding 1) whose output
// channel o * 4 + a * 2 + b holds those taps, and zeros elsewhere, computes every phase at
// the input resolution; DepthToSpace in depth-first order interleaves them.
std::vector<float> subpixel_weights(const std::vector<float>& w, std::size_t cin, std::size_t cout) {
  std::vector<float> out(cout * 4 * cin * 9, 0.0f);
  for (std::size_t o = 0; o < cout; ++o) {
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) {
        const std::size_t oc = o * 4 + static_cast<std::size_t>(a * 2 + b);
        DeconvTap taps[4];
        deconv_phase_taps(a, b, taps);
        for (const DeconvTap& t : taps) {
          for (std::size_t c = 0; c < cin; ++c) {
            out[((oc * cin + c) * 3 + static_cast<std::size_t>(t.dy + 1)) * 3 + static_cast<std::size_t>(t.dx + 1)] =
                w[(c * cout + o) * 16 + static_cast<std::size_t>(t.k)];
          }
        }
      }
    }
  }
  return out;
}

}  // namespace

// For a single image a dense layer is a matrix-vector product, bound by reading its weights
// (the ensemble reads about 100 MB per image). OpenVINO's MLAS kernel streams them nearly twice
// as fast as the oneDNN brgemm it picks when a ReLU is fused into the layer (measured: 367 vs
// 667 us for a 2048x1024 layer out of cache, 1 thread). max(x, 0) is the same function but is
// not fused, so the layer keeps MLAS; the separate max costs a few microseconds.
void keep_dense_layers_unfused(const std::shared_ptr<ov::Model>& model) {
  for (const std::shared_ptr<ov::Node>& node : model->get_ordered_ops()) {
    if (!ov::as_type_ptr<ov::op::v0::Relu>(node) || !is_dense_layer(node->input_value(0))) continue;
    const ov::Output<ov::Node> in = node->input_value(0);
    auto zero = ov::op::v0::Constant::create(in.get_element_type(), ov::Shape{}, {0.0f});
    auto max = std::make_shared<ov::op::v1::Maximum>(in, zero);
    max->set_friendly_name(node->get_friendly_name());
    ov::replace_node(node, max);
  }
}

namespace {

// Calls replace(deconv, weights) for each transposed convolution of the decoders' last-layer
// form (subpixel_candidate); returns how many.
template <typename Replace>
int for_each_last_layer(const std::shared_ptr<ov::Model>& model, Replace replace) {
  int found = 0;
  for (const std::shared_ptr<ov::Node>& node : model->get_ordered_ops()) {
    auto deconv = ov::as_type_ptr<ov::op::v1::ConvolutionBackpropData>(node);
    if (!deconv) continue;
    if (std::shared_ptr<ov::op::v0::Constant> w = subpixel_candidate(*deconv)) {
      replace(deconv, *w);
      ++found;
    }
  }
  return found;
}

}  // namespace

// OpenVINO runs a transposed convolution with one or two output channels (the decoders' last
// layer, 16 -> 1 at 32x32 -> 64x64) far from the CPU's rate: 3.4 GFLOP/s, a quarter of the
// whole fp32 ensemble's time at batch 64. As a 3x3 convolution + DepthToSpace the K=3 AE
// ensemble takes 2.69 instead of 3.07 ms per image in fp32 (batch 64, 1 thread), the same
// function to fp32 rounding. (In bf16 it would take 1.01 instead of 2.04 ms - the layers
// before it move to AMX too - but the layer itself then runs in bf16, which costs accuracy:
// see its use in openvino_networks.cc.)
int transposed_convolutions_as_subpixel(const std::shared_ptr<ov::Model>& model) {
  return for_each_last_layer(model, [](const std::shared_ptr<ov::Node>& deconv, const ov::op::v0::Constant& w) {
    const std::size_t cin = w.get_shape()[0];
    const std::size_t cout = w.get_shape()[1];
    auto weights = ov::op::v0::Constant::create(ov::element::f32, ov::Shape{cout * 4, cin, 3, 3},
                                                subpixel_weights(w.cast_vector<float>(), cin, cout));
    auto conv = std::make_shared<ov::op::v1::Convolution>(
        deconv->input_value(0), weights, ov::Strides{1, 1}, ov::CoordinateDiff{1, 1},
        ov::CoordinateDiff{1, 1}, ov::Strides{1, 1});
    auto interleave = std::make_shared<ov::op::v0::DepthToSpace>(
        conv, ov::op::v0::DepthToSpace::DepthToSpaceMode::DEPTH_FIRST, 2);
    interleave->set_friendly_name(deconv->get_friendly_name());
    ov::replace_node(deconv, interleave);
  });
}

// The same layers in the engine's fp32 code, for bf16 networks (native_deconv.h).
int transposed_convolutions_as_native(const std::shared_ptr<ov::Model>& model,
                                      const std::shared_ptr<ThreadPool>& pool) {
  return for_each_last_layer(model, [&](const std::shared_ptr<ov::Node>& deconv, const ov::op::v0::Constant& w) {
    const auto cin = static_cast<std::int64_t>(w.get_shape()[0]);
    const auto cout = static_cast<std::int64_t>(w.get_shape()[1]);
    auto weights = std::make_shared<const std::vector<float>>(w.cast_vector<float>());
    auto native = std::make_shared<NativeTransposedConv>(deconv->input_value(0), weights, cin, cout, pool);
    native->set_friendly_name(deconv->get_friendly_name());
    ov::replace_node(deconv, native);
  });
}

}  // namespace ddad_rt::cpu
