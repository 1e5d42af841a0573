/* The C API from C99: every misuse gives a status and a message, never a crash, and the
 * numbers match between selections and threads.
 *
 *   test_c_api [BUNDLE]
 *
 * Without BUNDLE only the checks that need no engine run. Exit status 0 when all pass. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddad_rt/ddad_rt.h"

static int failures = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                          \
    }                                                                      \
  } while (0)

/* The call returned `expected` and left a message containing `needle`. */
static void expect_status(ddad_rt_status got, ddad_rt_status expected, const char* needle,
                          const char* what) {
  const char* message = ddad_rt_last_error();
  if (got != expected || strstr(message, needle) == NULL) {
    fprintf(stderr, "%s: got %s \"%s\", expected %s with \"%s\"\n", what,
            ddad_rt_status_name(got), message, ddad_rt_status_name(expected), needle);
    ++failures;
  }
}

static void checks_without_a_bundle(void) {
  ddad_rt_engine* engine = (ddad_rt_engine*)1; /* must be reset to NULL on failure */
  ddad_rt_options options;
  ddad_rt_score score;

  CHECK(strlen(ddad_rt_version()) > 0);
  CHECK(ddad_rt_build_info()[0] == '{');
  CHECK(strstr(ddad_rt_build_info(), "\"version\"") != NULL);
  expect_status(ddad_rt_engine_create(NULL, NULL, &engine), DDAD_RT_INVALID_ARGUMENT,
                "bundle_dir is NULL", "null bundle path");
  CHECK(engine == NULL);
  expect_status(ddad_rt_engine_create("/nonexistent/bundle", NULL, &engine),
                DDAD_RT_BUNDLE_ERROR, "bundle not found", "missing bundle");
  CHECK(engine == NULL);
  expect_status(ddad_rt_engine_create("/nonexistent/bundle", NULL, NULL),
                DDAD_RT_INVALID_ARGUMENT, "output pointer", "null output pointer");
  ddad_rt_options_init(&options);
  options.struct_size = 3;
  expect_status(ddad_rt_engine_create("/nonexistent/bundle", &options, &engine),
                DDAD_RT_INVALID_ARGUMENT, "ddad_rt_options_init", "uninitialised options");
  expect_status(ddad_rt_engine_score(NULL, NULL, NULL), DDAD_RT_INVALID_ARGUMENT,
                "engine is NULL", "null engine");
  expect_status(ddad_rt_score_from_name("r_dual", &score), DDAD_RT_OK, "", "score name");
  CHECK(score == DDAD_RT_SCORE_R_DUAL);
  CHECK(strcmp(ddad_rt_score_name(DDAD_RT_SCORE_INTER), "inter") == 0);
  CHECK(ddad_rt_score_name((ddad_rt_score)99) == NULL);
  expect_status(ddad_rt_score_from_name("bogus", &score), DDAD_RT_INVALID_ARGUMENT,
                "unknown score 'bogus'", "unknown score name");
  ddad_rt_engine_destroy(NULL);
}

typedef struct {
  const ddad_rt_engine* engine;
  const ddad_rt_images* images;
  const float* expected; /* the default score, from the main thread */
  int mismatches;
  int failed_status_kept; /* this thread's error did not leak into another's */
} thread_job;

static void* score_in_thread(void* arg) {
  thread_job* job = (thread_job*)arg;
  ddad_rt_engine_info info;
  float* scores = (float*)calloc((size_t)job->images->n, sizeof(float));
  ddad_rt_outputs out;
  int round, i;
  memset(&out, 0, sizeof out);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  ddad_rt_engine_get_info(job->engine, &info);
  out.scores[info.default_score] = scores;
  for (round = 0; round < 5; ++round) {
    if (ddad_rt_engine_score(job->engine, job->images, &out) != DDAD_RT_OK) ++job->mismatches;
    for (i = 0; i < job->images->n; ++i) {
      if (scores[i] != job->expected[i]) ++job->mismatches;
    }
  }
  /* A failure here sets this thread's message only. */
  ddad_rt_engine_score(job->engine, NULL, &out);
  job->failed_status_kept = strstr(ddad_rt_last_error(), "images is NULL") != NULL;
  free(scores);
  return NULL;
}

