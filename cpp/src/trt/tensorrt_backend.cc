// The TensorRT backend. Per engine: one TensorRT engine per graph (built from the bundle's
// ONNX with the ONNX parser, or loaded from the on-disk cache), and a small pool of slots.
// A slot is one CUDA stream with every buffer the pipeline needs, allocated once; it serves
// one call at a time. Per batch size a slot keeps execution contexts bound to its buffers
// and, after the first call at that size, a CUDA graph of the whole pipeline - copy in,
// normalisation, ensemble, discrepancy kernel, refiners, refinement kernels, copy out - so a
// call is one memcpy into pinned memory, one graph launch and one memcpy out.
#include "trt/tensorrt_backend.h"

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <tuple>

#include "batching.h"
#include "cuda/kernels.h"
#include "ddad_rt/errors.h"
#include "gpu_health.h"
#include "input.h"
#include "trt/cuda_resources.h"
#include "trt/engine_cache.h"
#include "trt/gpu_precision.h"
#include "trt/library.h"
#include "trt/plan_builder.h"

#if NV_TENSORRT_MAJOR < 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR < 1)
#error "ddad_rt's TensorRT backend needs TensorRT 10.1 or newer (setDeviceMemoryV2)"
#endif

namespace ddad_rt::trt {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxSlots = 2;  // concurrent calls on the GPU (one profile each); more callers wait

// ---- the backend ----------------------------------------------------------------------

// One graph as a TensorRT engine, with the names of its I/O tensors.
struct Net {
  std::string role;
  TrtPtr<nv::ICudaEngine> engine;
  std::string input;
  std::vector<std::string> outputs;
};

constexpr size_t kMaxPlansPerSlot = 8;   // batch sizes with contexts and graphs, LRU

class TensorRtBackend final : public Backend {
 public:
  TensorRtBackend(const Bundle& bundle, const EngineOptions& options, const CudaStatus& status)
      : k_(bundle.k), height_(bundle.height), width_(bundle.width), hw_(bundle.height * bundle.width),
        max_batch_(options.max_batch), has_logvar_(bundle.uncertainty()),
        norm_mean_(bundle.norm_mean), norm_std_(bundle.norm_std), gpu_(status.gpu) {
    std::string problem;
    api_ = load_api(tensorrt_library_dirs(), problem);
    if (!api_) throw EngineError("device='cuda' is unavailable: " + problem);
    const PrecisionChoice choice = choose_gpu_precision(options.precision, bundle);
    precision_ = choice.precision;
    precision_reason_ = choice.reason;
    DDAD_CUDA_CHECK(cudaSetDevice(device_));
    cache_dir_ = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    runtime_.reset(api_->runtime());
    if (!runtime_) throw EngineError("createInferRuntime failed: " + logger().take_errors());

    const TimingCacheKey timing_key{api_->version, status.compute_capability};
    timing_path_ = (fs::path(cache_dir_) / timing_key.file_name()).string();
    std::vector<std::pair<std::string, std::int64_t>> roles{{"ensemble", 1}};
    for (Refiner r : {Refiner::kDual, Refiner::kIntra}) {
      if (bundle.has_graph(refiner_role(r))) roles.emplace_back(refiner_role(r), refiner_channels(r));
    }
    for (const auto& [role, channels] : roles) {
      PlanKey key;
      key.bundle_identity = bundle.identity;
      key.role = role;
      key.graph_sha256 = bundle.files.at(bundle.graphs.at(role));
      key.max_batch = max_batch_;
      key.precision = precision_;
      key.tensorrt_version = api_->version;
      key.compute_capability = status.compute_capability;
      key.profiles = kMaxSlots;
      key.ddad_rt_version = DDAD_RT_VERSION;
      key.build_recipe = kBuildRecipe;
      nets_.emplace(role, load_or_build(bundle, key, channels, timing_key));
    }
    has_dual_ = nets_.count("refine_dual") != 0;
    has_intra_ = nets_.count("refine_intra") != 0;
    for (const auto& [role, net] : nets_) {
      scratch_bytes_ = std::max<std::int64_t>(scratch_bytes_, net.engine->getDeviceMemorySizeV2());
    }
  }

  ~TensorRtBackend() override {
    cudaSetDevice(device_);
    slots_.clear();  // contexts and graphs before the engines, engines before the runtime
    nets_.clear();
  }

