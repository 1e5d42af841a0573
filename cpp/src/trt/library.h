// The TensorRT libraries, opened at run time (libnvinfer and libnvonnxparser of the major
// version the headers say): one wheel runs with and without TensorRT, and says what is missing.
#pragma once

#include <NvInfer.h>
#include <NvOnnxParser.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dynlib.h"

namespace ddad_rt::trt {

namespace nv = nvinfer1;

template <typename T>
using TrtPtr = std::unique_ptr<T>;  // TensorRT 10+ objects are released with delete

// TensorRT keeps one logger per process: every builder and runtime gets this one. Errors are
// kept for the exception that follows a failed call; warnings print with
// DDAD_RT_TENSORRT_VERBOSE=1.
class Logger final : public nv::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      if (severity <= Severity::kERROR) {
        if (errors_.size() == 16) errors_.erase(errors_.begin());  // keep the newest
        errors_.emplace_back(msg);
      }
      if (severity <= Severity::kWARNING && verbose()) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    } catch (...) {
    }
  }

  // Forgets earlier errors: called when an operation starts, so that its exception carries
  // only its own errors.
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    errors_.clear();
  }

  // The errors logged since the last call, joined.
  std::string take_errors() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (const std::string& e : errors_) out += (out.empty() ? "" : " | ") + e;
    errors_.clear();
    return out.empty() ? "no error message from TensorRT (set DDAD_RT_TENSORRT_VERBOSE=1)" : out;
  }

 private:
  static bool verbose() {
    const char* v = std::getenv("DDAD_RT_TENSORRT_VERBOSE");
    return v && *v && std::strcmp(v, "0") != 0;
  }
  std::mutex mutex_;
  std::vector<std::string> errors_;
};

//! The process's one logger (never destroyed: TensorRT may log at exit).
Logger& logger();

//! "10.3.0" from TensorRT's integer version 100300.
std::string version_string(std::int64_t v);

// The entry points behind createInferBuilder, createInferRuntime and createParser (the
// headers' inline factories call these with the headers' version).
struct Api {
  std::vector<std::shared_ptr<DynLib>> libs;
  void* (*create_builder)(void* logger, std::int32_t version) = nullptr;
  void* (*create_runtime)(void* logger, std::int32_t version) = nullptr;
  void* (*create_parser)(void* network, void* logger, int version) = nullptr;
  std::string version;  // of the loaded libnvinfer
  std::string path;

  // The library reads these pointers as ILogger* and INetworkDefinition*: pass exactly those.
  static void* log_ptr() { return static_cast<nv::ILogger*>(&logger()); }
  nv::IBuilder* builder() const {
    return static_cast<nv::IBuilder*>(create_builder(log_ptr(), NV_TENSORRT_VERSION));
  }
  nv::IRuntime* runtime() const {
    return static_cast<nv::IRuntime*>(create_runtime(log_ptr(), NV_TENSORRT_VERSION));
  }
  nvonnxparser::IParser* parser(nv::INetworkDefinition& network) const {
    return static_cast<nvonnxparser::IParser*>(create_parser(
        static_cast<void*>(&network), log_ptr(), NV_ONNX_PARSER_VERSION));
  }
};

//! Loads both libraries (once per process); on failure returns null and says why in
//! `problem`.
std::shared_ptr<Api> load_api(const std::vector<std::string>& dirs, std::string& problem);

}  // namespace ddad_rt::trt
