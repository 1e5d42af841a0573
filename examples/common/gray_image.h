/* Reading 8-bit grayscale images for the examples: PNG through libpng (when the example was
 * built with it: -DDDAD_RT_EXAMPLE_HAVE_PNG) and binary PGM (P5) always. C99, no
 * dependency on ddad_rt. */
#ifndef DDAD_RT_EXAMPLES_GRAY_IMAGE_H_
#define DDAD_RT_EXAMPLES_GRAY_IMAGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads `path` (8-bit grayscale PNG, or PGM with maxval 255) into a malloc'ed buffer
 * *pixels of *height x *width bytes, row-major. Returns 0 on success; else fills `error`
 * (error_size bytes) with the reason and returns -1. */
int read_gray_image(const char* path, uint8_t** pixels, int64_t* height, int64_t* width,
                    char* error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* DDAD_RT_EXAMPLES_GRAY_IMAGE_H_ */