  std::string name() const override { return "tensorrt"; }
  std::string device() const override { return "cuda"; }
  std::string precision() const override { return precision_; }
  std::string precision_reason() const override { return precision_reason_; }
  std::string refine_impl() const override { return "tensorrt"; }

  std::map<std::string, std::string> extra_info() const override {
    std::string cache;
    for (const auto& [role, what] : cache_report_) cache += (cache.empty() ? "" : "; ") + role + ": " + what;
    return {{"gpu", gpu_},
            {"tensorrt", api_->version},
            {"tensorrt_library", api_->path},
            {"engine_cache_dir", cache_dir_},
            {"engine_cache", cache},
            {"cuda_graphs", graph_failures_ == 0
                                ? "replayed after the first call at each batch size"
                                : "capture failed " + std::to_string(graph_failures_.load()) +
                                      " time(s); those calls run without a graph (" +
                                      last_graph_failure() + ")"}};
  }

  void score_chunk(const ImageBatch& images, std::int64_t start, std::int64_t count,
                   const ScoreOutputs& out, const Selection& selection) override {
    health_.check();
    DDAD_CUDA_CHECK(cudaSetDevice(device_));
    Lease lease(*this);
    try {
      run_chunk(*lease.slot, images, start, count, out, selection);
    } catch (const std::exception& e) {
      const auto* cuda_error = dynamic_cast<const CudaError*>(&e);
      if (settle_after_failure(lease, cuda_error ? cuda_error->code() : cudaSuccess, e.what())) throw;
      throw EngineError(std::string(e.what()) + "; " + GpuHealth::message(e.what()));
    }
  }

 private:
  // A captured pipeline differs by input type, by the scores asked for (which refiners run)
  // and by whether maps are copied back.
  struct GraphKey {
    int type;
    unsigned scores;
    bool maps;
    bool operator<(const GraphKey& o) const {
      return std::tie(type, scores, maps) < std::tie(o.type, o.scores, o.maps);
    }
  };

  // Execution contexts for one batch size, bound to a slot's buffers, and the CUDA graphs of
  // the pipeline at that size (per input type and maps wanted). A null graph: capture failed,
  // run eagerly.
  struct Plan {
    std::int64_t batch = 0;
    TrtPtr<nv::IExecutionContext> ensemble, dual, intra;
    std::map<GraphKey, GraphExec> graphs;
  };

  struct Slot {
    int index = 0;              // also the optimisation profile its contexts use
    Stream stream;
    DeviceMem scratch;          // TensorRT activations, shared by this slot's contexts
    DeviceMem raw, x, udm, ndm, logvar, dual_in, intra_in, logits, partials, scores, maps;
    PinnedMem raw_host, scores_host, maps_host;
    std::list<Plan> plans;      // most recently used first

    Plan& plan_for(TensorRtBackend& b, std::int64_t batch) {
      for (auto it = plans.begin(); it != plans.end(); ++it) {
        if (it->batch == batch) {
          plans.splice(plans.begin(), plans, it);
          return plans.front();
        }
      }
      Plan p;  // complete before it is listed: a failed context leaves no half plan behind
      p.batch = batch;
      p.ensemble = b.context("ensemble", *this, batch, as_floats(x),
                             {as_floats(udm), as_floats(ndm), as_floats(logvar)});
      if (b.has_dual_) {
        p.dual = b.context("refine_dual", *this, batch, as_floats(dual_in), {as_floats(logits)});
      }
      if (b.has_intra_) {
        p.intra = b.context("refine_intra", *this, batch, as_floats(intra_in), {as_floats(logits)});
      }
      if (plans.size() >= kMaxPlansPerSlot) plans.pop_back();
      plans.push_front(std::move(p));
      return plans.front();
    }

    // Map buffers are only allocated when someone asks for maps; graphs that copy maps are
    // captured after this, so their addresses never change.
    void ensure_maps(const TensorRtBackend& b) {
      if (maps) return;
      const std::size_t bytes = sizeof(float) * kNumScores * b.max_batch_ * b.hw_;
      maps = device_alloc(bytes);
      maps_host = pinned_alloc(bytes);
    }
  };

