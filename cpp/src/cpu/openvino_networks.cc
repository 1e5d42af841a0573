// The bundle's ONNX graphs compiled by OpenVINO (linked from its pip wheel): the networks
// the CPU pipeline (cpu/pipeline.cc) runs.
#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <openvino/op/ops.hpp>
#include <openvino/openvino.hpp>

#include "cpu/cpu_count.h"
#include "cpu/networks.h"
#include "cpu/openvino_rewrites.h"
#include "cpu/refine_kernels.h"
#include "cpu/thread_pool.h"
#include "ddad_rt/errors.h"
#include "ddad_rt/kernels/refine_net.h"

namespace ddad_rt::cpu {
namespace {

using ddad_rt::Conv3x3;
using ddad_rt::RefineNetWeights;

using Port = ov::Output<const ov::Node>;

// One graph compiled for the batch sizes the engine runs most - static shapes for a single
// image and for a full chunk (max_batch), which OpenVINO plans ahead - plus a dynamic-batch
// version for every other size. Each compiled version keeps a pool of infer requests: a
// request is single-threaded, so concurrent callers each lease their own.
class Net {
 public:
  //! native_pool: where the layers the engine computes itself inside the graph (the
  //! decoders' last layers, native_deconv.h) split their images; null: none are rewritten.
  Net(ov::Core& core, const Bundle& bundle, const std::string& role, std::int64_t channels,
      const EngineOptions& options, ov::element::Type precision,
      const std::vector<std::string>& output_names,
      const std::shared_ptr<ThreadPool>& native_pool = nullptr)
      : role_(role) {
    const std::string& bytes = bundle.graph_bytes.at(bundle.graphs.at(role));
    std::shared_ptr<ov::Model> model = core.read_model(bytes, ov::Tensor());
    if (model->inputs().size() != 1) {
      throw BundleError("the bundle's " + role + " graph must have exactly one input, it has " +
                        std::to_string(model->inputs().size()));
    }
    if (native_pool) rewrite_decoder_last_layers(model, precision, native_pool);
    ov::AnyMap config{
        // OpenVINO defaults to bf16 on CPUs that have it; the engine decides instead.
        ov::hint::inference_precision(precision),
        ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY),
    };
    // Always explicit: OpenVINO's own default counts the machine's cores, not the CPUs this
    // process may use (a container's quota, a taskset).
    config.emplace(ov::inference_num_threads(resolve_threads(options.num_threads)));
    const auto compile = [&](ov::Dimension batch) {
      std::shared_ptr<ov::Model> m = model->clone();
      m->reshape(ov::PartialShape{batch, channels, bundle.height, bundle.width});
      if (batch == ov::Dimension(1) && precision == ov::element::f32) keep_dense_layers_unfused(m);
      auto v = std::make_unique<Version>();
      v->compiled = core.compile_model(m, "CPU", config);
      for (const std::string& name : output_names) v->ports.push_back(find_output(v->compiled, name));
      return v;
    };
    static_one_ = compile(ov::Dimension(1));
    if (options.max_batch > 1) {
      static_max_ = compile(ov::Dimension(options.max_batch));
      max_batch_ = options.max_batch;
    }
    if (options.max_batch > 2) dynamic_ = compile(ov::Dimension(1, options.max_batch));
  }

  // Runs one request on caller-owned memory (zero-copy in and out where OpenVINO allows).
  // outputs[i] receives the graph output output_names[i] of the constructor.
  void run(const float* input, const ov::Shape& in_shape, const std::vector<float*>& outputs,
           const ov::Shape& out_shape) {
    const std::int64_t n = static_cast<std::int64_t>(in_shape[0]);
    Version& v = n == 1 ? *static_one_ : n == max_batch_ ? *static_max_ : *dynamic_;
    Lease lease(v);
    ov::InferRequest& req = lease.request;
    req.set_input_tensor(ov::Tensor(ov::element::f32, in_shape, const_cast<float*>(input)));
    for (size_t i = 0; i < outputs.size(); ++i) {
      req.set_tensor(v.ports[i], ov::Tensor(ov::element::f32, out_shape, outputs[i]));
    }
    req.infer();
    for (size_t i = 0; i < outputs.size(); ++i) {
      copy_if_moved(req.get_tensor(v.ports[i]), outputs[i], out_shape);
    }
  }

  //! How many of the decoders' last layers run as sub-pixel convolutions in OpenVINO
  //! (openvino_rewrites.h), and how many in the engine's own code (native_deconv.h).
  int subpixel_rewrites() const { return subpixel_rewrites_; }
  int native_rewrites() const { return native_rewrites_; }

 private:
  struct Version {
    ov::CompiledModel compiled;
    std::vector<Port> ports;
    std::mutex pool_mutex;
    std::vector<ov::InferRequest> pool;
  };

