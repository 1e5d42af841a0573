/* See gray_image.h. */
#include "gray_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DDAD_RT_EXAMPLE_HAVE_PNG
#include <png.h>
#endif

static int fail(char* error, size_t size, const char* path, const char* why) {
  snprintf(error, size, "%s: %s", path, why);
  return -1;
}

/* Binary PGM: "P5", width, height, maxval (255) separated by whitespace (and # comments). */
static int read_pgm(FILE* f, const char* path, uint8_t** pixels, int64_t* height,
                    int64_t* width, char* error, size_t size) {
  long values[3];
  int i, c;
  size_t bytes;
  for (i = 0; i < 3; ++i) {
    do {
      c = fgetc(f);
      if (c == '#') {
        while (c != '\n' && c != EOF) c = fgetc(f);
      }
    } while (c == ' ' || c == '\t' || c == '\r' || c == '\n');
    if (c == EOF || ungetc(c, f) == EOF || fscanf(f, "%ld", &values[i]) != 1) {
      return fail(error, size, path, "truncated PGM header");
    }
  }
  fgetc(f); /* the one whitespace byte before the pixels */
  if (values[0] <= 0 || values[1] <= 0 || values[0] > 65536 || values[1] > 65536) {
    return fail(error, size, path, "PGM size out of range");
  }
  if (values[2] != 255) return fail(error, size, path, "only 8-bit PGM (maxval 255) is read");
  *width = values[0];
  *height = values[1];
  bytes = (size_t)(*width * *height);
  *pixels = (uint8_t*)malloc(bytes);
  if (*pixels == NULL) return fail(error, size, path, "out of memory");
  if (fread(*pixels, 1, bytes, f) != bytes) {
    free(*pixels);
    *pixels = NULL;
    return fail(error, size, path, "truncated PGM pixels");
  }
  return 0;
}

#ifdef DDAD_RT_EXAMPLE_HAVE_PNG
static int read_png(FILE* f, const char* path, uint8_t** pixels, int64_t* height,
                    int64_t* width, char* error, size_t size) {
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio(&image, f)) return fail(error, size, path, image.message);
  if (image.format != PNG_FORMAT_GRAY) {
    png_image_free(&image);
    return fail(error, size, path, "not an 8-bit grayscale PNG (convert it to 8-bit gray first)");
  }
  *width = image.width;
  *height = image.height;
  *pixels = (uint8_t*)malloc(PNG_IMAGE_SIZE(image));
  if (*pixels == NULL) {
    png_image_free(&image);
    return fail(error, size, path, "out of memory");
  }
  if (!png_image_finish_read(&image, NULL, *pixels, 0, NULL)) {
    free(*pixels);
    *pixels = NULL;
    return fail(error, size, path, image.message);
  }
  return 0;
}
#endif

int read_gray_image(const char* path, uint8_t** pixels, int64_t* height, int64_t* width,
                    char* error, size_t error_size) {
  unsigned char magic[8] = {0};
  int status;
  FILE* f = fopen(path, "rb");
  *pixels = NULL;
  if (f == NULL) return fail(error, error_size, path, "cannot open");
  if (fread(magic, 1, 8, f) < 2) {
    fclose(f);
    return fail(error, error_size, path, "too short to be an image");
  }
  rewind(f);
  if (magic[0] == 'P' && magic[1] == '5') {
    fgetc(f);
    fgetc(f);
    status = read_pgm(f, path, pixels, height, width, error, error_size);
  } else if (magic[0] == 0x89 && magic[1] == 'P' && magic[2] == 'N' && magic[3] == 'G') {
#ifdef DDAD_RT_EXAMPLE_HAVE_PNG
    status = read_png(f, path, pixels, height, width, error, error_size);
#else
    status = fail(error, error_size, path,
                  "a PNG, but this example was built without libpng: install libpng-dev and "
                  "rebuild, or convert the image to PGM");
#endif
  } else {
    status = fail(error, error_size, path, "neither a PNG nor a binary PGM (P5)");
  }
  fclose(f);
  return status;
}