  // One slot for one call; back to the pool at scope exit unless retired.
  struct Lease {
    explicit Lease(TensorRtBackend& b) : backend(b) {
      std::unique_lock<std::mutex> lock(b.slots_mutex_);
      b.slots_cv_.wait(lock, [&] {
        return b.health_.dead() || !b.free_.empty() || b.slots_.size() < kMaxSlots;
      });
      b.health_.check();
      if (!b.free_.empty()) {
        slot = b.free_.back();
        b.free_.pop_back();
      } else {
        b.slots_.push_back(b.make_slot());
        slot = b.slots_.back().get();
      }
    }
    ~Lease() {
      if (!slot) return;  // retired
      {
        std::lock_guard<std::mutex> lock(backend.slots_mutex_);
        backend.free_.push_back(slot);
      }
      backend.slots_cv_.notify_one();
    }
    //! The slot never goes back to the pool (its stream is in an unknown state).
    void retire() { slot = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    TensorRtBackend& backend;
    Slot* slot = nullptr;
  };

  // After a failed call the slot's stream may still hold queued work (a kernel, a copy into
  // its pinned buffers): it goes back to the pool only once that work has finished. A
  // sticky error, or a stream that cannot be synchronised, kills the engine: the slot is
  // retired and every later call says why. Returns true when the engine is still usable.
  bool settle_after_failure(Lease& lease, cudaError_t code, const std::string& what) {
    const cudaError_t sync = cudaStreamSynchronize(lease.slot->stream.get());
    const cudaError_t last = cudaGetLastError();  // clears a non-sticky error for the next call
    const bool sticky = is_sticky_cuda_error(code) || is_sticky_cuda_error(sync) ||
                        is_sticky_cuda_error(last);
    if (!sticky && sync == cudaSuccess) return true;
    health_.mark_dead(sync != cudaSuccess && !is_sticky_cuda_error(code)
                          ? what + "; then synchronising its stream failed: " + cudaGetErrorName(sync)
                          : what);
    lease.retire();
    slots_cv_.notify_all();  // callers waiting for a slot must see the engine is dead
    return false;
  }

  void run_chunk(Slot& slot, const ImageBatch& images, std::int64_t start, std::int64_t count,
                 const ScoreOutputs& out, const Selection& sel) {
    Plan& plan = slot.plan_for(*this, count);
    const std::size_t pixel_bytes = dtype_size(images.dtype);
    const std::size_t in_bytes = static_cast<std::size_t>(count * hw_) * pixel_bytes;
    std::memcpy(slot.raw_host.get(),
                static_cast<const char*>(images.data) + static_cast<std::size_t>(start * hw_) * pixel_bytes,
                in_bytes);
    if (sel.maps) slot.ensure_maps(*this);
    static_assert(static_cast<int>(DType::kUInt8) == static_cast<int>(cuda::RawType::kUInt8) &&
                      static_cast<int>(DType::kUInt16) == static_cast<int>(cuda::RawType::kUInt16) &&
                      static_cast<int>(DType::kFloat32) == static_cast<int>(cuda::RawType::kFloat32),
                  "cuda::RawType mirrors DType");
    const auto type = static_cast<cuda::RawType>(static_cast<int>(images.dtype));
    const GraphKey gkey{static_cast<int>(type), sel.scores.bits(), sel.maps};
    auto g = plan.graphs.find(gkey);
    if (g != plan.graphs.end() && g->second) {
      DDAD_CUDA_CHECK(cudaGraphLaunch(g->second.get(), slot.stream.get()));
    } else {
      enqueue(slot, plan, type, sel, count);
      if (g == plan.graphs.end()) {
        DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
        plan.graphs[gkey] = capture(slot, plan, type, sel, count);
      }
    }
    DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
    // From pinned staging to the caller's arrays.
    const float* scores = static_cast<const float*>(slot.scores_host.get());
    const float* maps = static_cast<const float*>(slot.maps_host.get());
    for (Score s : kAllScores) {
      if (!sel.wants(s)) continue;
      const int idx = static_cast<int>(s);
      std::memcpy(out.score(s) + start, scores + idx * max_batch_, sizeof(float) * count);
      if (sel.maps) {
        std::memcpy(out.map(s) + start * hw_, maps + idx * max_batch_ * hw_,
                    sizeof(float) * count * hw_);
      }
    }
  }

