/* The ddad_rt C API: score medical images for anomalies with a DDAD-ASR bundle, from C99 or
 * any language with a C foreign-function interface (C#, Go, Rust, Java, Python ctypes).
 *
 * - Opaque handles; no C++ types and no exceptions cross this boundary.
 * - Every call that can fail returns a ddad_rt_status; ddad_rt_last_error() then gives the
 *   message (what is wrong and what to do), per thread: each call here sets it, to "" when it
 *   succeeds.
 * - An engine may score from several threads at once (as the C++ engine); create and destroy
 *   it once.
 * - Strings the library returns stay valid until the engine is destroyed (engine strings) or
 *   forever (version, build info, names); the library frees them, never the caller.
 *
 * Minimal use:
 *   ddad_rt_engine* engine = NULL;
 *   if (ddad_rt_engine_create("bundle", NULL, &engine) != DDAD_RT_OK) {
 *     fprintf(stderr, "%s\n", ddad_rt_last_error());
 *     return 1;
 *   }
 *   ddad_rt_images images = {pixels, DDAD_RT_UINT8, n, 64, 64};
 *   ddad_rt_outputs out = {{0}};
 *   out.scores[DDAD_RT_SCORE_R_DUAL] = r_dual;   (n floats; only the scores set are computed)
 *   ddad_rt_status s = ddad_rt_engine_score(engine, &images, &out);
 *   ddad_rt_engine_destroy(engine);
 *
 * The enums end in a *_MAX_ENUM = 0x7FFFFFFF member (as Vulkan's do): they are 32 bits wide
 * with every compiler, and any non-negative value a caller passes is a valid value of the
 * type, refused with DDAD_RT_INVALID_ARGUMENT when it names nothing.
 */
#ifndef DDAD_RT_DDAD_RT_H_
#define DDAD_RT_DDAD_RT_H_

#include <stddef.h>
#include <stdint.h>

#include "ddad_rt/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The C API's version: the major number changes when this header breaks compatibility (it
 * is also the shared library's SONAME version: libddad_rt.so.0). */
#define DDAD_RT_API_VERSION_MAJOR 0
#define DDAD_RT_API_VERSION_MINOR 1

/* The outcome of a call. */
typedef enum ddad_rt_status {
  DDAD_RT_OK = 0,
  DDAD_RT_INVALID_ARGUMENT = 1, /* a null pointer, an option out of range, a wrong image
                                   shape, dtype or value, a score the bundle lacks */
  DDAD_RT_BUNDLE_ERROR = 2,     /* the bundle is missing, malformed, fails its integrity
                                   check, or is not calibrated (predict, threshold) */
  DDAD_RT_ENGINE_ERROR = 3,     /* the device is unavailable or the backend failed */
  DDAD_RT_OUT_OF_MEMORY = 4,
  DDAD_RT_INTERNAL_ERROR = 5,   /* a bug: please report it with the message */
  DDAD_RT_STATUS_MAX_ENUM = 0x7FFFFFFF
} ddad_rt_status;

/* Pixel types: 8-bit (0-255), 16-bit (0-65535 full scale: pass raw 12-bit detector values
 * through the same min-max preprocessing as training first), or float32 in [0, 1]. */
typedef enum ddad_rt_dtype {
  DDAD_RT_UINT8 = 0,
  DDAD_RT_UINT16 = 1,
  DDAD_RT_FLOAT32 = 2,
  DDAD_RT_DTYPE_MAX_ENUM = 0x7FFFFFFF
} ddad_rt_dtype;

/* The anomaly scores of DDAD-ASR; also the index into ddad_rt_outputs' arrays and the bit
 * (1u << score) of a score set. */
typedef enum ddad_rt_score {
  DDAD_RT_SCORE_REC = 0,     /* reconstruction error */
  DDAD_RT_SCORE_INTRA = 1,   /* intra-discrepancy (NDM spread) */
  DDAD_RT_SCORE_INTER = 2,   /* inter-discrepancy (NDM vs UDM) */
  DDAD_RT_SCORE_R_INTRA = 3, /* R_intra refined */
  DDAD_RT_SCORE_R_DUAL = 4,  /* R_dual refined */
  DDAD_RT_SCORE_MAX_ENUM = 0x7FFFFFFF
} ddad_rt_score;
#define DDAD_RT_NUM_SCORES 5

/* An engine: a bundle bound to a backend. */
typedef struct ddad_rt_engine ddad_rt_engine;

/* How to build an engine. Initialise with ddad_rt_options_init, then change fields. */
typedef struct ddad_rt_options {
  size_t struct_size;     /* sizeof(ddad_rt_options), set by ddad_rt_options_init */
  const char* device;     /* "auto" (GPU when usable, else CPU), "cpu" or "cuda" */
  const char* precision;  /* "default", "auto", "fp32", "fp16" (GPU), "bf16" (CPU) */
  int64_t max_batch;      /* larger batches are split inside the engine; 1..4096 */
  int32_t num_threads;    /* CPU threads; 0: one per CPU this process may use */
  const char* cache_dir;  /* TensorRT engine cache folder; NULL or "": the default
                             ($DDAD_RT_CACHE_DIR, else ~/.cache/ddad_rt/tensorrt) */
} ddad_rt_options;