static void checks_with_a_bundle(const char* bundle) {
  ddad_rt_engine* engine = NULL;
  ddad_rt_options options;
  ddad_rt_engine_info info;
  ddad_rt_images images;
  ddad_rt_outputs all, one;
  const char* value = NULL;
  float* pixels;
  float* scores[DDAD_RT_NUM_SCORES];
  float* maps[DDAD_RT_NUM_SCORES];
  float* default_alone;
  double threshold = 0.0;
  uint8_t* flags;
  int64_t n = 5, hw, i;
  int s, t;
  pthread_t threads[4];
  thread_job jobs[4];

  ddad_rt_options_init(&options);
  options.device = "tpu";
  expect_status(ddad_rt_engine_create(bundle, &options, &engine), DDAD_RT_INVALID_ARGUMENT,
                "device must be", "unknown device");
  options.device = "cpu";
  options.max_batch = 2; /* 5 images: chunks of 2, 2, 1 */
  if (strstr(ddad_rt_build_info(), "\"openvino\": \"\"") != NULL) {
    /* A build without the CPU backend (TensorRT-only) refuses the CPU and says why. */
    expect_status(ddad_rt_engine_create(bundle, &options, &engine), DDAD_RT_ENGINE_ERROR,
                  "has no CPU backend", "cpu in a build without OpenVINO");
    CHECK(engine == NULL);
    return;
  }
  expect_status(ddad_rt_engine_create(bundle, &options, &engine), DDAD_RT_OK, "", "create");
  if (engine == NULL) return;
  CHECK(ddad_rt_last_error()[0] == '\0');

  memset(&info, 0, sizeof info);
  expect_status(ddad_rt_engine_get_info(engine, &info), DDAD_RT_INVALID_ARGUMENT,
                "struct_size", "info without struct_size");
  info.struct_size = sizeof info;
  expect_status(ddad_rt_engine_get_info(engine, &info), DDAD_RT_OK, "", "get_info");
  CHECK(info.height >= 16 && info.width >= 16 && info.k >= 2);
  CHECK(strcmp(info.device, "cpu") == 0);
  CHECK((info.scores & 7u) == 7u); /* rec, intra, inter */
  CHECK(info.scores & (1u << info.default_score));
  expect_status(ddad_rt_engine_info_value(engine, "device_reason", &value), DDAD_RT_OK, "",
                "info_value");
  CHECK(value != NULL && strcmp(value, "requested") == 0);
  expect_status(ddad_rt_engine_info_value(engine, "nope", &value), DDAD_RT_INVALID_ARGUMENT,
                "no info key 'nope'", "unknown info key");

  hw = info.height * info.width;
  pixels = (float*)malloc((size_t)(n * hw) * sizeof(float));
  for (i = 0; i < n * hw; ++i) pixels[i] = (float)((i * 7919) % 1000) / 999.0f;
  images.data = pixels;
  images.dtype = DDAD_RT_FLOAT32;
  images.n = n;
  images.height = info.height;
  images.width = info.width;
  memset(&all, 0, sizeof all);
  for (s = 0; s < DDAD_RT_NUM_SCORES; ++s) {
    scores[s] = (float*)calloc((size_t)n, sizeof(float));
    maps[s] = (float*)calloc((size_t)(n * hw), sizeof(float));
    if (info.scores & (1u << s)) {
      all.scores[s] = scores[s];
      all.maps[s] = maps[s];
    }
  }
  expect_status(ddad_rt_engine_score(engine, &images, &all), DDAD_RT_OK, "", "score all");
  for (s = 0; s < DDAD_RT_NUM_SCORES; ++s) {
    if (!(info.scores & (1u << s))) continue;
    for (i = 0; i < n; ++i) CHECK(isfinite(scores[s][i]));
  }

  /* One score alone equals the same score of the full run, bit for bit. */
  memset(&one, 0, sizeof one);
  default_alone = (float*)calloc((size_t)n, sizeof(float));
  one.scores[info.default_score] = default_alone;
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_OK, "", "score one");
  for (i = 0; i < n; ++i) CHECK(default_alone[i] == scores[info.default_score][i]);

  /* Misuse: a status and a message each. */
  images.height = info.height + 1;
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_INVALID_ARGUMENT,
                "does not match the model's", "wrong shape");
  images.height = info.height;
  images.data = NULL;
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_INVALID_ARGUMENT,
                "images->data is NULL", "null pixels");
  images.data = pixels;
  images.dtype = (ddad_rt_dtype)7;
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_INVALID_ARGUMENT,
                "images->dtype 7", "unknown dtype");
  images.dtype = DDAD_RT_FLOAT32;
  expect_status(ddad_rt_engine_score(engine, &images, NULL), DDAD_RT_INVALID_ARGUMENT,
                "outputs is NULL", "null outputs");
  memset(&one, 0, sizeof one);
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_INVALID_ARGUMENT,
                "no score output is set", "no outputs");
  one.scores[DDAD_RT_SCORE_REC] = scores[DDAD_RT_SCORE_REC];
  one.maps[DDAD_RT_SCORE_INTER] = maps[DDAD_RT_SCORE_INTER];
  expect_status(ddad_rt_engine_score(engine, &images, &one), DDAD_RT_INVALID_ARGUMENT,
                "its score output is null", "map without its score");
  pixels[3] = 1.5f;
  expect_status(ddad_rt_engine_score(engine, &images, &all), DDAD_RT_INVALID_ARGUMENT,
                "outside [0, 1]", "value out of range");
  pixels[3] = (float)((3 * 7919) % 1000) / 999.0f;

  /* Predictions need a calibrated bundle: this test's is not (BUNDLE_ERROR), or is. */
  flags = (uint8_t*)calloc((size_t)n, 1);
  s = (int)ddad_rt_engine_predict(engine, &images, 0.95, info.default_score,
                                  scores[info.default_score], flags, &threshold);
  if (info.calibrated) {
    CHECK(s == DDAD_RT_OK);
  } else {
    expect_status((ddad_rt_status)s, DDAD_RT_BUNDLE_ERROR, "not calibrated", "uncalibrated");
  }
  expect_status(ddad_rt_engine_predict(engine, &images, 0.95, info.default_score, NULL, flags,
                                       NULL),
                DDAD_RT_INVALID_ARGUMENT, "scores is NULL", "predict without scores");

  /* Four threads score at once; each gets the main thread's numbers, and each thread's
   * last error is its own. */
  expect_status(ddad_rt_engine_score(engine, &images, &all), DDAD_RT_OK, "", "score again");
  for (t = 0; t < 4; ++t) {
    jobs[t].engine = engine;
    jobs[t].images = &images;
    jobs[t].expected = scores[info.default_score];
    jobs[t].mismatches = 0;
    jobs[t].failed_status_kept = 0;
    pthread_create(&threads[t], NULL, score_in_thread, &jobs[t]);
  }
  for (t = 0; t < 4; ++t) {
    pthread_join(threads[t], NULL);
    CHECK(jobs[t].mismatches == 0);
    CHECK(jobs[t].failed_status_kept);
  }
  CHECK(ddad_rt_last_error()[0] == '\0');

  for (s = 0; s < DDAD_RT_NUM_SCORES; ++s) {
    free(scores[s]);
    free(maps[s]);
  }
  free(default_alone);
  free(flags);
  free(pixels);
  ddad_rt_engine_destroy(engine);
}

int main(int argc, char** argv) {
  checks_without_a_bundle();
  if (argc > 1) checks_with_a_bundle(argv[1]);
  if (failures) {
    fprintf(stderr, "%d C API check(s) failed\n", failures);
    return 1;
  }
  printf("C API: all checks passed%s\n", argc > 1 ? "" : " (no bundle given: engine checks skipped)");
  return 0;
}
