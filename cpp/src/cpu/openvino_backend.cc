// CPU backend: the bundle's ONNX ensemble compiled by OpenVINO (linked from its pip wheel).
#include <mutex>
#include <vector>

#include <openvino/openvino.hpp>

#include "backend.h"
#include "ddad_rt/errors.h"

namespace ddad_rt::cpu {
namespace {

class OpenVinoBackend final : public Backend {
 public:
  OpenVinoBackend(const Bundle& bundle, const EngineOptions& options)
      : k_(bundle.k), height_(bundle.height), width_(bundle.width) {
    try {
      const std::string& bytes = bundle.graph_bytes.at(bundle.graphs.at("ensemble"));
      std::shared_ptr<ov::Model> model = core_.read_model(bytes, ov::Tensor());
      if (model->inputs().size() != 1) {
        throw BundleError("ensemble graph must have exactly one input ('images'), it has " +
                          std::to_string(model->inputs().size()));
      }
      model->reshape(ov::PartialShape{ov::Dimension(1, options.max_batch), 1, height_, width_});
      ov::AnyMap config{
          // OpenVINO defaults to bf16 on CPUs that have it; fp32 means fp32.
          ov::hint::inference_precision(ov::element::f32),
          ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY),
      };
      if (options.num_threads > 0) config.emplace(ov::inference_num_threads(options.num_threads));
      compiled_ = core_.compile_model(model, "CPU", config);
      udm_port_ = find_output(compiled_, "udm");
      ndm_port_ = find_output(compiled_, "ndm");
    } catch (const ov::Exception& e) {
      throw EngineError(std::string("OpenVINO could not compile the bundle's ensemble graph: ") +
                        e.what());
    }
  }

  std::string name() const override { return "openvino"; }
  std::string device() const override { return "cpu"; }
  std::string precision() const override { return "fp32"; }

  void run_ensemble(const float* images, std::int64_t n, float* udm, float* ndm) override {
    const ov::Shape in_shape{static_cast<size_t>(n), 1, static_cast<size_t>(height_),
                             static_cast<size_t>(width_)};
    const ov::Shape out_shape{static_cast<size_t>(n), static_cast<size_t>(k_),
                              static_cast<size_t>(height_), static_cast<size_t>(width_)};
    RequestLease lease(*this);
    ov::InferRequest& req = lease.request();
    try {
      // Zero-copy: the request reads the caller's input and writes the caller's outputs.
      req.set_input_tensor(ov::Tensor(ov::element::f32, in_shape, const_cast<float*>(images)));
      req.set_tensor(udm_port_, ov::Tensor(ov::element::f32, out_shape, udm));
      req.set_tensor(ndm_port_, ov::Tensor(ov::element::f32, out_shape, ndm));
      req.infer();
      copy_if_moved(req.get_tensor(udm_port_), udm, out_shape);
      copy_if_moved(req.get_tensor(ndm_port_), ndm, out_shape);
    } catch (const ov::Exception& e) {
      throw EngineError(std::string("OpenVINO inference failed: ") + e.what());
    }
  }

 private:
  // An infer request is single-threaded; concurrent callers each lease their own.
  class RequestLease {
   public:
    explicit RequestLease(OpenVinoBackend& b) : b_(b) {
      std::lock_guard<std::mutex> lock(b_.pool_mutex_);
      if (b_.pool_.empty()) {
        req_ = b_.compiled_.create_infer_request();
      } else {
        req_ = std::move(b_.pool_.back());
        b_.pool_.pop_back();
      }
    }
    ~RequestLease() {
      std::lock_guard<std::mutex> lock(b_.pool_mutex_);
      b_.pool_.push_back(std::move(req_));
    }
    RequestLease(const RequestLease&) = delete;
    RequestLease& operator=(const RequestLease&) = delete;
    ov::InferRequest& request() { return req_; }

   private:
    OpenVinoBackend& b_;
    ov::InferRequest req_;
  };

  static ov::Output<const ov::Node> find_output(const ov::CompiledModel& compiled,
                                                const std::string& name) {
    for (const auto& out : compiled.outputs()) {
      if (out.get_names().count(name)) return out;
    }
    throw BundleError("ensemble graph has no output named '" + name +
                      "': the bundle was not written by ddad_train.export; re-export it");
  }

  // OpenVINO may keep its own buffer for a dynamic-shape output; then copy what it wrote.
  static void copy_if_moved(const ov::Tensor& t, float* dst, const ov::Shape& expected) {
    if (t.get_shape() != expected) {
      throw EngineError("ensemble graph produced an output of unexpected shape " +
                        t.get_shape().to_string() + " (expected " + expected.to_string() + ")");
    }
    const float* src = t.data<const float>();
    if (src != dst) std::copy(src, src + t.get_size(), dst);
  }

  int k_;
  std::int64_t height_;
  std::int64_t width_;
  ov::Core core_;
  ov::CompiledModel compiled_;
  ov::Output<const ov::Node> udm_port_;
  ov::Output<const ov::Node> ndm_port_;
  std::mutex pool_mutex_;
  std::vector<ov::InferRequest> pool_;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend(const Bundle& bundle, const EngineOptions& options) {
  return std::make_unique<OpenVinoBackend>(bundle, options);
}

std::string openvino_version() {
  const ov::Version v = ov::get_openvino_version();
  return v.buildNumber;
}

}  // namespace ddad_rt::cpu