  struct Lease {
    explicit Lease(Version& v) : version(v) {
      std::lock_guard<std::mutex> lock(version.pool_mutex);
      if (version.pool.empty()) {
        request = version.compiled.create_infer_request();
      } else {
        request = std::move(version.pool.back());
        version.pool.pop_back();
      }
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(version.pool_mutex);
      version.pool.push_back(std::move(request));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Version& version;
    ov::InferRequest request;
  };

  // The decoders' last layers (transposed convolutions 16 -> 1 or 2), which OpenVINO runs far
  // below the CPU's rate, in a faster form. fp32: sub-pixel convolutions in OpenVINO. bf16:
  // the engine's own fp32 code. A sub-pixel rewrite would run in bf16, and the layer's bf16
  // rounding, amplified by A_intra (a standard deviation of nearly equal reconstructions),
  // moved R_intra's AUC by 0.0094 on the demo bundle (check-precision allows 0.002). Measured
  // on AMD Zen 4 (no AMX), batch 64, 1 thread, bf16 ensemble: 1.88-1.93 ms per image against
  // 2.26-2.53 with OpenVINO's own layer (which it runs in f32 there); R_intra's AUC on a
  // brain_tumor bundle at the paper's budget moved by 0.0019. Sub-pixel for the wider
  // transposed convolutions too (bf16 ones, 1.75-1.84 ms) moved A_intra's by 0.0021: failed.
  void rewrite_decoder_last_layers(const std::shared_ptr<ov::Model>& model, ov::element::Type precision,
                                   const std::shared_ptr<ThreadPool>& pool) {
    if (precision == ov::element::f32) {
      subpixel_rewrites_ = transposed_convolutions_as_subpixel(model);
    } else {
      native_rewrites_ = transposed_convolutions_as_native(model, pool);
    }
  }

  Port find_output(const ov::CompiledModel& compiled, const std::string& name) const {
    for (const auto& out : compiled.outputs()) {
      if (out.get_names().count(name)) return out;
    }
    throw BundleError("the bundle's " + role_ + " graph has no output named '" + name +
                      "': the bundle was not written by ddad_train.export; re-export it");
  }

  // OpenVINO may keep its own buffer for a dynamic-shape output; then copy what it wrote.
  void copy_if_moved(const ov::Tensor& t, float* dst, const ov::Shape& expected) const {
    if (t.get_shape() != expected) {
      throw EngineError("the " + role_ + " graph produced an output of unexpected shape " +
                        t.get_shape().to_string() + " (expected " + expected.to_string() + ")");
    }
    const float* src = t.data<const float>();
    if (src != dst) std::copy(src, src + t.get_size(), dst);
  }

