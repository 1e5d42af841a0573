// The pybind11 module ddad_rt._core: the C++ engine, nothing else. The public Python API
// (python/ddad_rt/) wraps it. It uses the public C++ API only, through libddad_rt: the same
// library, in the same wheel, that C and C++ applications link.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ddad_rt/device.h"
#include "ddad_rt/engine.h"
#include "ddad_rt/errors.h"

namespace py = pybind11;
using ddad_rt::DType;
using ddad_rt::Engine;
using ddad_rt::EngineOptions;
using ddad_rt::ImageBatch;
using ddad_rt::ScoreOutputs;

namespace {

std::string shape_string(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// Returns a C-contiguous array of the same dtype: the input itself when it already is
// (no copy), else a contiguous copy.
template <typename T>
py::array contiguous(const py::array& a) {
  return py::array_t<T, py::array::c_style>::ensure(a);
}

// The scores asked for by key (None: every score the bundle has).
ddad_rt::ScoreSet wanted_scores(const Engine& engine, const std::optional<std::vector<std::string>>& keys) {
  if (!keys) return engine.scores();
  ddad_rt::ScoreSet set;
  for (const std::string& key : *keys) {
    const auto s = ddad_rt::score_from_key(key);
    if (!s || !engine.has_score(*s)) {
      throw std::invalid_argument("unknown score '" + key + "': this bundle has " +
                                  ddad_rt::score_keys(engine.scores()));
    }
    set.insert(*s);
  }
  if (set.empty()) {
    throw std::invalid_argument("scores is empty: name at least one of " +
                                ddad_rt::score_keys(engine.scores()));
  }
  return set;
}

py::dict score(const Engine& engine, const py::array& images_in, bool want_maps,
               const std::optional<std::vector<std::string>>& keys) {
  const ddad_rt::ScoreSet wanted = wanted_scores(engine, keys);
  py::array images;
  DType dtype;
  if (py::isinstance<py::array_t<float>>(images_in)) {
    dtype = DType::kFloat32;
    images = contiguous<float>(images_in);
  } else if (py::isinstance<py::array_t<std::uint8_t>>(images_in)) {
    dtype = DType::kUInt8;
    images = contiguous<std::uint8_t>(images_in);
  } else if (py::isinstance<py::array_t<std::uint16_t>>(images_in)) {
    dtype = DType::kUInt16;
    images = contiguous<std::uint16_t>(images_in);
  } else {
    throw py::value_error(
        "unsupported dtype " + py::str(images_in.dtype()).cast<std::string>() +
        ": pass uint8 (0-255), uint16 (0-65535) or float32 in [0, 1], e.g. "
        "images.astype(np.float32) after scaling to [0, 1]");
  }
  if (!images) throw py::error_already_set();

  ImageBatch batch;
  batch.dtype = dtype;
  if (images.ndim() == 3) {
    batch.n = images.shape(0);
    batch.height = images.shape(1);
    batch.width = images.shape(2);
  } else if (images.ndim() == 4 && images.shape(1) == 1) {
    batch.n = images.shape(0);
    batch.height = images.shape(2);
    batch.width = images.shape(3);
  } else {
    const auto& b = engine.bundle();
    std::ostringstream msg;
    msg << "images must have shape (N, H, W) or (N, 1, H, W) with H, W = " << b.height << ", "
        << b.width << "; got shape " << shape_string(images_in);
    if (images_in.ndim() == 2) msg << " - for a single image pass image[None]";
    throw py::value_error(msg.str());
  }
  batch.data = images.data();

  const py::ssize_t n = batch.n;
  const py::ssize_t h = engine.bundle().height;
  const py::ssize_t w = engine.bundle().width;
  ScoreOutputs out;
  py::dict scores;
  py::dict map_dict;
  for (ddad_rt::Score s : ddad_rt::kAllScores) {
    if (!wanted.contains(s)) continue;
    py::array_t<float> score_array(n);
    out.score(s) = score_array.mutable_data();
    scores[ddad_rt::score_key(s)] = score_array;
    if (want_maps && n > 0) {
      py::array_t<float> map_array({n, h, w});
      out.map(s) = map_array.mutable_data();
      map_dict[ddad_rt::score_key(s)] = map_array;
    }
  }
  {
    py::gil_scoped_release release;
    engine.score(batch, out);
  }
  py::dict result;
  result["scores"] = scores;
  result["maps"] = want_maps && n > 0 ? py::object(map_dict) : py::object(py::none());
  return result;
}

py::dict info(const Engine& engine) {
  const auto& b = engine.bundle();
  py::dict d;
  for (const auto& [key, value] : engine.info()) d[py::str(key)] = value;
  d["image_size"] = py::make_tuple(b.height, b.width);
  d["k"] = b.k;
  d["backbone"] = b.backbone;
  d["scores"] = b.scores;
  d["default_score"] = b.default_score;
  d["bundle_version"] = b.format_version;
  d["bundle_identity"] = b.identity;
  d["bundle_path"] = b.path;
  d["max_batch"] = engine.options().max_batch;
  d["num_threads"] = engine.options().num_threads;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ddad_rt C++ engine (private: use the ddad_rt package)";

  py::register_exception<ddad_rt::BundleError>(m, "BundleError", PyExc_RuntimeError);
  py::register_exception<ddad_rt::EngineError>(m, "EngineError", PyExc_RuntimeError);
  // A bad option or input from the caller: still a ValueError, but one the CLI can tell
  // apart from a ValueError raised by a bug (exit 2 vs 3).
  py::register_exception<std::invalid_argument>(m, "InputError", PyExc_ValueError);

  m.def("build_info", [] {
    py::dict d;
    for (const auto& [key, value] : ddad_rt::build_info()) {
      if (value == "true" || value == "false") {
        d[py::str(key)] = value == "true";
      } else {
        d[py::str(key)] = value;
      }
    }
    d["bundle_format_version"] = ddad_rt::kBundleFormatVersion;
    return d;
  });

  m.def("usable_cpus", &ddad_rt::usable_cpus,
        "CPUs this process may use: its affinity mask capped by its cgroup CPU quota");
  m.def("cuda_status", [] {
    ddad_rt::CudaStatus s;
    {
      py::gil_scoped_release release;  // dlopen and driver start-up can take a while
      s = ddad_rt::cuda_status();
    }
    py::dict d;
    d["usable"] = s.usable;
    d["cuda_kernels"] = s.cuda_kernels;
    d["tensorrt_backend"] = s.tensorrt_backend;
    d["gpu"] = s.gpu;
    d["compute_capability"] = s.compute_capability;
    d["driver"] = s.driver;
    d["cuda_runtime"] = s.cuda_runtime;
    d["tensorrt_library"] = s.tensorrt_library;
    d["tensorrt_version"] = s.tensorrt_version;
    d["problems"] = s.problems;
    return d;
  });
  m.def("set_tensorrt_library_dirs", &ddad_rt::set_tensorrt_library_dirs, py::arg("dirs"));
  m.def("tensorrt_library_dirs", &ddad_rt::tensorrt_library_dirs);

  py::class_<Engine>(m, "Engine")
      .def(py::init([](const std::string& bundle, const std::string& device,
                       const std::string& precision, std::int64_t max_batch, int num_threads,
                       const std::string& cache_dir) {
             EngineOptions o;
             o.device = device;
             o.precision = precision;
             o.max_batch = max_batch;
             o.num_threads = num_threads;
             o.cache_dir = cache_dir;
             py::gil_scoped_release release;  // loading hashes and compiles: seconds
             return std::make_unique<Engine>(bundle, o);
           }),
           py::arg("bundle"), py::arg("device") = "auto", py::arg("precision") = "default",
           py::arg("max_batch") = 64, py::arg("num_threads") = 0, py::arg("cache_dir") = "")
      .def("score", &score, py::arg("images"), py::arg("maps") = false,
           py::arg("scores") = py::none())
      .def("threshold",
           [](const Engine& e, const std::string& key, double specificity) {
             const auto s = ddad_rt::score_from_key(key);
             if (!s) throw std::invalid_argument("unknown score '" + key + "'");
             return e.threshold(*s, specificity);
           },
           py::arg("score"), py::arg("specificity"))
      .def_property_readonly("info", &info)
      .def("stage_times",
           [](Engine& e, bool reset) {
             py::dict d;
             for (const auto& [stage, t] : e.stage_times(reset)) {
               d[py::str(stage)] = py::dict(py::arg("seconds") = t.seconds, py::arg("images") = t.images);
             }
             return d;
           },
           py::arg("reset") = false)
      .def_property_readonly("manifest_json",
                             [](const Engine& e) { return e.bundle().manifest_json; });
}