/* A C-contiguous batch of single-channel images [n, height, width] at the model's size. */
typedef struct ddad_rt_images {
  const void* data;
  ddad_rt_dtype dtype;
  int64_t n;
  int64_t height;
  int64_t width;
} ddad_rt_images;

/* Where ddad_rt_engine_score writes, indexed by ddad_rt_score: scores[s] n floats, maps[s]
 * n * height * width floats. The scores computed are those whose pointer is set (at least
 * one, each one the bundle has); their maps are all NULL or all set. Only the networks those
 * scores need run (r_dual needs R_dual, r_intra R_intra; the others only the ensemble). */
typedef struct ddad_rt_outputs {
  float* scores[DDAD_RT_NUM_SCORES];
  float* maps[DDAD_RT_NUM_SCORES];
} ddad_rt_outputs;

/* What an engine is. Strings stay valid until the engine is destroyed. */
typedef struct ddad_rt_engine_info {
  size_t struct_size;        /* set by the caller: sizeof(ddad_rt_engine_info) */
  int64_t height;            /* the model's image size */
  int64_t width;
  int32_t k;                 /* ensemble members per module */
  uint32_t scores;           /* the scores the bundle has: bit (1u << ddad_rt_score) */
  ddad_rt_score default_score;
  const char* backbone;      /* "ae", "ae-u" or "memae" */
  const char* backend;       /* "openvino", "tensorrt" */
  const char* device;        /* "cpu", "cuda" */
  const char* precision;     /* "fp32", "fp16", "bf16" */
  const char* bundle_identity;
  int32_t calibrated;        /* 1 when the bundle has operating points (predict works) */
} ddad_rt_engine_info;

/* "0.1.0": the library's version. */
DDAD_RT_API const char* ddad_rt_version(void);
/* What this build contains, as a JSON object of strings: "version", "openvino" (its version,
 * "" without), "cuda_kernels" and "tensorrt" ("true"/"false"), "cuda_architectures", ... */
DDAD_RT_API const char* ddad_rt_build_info(void);
/* The message of this thread's last call: "" when it succeeded. */
DDAD_RT_API const char* ddad_rt_last_error(void);
/* "DDAD_RT_OK", "DDAD_RT_BUNDLE_ERROR", ... */
DDAD_RT_API const char* ddad_rt_status_name(ddad_rt_status status);
/* "rec", "intra", "inter", "r_intra", "r_dual"; NULL for a value out of range. */
DDAD_RT_API const char* ddad_rt_score_name(ddad_rt_score score);
/* The score named `name`; DDAD_RT_INVALID_ARGUMENT for an unknown name. */
DDAD_RT_API ddad_rt_status ddad_rt_score_from_name(const char* name, ddad_rt_score* score);

/* Fills `options` with the defaults: device "auto", precision "default", max_batch 64,
 * num_threads 0, cache_dir NULL. */
DDAD_RT_API void ddad_rt_options_init(ddad_rt_options* options);

/* Loads the bundle folder `bundle_dir` (integrity-checked) and builds its engine; `options`
 * NULL means the defaults. On success *engine is the new engine; on failure it is NULL. */
DDAD_RT_API ddad_rt_status ddad_rt_engine_create(const char* bundle_dir,
                                                 const ddad_rt_options* options,
                                                 ddad_rt_engine** engine);
/* Frees an engine (NULL is ignored). No call may be running on it. */
DDAD_RT_API void ddad_rt_engine_destroy(ddad_rt_engine* engine);

/* Fills `info` (set info->struct_size first). */
DDAD_RT_API ddad_rt_status ddad_rt_engine_get_info(const ddad_rt_engine* engine,
                                                   ddad_rt_engine_info* info);
/* Any key of the engine's info (e.g. "device_reason", "precision_reason", "threads", "gpu",
 * "engine_cache"): *value is valid until the engine is destroyed. DDAD_RT_INVALID_ARGUMENT
 * for a key it does not have. */
DDAD_RT_API ddad_rt_status ddad_rt_engine_info_value(const ddad_rt_engine* engine,
                                                     const char* key, const char** value);

/* Scores `images` into `outputs` (see ddad_rt_outputs). Thread-safe. */
DDAD_RT_API ddad_rt_status ddad_rt_engine_score(const ddad_rt_engine* engine,
                                                const ddad_rt_images* images,
                                                const ddad_rt_outputs* outputs);

/* The bundle's calibrated threshold for `score` at `specificity` (e.g. 0.95): an image is
 * flagged when its score is above it. DDAD_RT_BUNDLE_ERROR when the bundle is not
 * calibrated (`ddad-rt calibrate`), DDAD_RT_INVALID_ARGUMENT when not at that specificity. */
DDAD_RT_API ddad_rt_status ddad_rt_engine_threshold(const ddad_rt_engine* engine,
                                                    ddad_rt_score score, double specificity,
                                                    double* threshold);

/* Scores `images` for `score` into scores [n] and flags [n] (1: above the threshold at
 * `specificity`, else 0); *threshold (if not NULL) receives the threshold used. */
DDAD_RT_API ddad_rt_status ddad_rt_engine_predict(const ddad_rt_engine* engine,
                                                  const ddad_rt_images* images,
                                                  double specificity, ddad_rt_score score,
                                                  float* scores, uint8_t* flags,
                                                  double* threshold);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DDAD_RT_DDAD_RT_H_ */