  Net load_or_build(const Bundle& bundle, const PlanKey& key, std::int64_t channels,
                    const TimingCacheKey& timing_key) {
    Net net;
    net.role = key.role;
    const std::string path = (fs::path(cache_dir_) / key.file_name()).string();
    logger().clear();
    CacheEntry entry = read_cache_file(path, key.text());
    std::string why_built = entry.reason;
    if (entry.status == CacheRead::kHit) {
      net.engine.reset(runtime_->deserializeCudaEngine(entry.payload.data(), entry.payload.size()));
      if (net.engine) {
        cache_report_[key.role] = "loaded from " + path;
      } else {
        why_built = "the cached plan was rejected by TensorRT (" + logger().take_errors() + ")";
      }
    }
    if (!net.engine) {
      std::string timing = read_cache_file(timing_path_, timing_key.text()).payload;
      const std::string plan = build_plan({api_.get(), key.role, &bundle.graph_bytes.at(bundle.graphs.at(key.role)),
                                           channels, height_, width_, max_batch_, kMaxSlots, precision_,
                                           &timing});
      net.engine.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
      if (!net.engine) {
        throw EngineError("TensorRT could not load the engine it just built for " + key.role +
                          ": " + logger().take_errors());
      }
      std::string saved = "cached at " + path;
      try {
        write_cache_file(path, key.text(), plan.data(), plan.size());
        if (!timing.empty()) write_cache_file(timing_path_, timing_key.text(), timing.data(), timing.size());
      } catch (const std::exception& e) {
        saved = std::string("not cached: ") + e.what();
      }
      cache_report_[key.role] = "built (" + why_built + "), " + saved;
    }
    // Check the I/O the pipeline binds by name.
    for (std::int32_t i = 0; i < net.engine->getNbIOTensors(); ++i) {
      const char* name = net.engine->getIOTensorName(i);
      if (net.engine->getTensorDataType(name) != nv::DataType::kFLOAT) {
        throw BundleError("the bundle's " + key.role + " graph has a non-float32 tensor '" + name +
                          "': re-export it with ddad_train.export");
      }
      if (net.engine->getTensorIOMode(name) == nv::TensorIOMode::kINPUT) {
        net.input = name;
      } else {
        net.outputs.emplace_back(name);
      }
    }
    const std::vector<std::string> wanted =
        key.role == "ensemble"
            ? (has_logvar_ ? std::vector<std::string>{"udm", "ndm", "ndm_logvar"}
                           : std::vector<std::string>{"udm", "ndm"})
            : std::vector<std::string>{"logits"};
    for (const std::string& w : wanted) {
      if (std::find(net.outputs.begin(), net.outputs.end(), w) == net.outputs.end()) {
        throw BundleError("the bundle's " + key.role + " graph has no output named '" + w +
                          "': the bundle was not written by ddad_train.export; re-export it");
      }
    }
    // enqueueV3 needs an address for every output: an output the pipeline does not bind
    // would fail every call, so refuse the graph now.
    for (const std::string& o : net.outputs) {
      if (std::find(wanted.begin(), wanted.end(), o) == wanted.end()) {
        throw BundleError("the bundle's " + key.role + " graph has an unexpected output '" + o +
                          "': the bundle was not written by ddad_train.export; re-export it");
      }
    }
    net.outputs = wanted;
    return net;
  }

  std::unique_ptr<Slot> make_slot() {
    auto s = std::make_unique<Slot>();
    s->index = static_cast<int>(slots_.size());  // under slots_mutex_ (Lease)
    cudaStream_t stream = nullptr;
    DDAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    s->stream.reset(stream);
    const std::size_t mb = static_cast<std::size_t>(max_batch_);
    const std::size_t img = mb * static_cast<std::size_t>(hw_);
    const std::size_t members = img * static_cast<std::size_t>(k_);
    s->scratch = device_alloc(static_cast<std::size_t>(scratch_bytes_));
    s->raw = device_alloc(img * sizeof(float));  // room for the widest input type
    s->x = device_alloc(img * sizeof(float));
    s->udm = device_alloc(members * sizeof(float));
    s->ndm = device_alloc(members * sizeof(float));
    if (has_logvar_) s->logvar = device_alloc(members * sizeof(float));
    if (has_dual_) s->dual_in = device_alloc(2 * img * sizeof(float));
    if (has_intra_) s->intra_in = device_alloc(img * sizeof(float));
    if (has_dual_ || has_intra_) s->logits = device_alloc(2 * img * sizeof(float));
    s->partials = device_alloc(3 * mb * cuda::tiles_per_image(hw_) * sizeof(float));
    s->scores = device_alloc(kNumScores * mb * sizeof(float));
    s->raw_host = pinned_alloc(img * sizeof(float));
    s->scores_host = pinned_alloc(kNumScores * mb * sizeof(float));
    return s;
  }

