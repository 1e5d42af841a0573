#include "trt/library.h"

#include <filesystem>

#include "trt/tensorrt_backend.h"

namespace ddad_rt::trt {
namespace {

namespace fs = std::filesystem;

std::mutex api_mutex;
std::shared_ptr<Api> loaded_api;

}  // namespace

Logger& logger() {
  static Logger* instance = new Logger();  // never destroyed: TensorRT may log at exit
  return *instance;
}

std::string version_string(std::int64_t v) {
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." +
         std::to_string(v % 100);
}

std::shared_ptr<Api> load_api(const std::vector<std::string>& dirs, std::string& problem) {
  std::lock_guard<std::mutex> lock(api_mutex);
  if (loaded_api) return loaded_api;
  const std::string major = std::to_string(NV_TENSORRT_MAJOR);
  const std::string infer_name = "libnvinfer.so." + major;
  const std::string parser_name = "libnvonnxparser.so." + major;
  auto api = std::make_shared<Api>();
  DynLibSearch infer = open_library(infer_name, dirs, /*global=*/true);
  if (!infer.lib) {
    problem = "the TensorRT " + major + " runtime is not installed: " + infer.explain(infer_name) +
              ". Install TensorRT " + major + " (pip install tensorrt-cu12 or tensorrt-cu13, the "
              "SDK tarball, or JetPack), or point DDAD_RT_TENSORRT_LIB_DIR at its lib folder";
    return nullptr;
  }
  api->libs.push_back(infer.lib);
  api->path = infer.lib->path();
  // libnvinfer opens its builder resources by name at build time; preload them from the same
  // folder so that a TensorRT outside the system library path builds too.
  const fs::path folder = fs::path(infer.lib->path()).parent_path();
  std::error_code ec;
  if (!folder.empty() && fs::is_directory(folder, ec)) {
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("libnvinfer_builder_resource", 0) == 0) {
        if (auto r = open_library(name, {folder.string()}, true).lib) api->libs.push_back(r);
      }
    }
  }
  DynLibSearch parser = open_library(parser_name, folder.empty()
                                                      ? dirs
                                                      : std::vector<std::string>{folder.string()},
                                     true);
  if (!parser.lib && !folder.empty()) parser = open_library(parser_name, dirs, true);
  if (!parser.lib) {
    problem = "TensorRT's ONNX parser is not installed: " + parser.explain(parser_name) +
              ". It ships with TensorRT (pip's tensorrt-cu* wheels, the SDK tarball) or as "
              "libnvonnxparsers" + major + " in JetPack and NVIDIA's apt repository";
    return nullptr;
  }
  api->libs.push_back(parser.lib);
  const auto sym = [&](const std::shared_ptr<DynLib>& lib, const char* name) {
    void* p = lib->symbol(name);
    if (!p) problem = lib->path() + " has no symbol " + name + ": not a TensorRT " + major + " library";
    return p;
  };
  auto lib_version = reinterpret_cast<std::int32_t (*)()>(sym(infer.lib, "getInferLibVersion"));
  api->create_builder = reinterpret_cast<void* (*)(void*, std::int32_t)>(
      sym(infer.lib, "createInferBuilder_INTERNAL"));
  api->create_runtime = reinterpret_cast<void* (*)(void*, std::int32_t)>(
      sym(infer.lib, "createInferRuntime_INTERNAL"));
  api->create_parser = reinterpret_cast<void* (*)(void*, void*, int)>(
      sym(parser.lib, "createNvOnnxParser_INTERNAL"));
  if (!lib_version || !api->create_builder || !api->create_runtime || !api->create_parser) {
    return nullptr;
  }
  const std::int32_t v = lib_version();
  api->version = version_string(v);
  // TensorRT promises that a newer minor release runs code built against older headers, not
  // the reverse: the library must be at least the headers' version, of the same major.
  if (v / 10000 != NV_TENSORRT_MAJOR || v < NV_TENSORRT_VERSION) {
    problem = api->path + " is TensorRT " + api->version + ", but this build was compiled "
              "against TensorRT " + headers_version() + " headers: install TensorRT " +
              headers_version() + " or a newer " + major + ".x" +
              ", or rebuild ddad_rt against the installed one";
    return nullptr;
  }
  loaded_api = api;
  return api;
}

std::string headers_version() {
  return std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
         std::to_string(NV_TENSORRT_PATCH);
}

LibraryProbe probe_libraries(const std::vector<std::string>& dirs) {
  LibraryProbe p;
  std::string problem;
  if (auto api = load_api(dirs, problem)) {
    p.ok = true;
    p.path = api->path;
    p.version = api->version;
  } else {
    p.problem = problem;
  }
  return p;
}

}  // namespace ddad_rt::trt
