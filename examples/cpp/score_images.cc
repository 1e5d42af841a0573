// Scores 8-bit grayscale images with a ddad_rt bundle through the C++ API, in batches, and
// prints one line per image: its path and the bundle's default score (9 significant digits).
//
//   score_images BUNDLE IMAGE...
//
// Images must already be at the model's size (ddad-rt info BUNDLE shows it).
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddad_rt/engine.h"
#include "ddad_rt/errors.h"
#include "gray_image.h"

namespace {

constexpr int kBatch = 16;

// One image, checked against the model's size, appended to `batch`.
void append_image(const char* path, std::int64_t height, std::int64_t width,
                  std::vector<std::uint8_t>& batch) {
  char error[512];
  std::uint8_t* pixels = nullptr;
  std::int64_t h = 0, w = 0;
  if (read_gray_image(path, &pixels, &h, &w, error, sizeof error) != 0) {
    throw std::runtime_error(error);
  }
  std::vector<std::uint8_t> image(pixels, pixels + h * w);
  std::free(pixels);
  if (h != height || w != width) {
    throw std::runtime_error(std::string(path) + " is " + std::to_string(h) + "x" +
                             std::to_string(w) + "; the model takes " + std::to_string(height) +
                             "x" + std::to_string(width) + " images: resize it first");
  }
  batch.insert(batch.end(), image.begin(), image.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s BUNDLE IMAGE...\n", argv[0]);
    return 2;
  }
  try {
    const ddad_rt::Engine engine(argv[1], ddad_rt::EngineOptions{});
    const ddad_rt::Bundle& bundle = engine.bundle();
    const ddad_rt::Score key = engine.default_score();
    const auto info = engine.info();
    std::fprintf(stderr, "%s on %s (%s), %s score, %lldx%lld images\n", info.at("backend").c_str(),
                 info.at("device").c_str(), info.at("precision").c_str(), ddad_rt::score_key(key),
                 static_cast<long long>(bundle.height), static_cast<long long>(bundle.width));
    for (int first = 2; first < argc; first += kBatch) {
      const int count = std::min(kBatch, argc - first);
      std::vector<std::uint8_t> pixels;
      for (int i = 0; i < count; ++i) append_image(argv[first + i], bundle.height, bundle.width, pixels);
      ddad_rt::ImageBatch images;
      images.data = pixels.data();
      images.dtype = ddad_rt::DType::kUInt8;
      images.n = count;
      images.height = bundle.height;
      images.width = bundle.width;
      std::vector<float> scores(count);
      ddad_rt::ScoreOutputs out;
      out.score(key) = scores.data();  // only this score, and its networks, run
      engine.score(images, out);
      for (int i = 0; i < count; ++i) std::printf("%s %.9g\n", argv[first + i], scores[i]);
    }
  } catch (const ddad_rt::BundleError& e) {
    std::fprintf(stderr, "bundle: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {  // EngineError, std::invalid_argument, I/O
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