  TrtPtr<nv::IExecutionContext> context(const std::string& role, Slot& slot, std::int64_t batch,
                                        float* input, const std::vector<float*>& outputs) {
    const Net& net = nets_.at(role);
    logger().clear();
    TrtPtr<nv::IExecutionContext> ctx(
        net.engine->createExecutionContext(nv::ExecutionContextAllocationStrategy::kUSER_MANAGED));
    if (!ctx) throw EngineError("TensorRT could not create an execution context for " + role + ": " + logger().take_errors());
    ctx->setDeviceMemoryV2(slot.scratch.get(), scratch_bytes_);
    bool ok = ctx->setOptimizationProfileAsync(slot.index, slot.stream.get());
    DDAD_CUDA_CHECK(cudaStreamSynchronize(slot.stream.get()));
    const nv::Dims graph_dims = net.engine->getTensorShape(net.input.c_str());
    const std::int64_t channels = role == "refine_dual" ? 2 : 1;
    ok = ok && ctx->setInputShape(net.input.c_str(), batch_dims(graph_dims, batch, channels, height_, width_));
    ok = ok && ctx->setTensorAddress(net.input.c_str(), input);
    for (size_t i = 0; i < net.outputs.size(); ++i) {
      ok = ok && ctx->setTensorAddress(net.outputs[i].c_str(), outputs.at(i));
    }
    if (!ok || !ctx->allInputDimensionsSpecified()) {
      throw EngineError("TensorRT refused the " + role + " bindings at batch " + std::to_string(batch) +
                        " (profile " + std::to_string(slot.index) + "): " + logger().take_errors());
    }
    // The shared scratch is sized for the largest shape of every engine; check, not assume.
    const std::size_t needed = ctx->updateDeviceMemorySizeForShapes();
    if (needed > static_cast<std::size_t>(scratch_bytes_)) {
      throw EngineError("TensorRT needs " + std::to_string(needed) + " bytes of activation memory for " +
                        role + " at batch " + std::to_string(batch) + ", more than the " +
                        std::to_string(scratch_bytes_) + " it reported for the engine");
    }
    return ctx;
  }

  float* score_ptr(const Slot& s, Score score) const {
    return as_floats(s.scores) + static_cast<int>(score) * max_batch_;
  }
  float* map_ptr(const Slot& s, Score score, const Selection& sel) const {
    return sel.maps && sel.wants(score) ? as_floats(s.maps) + static_cast<int>(score) * max_batch_ * hw_
                                        : nullptr;
  }

  // The whole pipeline for `n` images on the slot's stream; no synchronisation inside, so it
  // can be captured into a CUDA graph.
  void enqueue(Slot& s, Plan& p, cuda::RawType type, const Selection& sel, std::int64_t n) {
    cudaStream_t stream = s.stream.get();
    const std::size_t pixel_bytes = type == cuda::RawType::kUInt8 ? 1 : type == cuda::RawType::kUInt16 ? 2 : 4;
    DDAD_CUDA_CHECK(cudaMemcpyAsync(s.raw.get(), s.raw_host.get(), static_cast<std::size_t>(n * hw_) * pixel_bytes,
                                    cudaMemcpyHostToDevice, stream));
    cuda::NormalizeParams norm;
    norm.raw = s.raw.get();
    norm.type = type;
    norm.mean = norm_mean_;
    norm.std = norm_std_;
    norm.count = n * hw_;
    norm.x = as_floats(s.x);
    DDAD_CUDA_CHECK(cuda::launch_normalize(norm, stream));
    if (!p.ensemble->enqueueV3(stream)) {
      throw EngineError("TensorRT inference failed (ensemble): " + logger().take_errors());
    }
    cuda::DiscrepancyParams d;
    d.x = as_floats(s.x);
    d.udm = as_floats(s.udm);
    d.ndm = as_floats(s.ndm);
    d.ndm_logvar = has_logvar_ ? as_floats(s.logvar) : nullptr;
    d.n = static_cast<int>(n);
    d.k = k_;
    d.hw = hw_;
    d.map_rec = map_ptr(s, Score::kRec, sel);
    d.map_intra = map_ptr(s, Score::kIntra, sel);
    d.map_inter = map_ptr(s, Score::kInter, sel);
    // Only the refiners the selection needs get their inputs, and run.
    d.dual_in = sel.wants(Score::kRDual) ? as_floats(s.dual_in) : nullptr;
    d.intra_in = sel.wants(Score::kRIntra) ? as_floats(s.intra_in) : nullptr;
    d.partials = as_floats(s.partials);
    d.score_rec = score_ptr(s, Score::kRec);
    d.score_intra = score_ptr(s, Score::kIntra);
    d.score_inter = score_ptr(s, Score::kInter);
    DDAD_CUDA_CHECK(cuda::launch_discrepancy(d, stream));
    for (auto [ctx, score] : {std::pair{p.dual.get(), Score::kRDual}, std::pair{p.intra.get(), Score::kRIntra}}) {
      if (!ctx || !sel.wants(score)) continue;
      if (!ctx->enqueueV3(stream)) {
        throw EngineError(std::string("TensorRT inference failed (") + score_key(score) + "): " +
                          logger().take_errors());
      }
      cuda::RefineParams r;
      r.logits = as_floats(s.logits);
      r.n = static_cast<int>(n);
      r.hw = hw_;
      r.map = map_ptr(s, score, sel);
      r.partials = as_floats(s.partials);
      r.score = score_ptr(s, score);
      DDAD_CUDA_CHECK(cuda::launch_refine(r, stream));
    }
    DDAD_CUDA_CHECK(cudaMemcpyAsync(s.scores_host.get(), s.scores.get(), sizeof(float) * kNumScores * max_batch_,
                                    cudaMemcpyDeviceToHost, stream));
    if (sel.maps) {
      for (Score score : kAllScores) {
        if (!sel.wants(score)) continue;
        const std::size_t offset = static_cast<std::size_t>(static_cast<int>(score) * max_batch_ * hw_);
        DDAD_CUDA_CHECK(cudaMemcpyAsync(static_cast<float*>(s.maps_host.get()) + offset, as_floats(s.maps) + offset,
                                        sizeof(float) * n * hw_, cudaMemcpyDeviceToHost, stream));
      }
    }
  }