  std::string role_;
  int subpixel_rewrites_ = 0;
  int native_rewrites_ = 0;
  std::int64_t max_batch_ = 1;
  std::unique_ptr<Version> static_one_;
  std::unique_ptr<Version> static_max_;
  std::unique_ptr<Version> dynamic_;
};

// The constant behind a bias input (the ONNX frontend reshapes biases to [1, C, 1, 1]).
std::shared_ptr<ov::op::v0::Constant> constant_through_reshapes(ov::Output<ov::Node> out) {
  std::shared_ptr<ov::Node> node = out.get_node_shared_ptr();
  while (ov::is_type<ov::op::v1::Reshape>(node) || ov::is_type<ov::op::v0::Unsqueeze>(node) ||
         ov::is_type<ov::op::v0::Squeeze>(node)) {
    node = node->input_value(0).get_node_shared_ptr();
  }
  return ov::as_type_ptr<ov::op::v0::Constant>(node);
}

// The weights of a refinement graph of exactly the paper's form - Parameter -> [Conv3x3
// (stride 1, pad 1) + bias + ReLU] x 2 -> Conv3x3 + bias -> Result - or nothing, in which
// case OpenVINO runs the graph as it is.
std::optional<RefineNetWeights> paper_refine_weights(const std::shared_ptr<ov::Model>& model) {
  if (model->get_results().size() != 1 || model->get_parameters().size() != 1) return std::nullopt;
  std::shared_ptr<ov::Node> node = model->get_results()[0]->input_value(0).get_node_shared_ptr();
  Conv3x3 layers[3];
  for (int layer = 2; layer >= 0; --layer) {
    if (layer < 2) {
      if (!ov::is_type<ov::op::v0::Relu>(node)) return std::nullopt;
      node = node->input_value(0).get_node_shared_ptr();
    }
    auto add = ov::as_type_ptr<ov::op::v1::Add>(node);
    if (!add) return std::nullopt;
    std::shared_ptr<ov::op::v1::Convolution> conv;
    std::shared_ptr<ov::op::v0::Constant> bias;
    for (int i = 0; i < 2 && !conv; ++i) {
      conv = ov::as_type_ptr<ov::op::v1::Convolution>(add->input_value(i).get_node_shared_ptr());
      if (conv) bias = constant_through_reshapes(add->input_value(1 - i));
    }
    if (!conv || !bias) return std::nullopt;
    const ov::Strides one{1, 1};
    const ov::CoordinateDiff pad{1, 1};
    if (conv->get_strides() != one || conv->get_dilations() != one ||
        conv->get_pads_begin() != pad || conv->get_pads_end() != pad) {
      return std::nullopt;
    }
    auto w = ov::as_type_ptr<ov::op::v0::Constant>(conv->input_value(1).get_node_shared_ptr());
    if (!w) return std::nullopt;
    const ov::Shape ws = w->get_shape();
    if (ws.size() != 4 || ws[2] != 3 || ws[3] != 3 || shape_size(bias->get_shape()) != ws[0]) {
      return std::nullopt;
    }
    layers[layer] = {static_cast<int>(ws[1]), static_cast<int>(ws[0]), w->cast_vector<float>(),
                     bias->cast_vector<float>()};
    node = conv->input_value(0).get_node_shared_ptr();
  }
  if (!ov::is_type<ov::op::v0::Parameter>(node)) return std::nullopt;
  RefineNetWeights weights{layers[0], layers[1], layers[2]};
  try {
    weights.validate();
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
  return weights;
}

bool has_native_bf16(ov::Core& core) {
  const auto caps = core.get_property("CPU", ov::device::capabilities);
  return std::find(caps.begin(), caps.end(), ov::device::capability::BF16) != caps.end();
}

class OpenVinoNetworks final : public Networks {
 public:
  OpenVinoNetworks(const Bundle& bundle, const EngineOptions& options)
      : k_(bundle.k), height_(bundle.height), width_(bundle.width),
        threads_(resolve_threads(options.num_threads)), has_logvar_(bundle.uncertainty()) {
    choose_precision(bundle, options.precision);
    const ov::element::Type element = precision_ == "bf16" ? ov::element::bf16 : ov::element::f32;
    std::string role = "ensemble";
    try {
      std::vector<std::string> outputs{"udm", "ndm"};
      if (bundle.uncertainty()) outputs.emplace_back("ndm_logvar");
      native_pool_ = std::make_shared<ThreadPool>(threads_);
      ensemble_.emplace(core_, bundle, role, 1, options, element, outputs, native_pool_);
      for (Refiner r : {Refiner::kDual, Refiner::kIntra}) {
        role = refiner_role(r);
        if (!bundle.has_graph(role)) continue;
        if (const std::string native = native_refine_kernels(precision_); !native.empty()) {
          std::shared_ptr<ov::Model> model =
              core_.read_model(bundle.graph_bytes.at(bundle.graphs.at(role)), ov::Tensor());
          if (auto weights = paper_refine_weights(model)) {
            native_.try_emplace(r, std::make_unique<RefineNet>(std::move(*weights), native_pool_,
                                                               "auto", precision_));
            refine_impl_ = "native (Winograd F(4x4,3x3), " + native + ")";
            continue;
          }
        }
        refiners_.try_emplace(r, core_, bundle, role, refiner_channels(r), options, element,
                              std::vector<std::string>{"logits"});
      }
    } catch (const ov::Exception& e) {
      throw EngineError("OpenVINO could not compile the bundle's " + role + " graph: " + e.what());
    }
  }

  std::string name() const override { return "openvino"; }
  std::string precision() const override { return precision_; }
  std::string precision_reason() const override { return precision_reason_; }
  std::string refine_impl() const override { return refine_impl_; }
  std::map<std::string, std::string> extra_info() const override {
    return {{"threads", std::to_string(threads_)},
            {"subpixel_deconvolutions", std::to_string(ensemble_->subpixel_rewrites())},
            {"native_deconvolutions", std::to_string(ensemble_->native_rewrites())}};
  }

  void run_ensemble(const float* images, std::int64_t n, const EnsembleOutputs& out) override {
    std::vector<float*> outputs{out.udm, out.ndm};
    if (has_logvar_) outputs.push_back(out.ndm_logvar);
    try {
      ensemble_->run(images, shape(n, 1), outputs, shape(n, k_));
    } catch (const ov::Exception& e) {
      throw EngineError(std::string("OpenVINO inference failed (ensemble): ") + e.what());
    }
  }

  void run_refine(Refiner which, const float* maps, std::int64_t n, float* logits) override {
    if (auto native = native_.find(which); native != native_.end()) {
      native->second->run(maps, n, height_, width_, logits);
      return;
    }
    auto it = refiners_.find(which);
    if (it == refiners_.end()) {
      throw EngineError(std::string("the bundle has no ") + refiner_role(which) + " graph");
    }
    try {
      it->second.run(maps, shape(n, refiner_channels(which)), {logits},
                     shape(n, 2));
    } catch (const ov::Exception& e) {
      throw EngineError(std::string("OpenVINO inference failed (") + refiner_role(which) +
                        "): " + e.what());
    }
  }

 private:
  void choose_precision(const Bundle& bundle, const std::string& requested) {
    if (requested == "fp32" || requested == "default") {
      precision_ = "fp32";
      precision_reason_ = requested == "fp32" ? "requested" : "default on the CPU";
      return;
    }
    if (requested == "fp16") {
      throw EngineError("precision='fp16' is a GPU precision (TensorRT backend); the CPU backend "
                        "offers 'fp32' and, on CPUs with native bf16, 'bf16'");
    }
    const bool native = has_native_bf16(core_);
    if (requested == "bf16") {
      if (!native) {
        throw EngineError("precision='bf16' needs a CPU with native bf16 (AVX512_BF16 or AMX); "
                          "this one has neither, and emulated bf16 is slower than fp32: use "
                          "precision='fp32' or 'auto'");
      }
      precision_ = "bf16";
      precision_reason_ = "requested";
      return;
    }
    // auto
    const auto& ok = bundle.validated_precisions;
    const bool checked = std::find(ok.begin(), ok.end(), "bf16") != ok.end();
    // The native bf16 refiners (Winograd) round differently from OpenVINO's (direct
    // convolutions): a check made with one does not vouch for the other.
    const bool refiners = bundle.has_graph("refine_dual") || bundle.has_graph("refine_intra");
    const bool native_here = refiners && !native_refine_kernels("bf16").empty();
    const auto impl = bundle.checked_refine_impl.find("bf16");
    const bool native_checked = impl != bundle.checked_refine_impl.end() &&
                                impl->second.find("avx512_bf16") != std::string::npos;
    if (native && checked && native_here == native_checked) {
      precision_ = "bf16";
      precision_reason_ = "auto: the CPU has native bf16 and the bundle's bf16 accuracy check passed";
    } else {
      precision_ = "fp32";
      precision_reason_ =
          !native    ? "auto: this CPU has no native bf16"
          : !checked ? "auto: the bundle has no passed bf16 accuracy check "
                       "(ddad-rt check-precision BUNDLE DATA records one)"
                     : std::string("auto: the bundle's bf16 check was made with ") +
                           (native_checked ? "the native bf16 refiners" : "OpenVINO's bf16 refiners") +
                           ", this CPU runs " + (native_here ? "the native ones" : "OpenVINO's") +
                           ": rerun ddad-rt check-precision on this kind of CPU";
    }
  }

  // The native kernels the refiners run in this precision on this CPU ("" = OpenVINO's),
  // when the graph has the paper's form. fp32: AVX-512 Winograd. bf16: the same with bf16
  // GEMMs on CPUs with AVX512_BF16 but no AMX; with AMX, OpenVINO's AMX convolutions (1.6
  // ms per image at 1 thread against 5.6 for native fp32 on a Xeon with AMX) stay.
  static std::string native_refine_kernels(const std::string& precision) {
    if (precision == "fp32") return RefineNet::isa() == "avx512" ? "avx512" : "";
    if (precision == "bf16" && RefineNet::has_native_bf16() && !cpu_has_amx_bf16()) return "avx512_bf16";
    return "";
  }

  ov::Shape shape(std::int64_t n, std::int64_t c) const {
    return {static_cast<size_t>(n), static_cast<size_t>(c), static_cast<size_t>(height_),
            static_cast<size_t>(width_)};
  }

  int k_;
  std::int64_t height_;
  std::int64_t width_;
  ov::Core core_;
  std::optional<Net> ensemble_;
  std::map<Refiner, Net> refiners_;
  int threads_;
  // The workers of the engine's own code: the refiners and the decoders' last layers (one
  // runs after the other; a caller that finds the pool busy runs on its own thread).
  std::shared_ptr<ThreadPool> native_pool_;
  std::map<Refiner, std::unique_ptr<RefineNet>> native_;
  std::string refine_impl_ = "openvino";
  bool has_logvar_ = false;
  std::string precision_;
  std::string precision_reason_;
};

}  // namespace

std::unique_ptr<Networks> make_openvino_networks(const Bundle& bundle, const EngineOptions& options) {
  return std::make_unique<OpenVinoNetworks>(bundle, options);
}

std::string openvino_version() {
  const ov::Version v = ov::get_openvino_version();
  return v.buildNumber;
}

}  // namespace ddad_rt::cpu
