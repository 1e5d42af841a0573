/* Scores 8-bit grayscale images with a ddad_rt bundle through the C API, in batches, and
 * prints one line per image: its path and the bundle's default score (9 significant digits).
 *
 *   score_images BUNDLE IMAGE...
 *
 * Images must already be at the model's size (ddad-rt info BUNDLE shows it): preprocess
 * them as for training (ddad_rt.to_model_input in Python) and save as PNG or PGM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddad_rt/ddad_rt.h"
#include "gray_image.h"

enum { kBatch = 16 };

static int report(ddad_rt_status status, const char* what) {
  fprintf(stderr, "%s: %s: %s\n", what, ddad_rt_status_name(status), ddad_rt_last_error());
  return 1;
}

/* Reads paths[0..count) into one [count, height, width] buffer, checking each image's size. */
static int read_batch(char** paths, int count, int64_t height, int64_t width, uint8_t* batch) {
  char error[512];
  int i;
  for (i = 0; i < count; ++i) {
    uint8_t* pixels = NULL;
    int64_t h = 0, w = 0;
    if (read_gray_image(paths[i], &pixels, &h, &w, error, sizeof error) != 0) {
      fprintf(stderr, "%s\n", error);
      return 1;
    }
    if (h != height || w != width) {
      fprintf(stderr, "%s is %lldx%lld; the model takes %lldx%lld images: resize it first\n",
              paths[i], (long long)h, (long long)w, (long long)height, (long long)width);
      free(pixels);
      return 1;
    }
    memcpy(batch + (size_t)i * (size_t)(height * width), pixels, (size_t)(height * width));
    free(pixels);
  }
  return 0;
}

int main(int argc, char** argv) {
  ddad_rt_engine* engine = NULL;
  ddad_rt_engine_info info;
  ddad_rt_status status;
  uint8_t* batch;
  float scores[kBatch];
  int first, count, i, failed = 0;

  if (argc < 3) {
    fprintf(stderr, "usage: %s BUNDLE IMAGE...\n", argv[0]);
    return 2;
  }
  status = ddad_rt_engine_create(argv[1], NULL, &engine);  /* NULL: default options */
  if (status != DDAD_RT_OK) return report(status, "loading the bundle");
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  ddad_rt_engine_get_info(engine, &info);
  fprintf(stderr, "%s on %s (%s), %s score, %lldx%lld images\n", info.backend, info.device,
          info.precision, ddad_rt_score_name(info.default_score), (long long)info.height,
          (long long)info.width);

  batch = (uint8_t*)malloc((size_t)kBatch * (size_t)(info.height * info.width));
  for (first = 2; first < argc && !failed; first += count) {
    ddad_rt_images images;
    ddad_rt_outputs out;
    count = argc - first < kBatch ? argc - first : kBatch;
    if (read_batch(argv + first, count, info.height, info.width, batch) != 0) {
      failed = 1;
      break;
    }
    images.data = batch;
    images.dtype = DDAD_RT_UINT8;
    images.n = count;
    images.height = info.height;
    images.width = info.width;
    memset(&out, 0, sizeof out);
    out.scores[info.default_score] = scores;  /* only this score, and its networks, run */
    status = ddad_rt_engine_score(engine, &images, &out);
    if (status != DDAD_RT_OK) {
      failed = report(status, "scoring");
      break;
    }
    for (i = 0; i < count; ++i) printf("%s %.9g\n", argv[first + i], scores[i]);
  }
  free(batch);
  ddad_rt_engine_destroy(engine);
  return failed;
}
