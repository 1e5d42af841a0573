// The C API (ddad_rt/ddad_rt.h) over the C++ engine: every entry point catches everything,
// turns it into a status and this thread's last-error message; nothing C++ crosses over.
#include "ddad_rt/ddad_rt.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "ddad_rt/engine.h"
#include "ddad_rt/errors.h"

struct ddad_rt_engine {
  std::unique_ptr<ddad_rt::Engine> engine;
  // Strings handed out by get_info and info_value: owned here, valid until destroy.
  std::map<std::string, std::string> info;
};

namespace {

thread_local std::string last_error;

ddad_rt_status fail(ddad_rt_status status, const std::string& message) {
  last_error = message;
  return status;
}

// Runs `body`, mapping what it throws to a status; "" as the last error on success.
template <typename Body>
ddad_rt_status guarded(Body&& body) noexcept {
  try {
    last_error.clear();
    body();
    return DDAD_RT_OK;
  } catch (const ddad_rt::BundleError& e) {
    return fail(DDAD_RT_BUNDLE_ERROR, e.what());
  } catch (const ddad_rt::EngineError& e) {
    return fail(DDAD_RT_ENGINE_ERROR, e.what());
  } catch (const std::invalid_argument& e) {
    return fail(DDAD_RT_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(DDAD_RT_OUT_OF_MEMORY, "out of memory: score smaller batches or lower max_batch");
  } catch (const std::exception& e) {
    return fail(DDAD_RT_INTERNAL_ERROR, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(DDAD_RT_INTERNAL_ERROR, "internal error: an unknown exception");
  }
}

void require(const void* pointer, const char* what) {
  if (pointer == nullptr) throw std::invalid_argument(std::string(what) + " is NULL");
}

const ddad_rt::Engine& engine_of(const ddad_rt_engine* engine) {
  require(engine, "engine");
  return *engine->engine;
}

ddad_rt::ImageBatch image_batch(const ddad_rt_images* images) {
  require(images, "images");
  require(images->data, "images->data");
  ddad_rt::ImageBatch batch;
  switch (images->dtype) {
    case DDAD_RT_UINT8: batch.dtype = ddad_rt::DType::kUInt8; break;
    case DDAD_RT_UINT16: batch.dtype = ddad_rt::DType::kUInt16; break;
    case DDAD_RT_FLOAT32: batch.dtype = ddad_rt::DType::kFloat32; break;
    case DDAD_RT_DTYPE_MAX_ENUM:
    default:
      throw std::invalid_argument("images->dtype " + std::to_string(static_cast<int>(images->dtype)) +
                                  " is not DDAD_RT_UINT8, DDAD_RT_UINT16 or DDAD_RT_FLOAT32");
  }
  batch.data = images->data;
  batch.n = images->n;
  batch.height = images->height;
  batch.width = images->width;
  return batch;
}

ddad_rt::Score score_of(ddad_rt_score score) {
  const int s = static_cast<int>(score);
  if (s < 0 || s >= ddad_rt::kNumScores) {
    throw std::invalid_argument("score " + std::to_string(s) + " is not a ddad_rt_score");
  }
  return static_cast<ddad_rt::Score>(s);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

static_assert(DDAD_RT_NUM_SCORES == ddad_rt::kNumScores, "the C and C++ score lists agree");
static_assert(sizeof(ddad_rt_score) == 4 && sizeof(ddad_rt_dtype) == 4 && sizeof(ddad_rt_status) == 4,
              "the C API's enums are 32 bits wide");
static_assert(static_cast<int>(DDAD_RT_SCORE_R_DUAL) == static_cast<int>(ddad_rt::Score::kRDual) &&
                  static_cast<int>(DDAD_RT_SCORE_R_INTRA) == static_cast<int>(ddad_rt::Score::kRIntra) &&
                  static_cast<int>(DDAD_RT_SCORE_INTER) == static_cast<int>(ddad_rt::Score::kInter),
              "ddad_rt_score mirrors ddad_rt::Score");

extern "C" {

const char* ddad_rt_version(void) {
  static const std::string version = ddad_rt::build_info().at("version");
  return version.c_str();
}

const char* ddad_rt_build_info(void) {
  static const std::string text = [] {
    std::string json = "{";
    for (const auto& [key, value] : ddad_rt::build_info()) {
      json += (json.size() > 1 ? ", " : "") + json_string(key) + ": " + json_string(value);
    }
    return json + "}";
  }();
  return text.c_str();
}

const char* ddad_rt_last_error(void) { return last_error.c_str(); }

const char* ddad_rt_status_name(ddad_rt_status status) {
  switch (status) {
    case DDAD_RT_OK: return "DDAD_RT_OK";
    case DDAD_RT_INVALID_ARGUMENT: return "DDAD_RT_INVALID_ARGUMENT";
    case DDAD_RT_BUNDLE_ERROR: return "DDAD_RT_BUNDLE_ERROR";
    case DDAD_RT_ENGINE_ERROR: return "DDAD_RT_ENGINE_ERROR";
    case DDAD_RT_OUT_OF_MEMORY: return "DDAD_RT_OUT_OF_MEMORY";
    case DDAD_RT_INTERNAL_ERROR: return "DDAD_RT_INTERNAL_ERROR";
    default: break;
  }
  return "DDAD_RT_UNKNOWN_STATUS";
}

const char* ddad_rt_score_name(ddad_rt_score score) {
  const int s = static_cast<int>(score);
  if (s < 0 || s >= ddad_rt::kNumScores) return nullptr;
  return ddad_rt::score_key(static_cast<ddad_rt::Score>(s));
}

ddad_rt_status ddad_rt_score_from_name(const char* name, ddad_rt_score* score) {
  return guarded([&] {
    require(name, "name");
    require(score, "score");
    const auto s = ddad_rt::score_from_key(name);
    if (!s) {
      throw std::invalid_argument(std::string("unknown score '") + name +
                                  "': known are " + ddad_rt::score_keys(ddad_rt::ScoreSet::all()));
    }
    *score = static_cast<ddad_rt_score>(static_cast<int>(*s));
  });
}

void ddad_rt_options_init(ddad_rt_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->device = "auto";
  options->precision = "default";
  options->max_batch = 64;
  options->num_threads = 0;
  options->cache_dir = nullptr;
}

ddad_rt_status ddad_rt_engine_create(const char* bundle_dir, const ddad_rt_options* options,
                                     ddad_rt_engine** engine) {
  if (engine != nullptr) *engine = nullptr;
  return guarded([&] {
    require(bundle_dir, "bundle_dir");
    require(engine, "engine (the output pointer)");
    ddad_rt_options defaults;
    ddad_rt_options_init(&defaults);
    if (options == nullptr) options = &defaults;
    if (options->struct_size != sizeof(ddad_rt_options)) {
      throw std::invalid_argument("options->struct_size is " + std::to_string(options->struct_size) +
                                  ", expected " + std::to_string(sizeof(ddad_rt_options)) +
                                  ": initialise options with ddad_rt_options_init");
    }
    ddad_rt::EngineOptions o;
    o.device = options->device ? options->device : "auto";
    o.precision = options->precision ? options->precision : "default";
    o.max_batch = options->max_batch;
    o.num_threads = options->num_threads;
    o.cache_dir = options->cache_dir ? options->cache_dir : "";
    auto handle = std::make_unique<ddad_rt_engine>();
    handle->engine = std::make_unique<ddad_rt::Engine>(bundle_dir, o);
    handle->info = handle->engine->info();
    const ddad_rt::Bundle& b = handle->engine->bundle();
    handle->info["backbone"] = b.backbone;
    handle->info["bundle_identity"] = b.identity;
    handle->info["bundle_path"] = b.path;
    handle->info["default_score"] = b.default_score;
    *engine = handle.release();
  });
}

void ddad_rt_engine_destroy(ddad_rt_engine* engine) { delete engine; }

ddad_rt_status ddad_rt_engine_get_info(const ddad_rt_engine* engine, ddad_rt_engine_info* info) {
  return guarded([&] {
    const ddad_rt::Engine& e = engine_of(engine);
    require(info, "info");
    if (info->struct_size != sizeof(ddad_rt_engine_info)) {
      throw std::invalid_argument("info->struct_size is " + std::to_string(info->struct_size) +
                                  ", expected " + std::to_string(sizeof(ddad_rt_engine_info)));
    }
    const ddad_rt::Bundle& b = e.bundle();
    info->height = b.height;
    info->width = b.width;
    info->k = b.k;
    info->scores = e.scores().bits();
    info->default_score = static_cast<ddad_rt_score>(static_cast<int>(e.default_score()));
    info->backbone = engine->info.at("backbone").c_str();
    info->backend = engine->info.at("backend").c_str();
    info->device = engine->info.at("device").c_str();
    info->precision = engine->info.at("precision").c_str();
    info->bundle_identity = engine->info.at("bundle_identity").c_str();
    info->calibrated = b.thresholds.empty() ? 0 : 1;
  });
}

ddad_rt_status ddad_rt_engine_info_value(const ddad_rt_engine* engine, const char* key,
                                         const char** value) {
  return guarded([&] {
    engine_of(engine);
    require(key, "key");
    require(value, "value");
    auto it = engine->info.find(key);
    if (it == engine->info.end()) {
      std::string keys;
      for (const auto& [k, v] : engine->info) keys += (keys.empty() ? "" : ", ") + k;
      throw std::invalid_argument(std::string("the engine has no info key '") + key + "'; it has " + keys);
    }
    *value = it->second.c_str();
  });
}

ddad_rt_status ddad_rt_engine_score(const ddad_rt_engine* engine, const ddad_rt_images* images,
                                    const ddad_rt_outputs* outputs) {
  return guarded([&] {
    const ddad_rt::Engine& e = engine_of(engine);
    const ddad_rt::ImageBatch batch = image_batch(images);
    require(outputs, "outputs");
    ddad_rt::ScoreOutputs out;
    for (int s = 0; s < ddad_rt::kNumScores; ++s) {
      out.scores[s] = outputs->scores[s];
      out.maps[s] = outputs->maps[s];
    }
    e.score(batch, out);
  });
}

ddad_rt_status ddad_rt_engine_threshold(const ddad_rt_engine* engine, ddad_rt_score score,
                                        double specificity, double* threshold) {
  return guarded([&] {
    const ddad_rt::Engine& e = engine_of(engine);
    require(threshold, "threshold");
    *threshold = e.threshold(score_of(score), specificity);
  });
}

ddad_rt_status ddad_rt_engine_predict(const ddad_rt_engine* engine, const ddad_rt_images* images,
                                      double specificity, ddad_rt_score score, float* scores,
                                      uint8_t* flags, double* threshold) {
  return guarded([&] {
    const ddad_rt::Engine& e = engine_of(engine);
    const ddad_rt::ImageBatch batch = image_batch(images);
    require(scores, "scores");
    require(flags, "flags");
    const double t = e.predict(batch, specificity, score_of(score), scores, flags);
    if (threshold != nullptr) *threshold = t;
  });
}

}  // extern "C"