  // Records the pipeline into a CUDA graph (nothing runs). A failed capture leaves an empty
  // graph handle: that plan runs eagerly from then on.
  GraphExec capture(Slot& s, Plan& p, cuda::RawType type, const Selection& sel, std::int64_t n) {
    cudaStream_t stream = s.stream.get();
    DDAD_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t raw_graph = nullptr;
    try {
      enqueue(s, p, type, sel, n);
    } catch (const std::exception& e) {
      note_graph_failure(e.what());
      cudaStreamEndCapture(stream, &raw_graph);
      if (raw_graph) cudaGraphDestroy(raw_graph);
      cudaGetLastError();
      return GraphExec();
    }
    if (cudaError_t e = cudaStreamEndCapture(stream, &raw_graph); e != cudaSuccess || !raw_graph) {
      note_graph_failure(std::string("end capture: ") + cudaGetErrorName(e));
      cudaGetLastError();
      return GraphExec();
    }
    Graph graph(raw_graph);
    cudaGraphExec_t exec = nullptr;
    if (cudaError_t e = cudaGraphInstantiate(&exec, graph.get(), 0); e != cudaSuccess) {
      note_graph_failure(std::string("instantiate: ") + cudaGetErrorName(e));
      cudaGetLastError();
      return GraphExec();
    }
    return GraphExec(exec);
  }

  void note_graph_failure(const std::string& why) {
    ++graph_failures_;
    std::lock_guard<std::mutex> lock(graph_failure_mutex_);
    graph_failure_ = why;
  }
  std::string last_graph_failure() const {
    std::lock_guard<std::mutex> lock(graph_failure_mutex_);
    return graph_failure_;
  }

  GpuHealth health_;
  std::atomic<int> graph_failures_{0};
  mutable std::mutex graph_failure_mutex_;
  std::string graph_failure_;
  int device_ = 0;
  int k_;
  std::int64_t height_, width_, hw_;
  std::int64_t max_batch_;
  bool has_logvar_;
  float norm_mean_, norm_std_;
  bool has_dual_ = false, has_intra_ = false;
  std::string gpu_;
  std::string precision_, precision_reason_;
  std::string cache_dir_, timing_path_;
  std::map<std::string, std::string> cache_report_;
  std::int64_t scratch_bytes_ = 0;
  // Destroyed bottom-up: slots (contexts, graphs, buffers), then engines, then the runtime,
  // then the libraries.
  std::shared_ptr<Api> api_;
  TrtPtr<nv::IRuntime> runtime_;
  std::map<std::string, Net> nets_;
  std::mutex slots_mutex_;
  std::condition_variable slots_cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> free_;
};


}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const Bundle& bundle, const EngineOptions& options,
                                               const CudaStatus& status) {
  return std::make_unique<TensorRtBackend>(bundle, options, status);
}

}  // namespace ddad_rt::trt
