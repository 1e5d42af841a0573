// libFuzzer target: the bundle loader (manifest JSON, file list, hashes, graph shapes). Every
// input must end in a loaded bundle or a BundleError - never a crash, a hang, another
// exception type or unbounded memory.
//
// Input: a 2-byte little-endian manifest length, the manifest, then the bytes of
// ensemble.onnx. "@SHA@" in the manifest is replaced by the graph's sha256, so mutations get
// past the hash check into the graph reader (with a real hash they would almost never do).
//
//   clang++ -fsanitize=fuzzer,address,undefined ... (see .ci/fuzz)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/errors.h"
#include "sha256.h"

namespace fs = std::filesystem;

namespace {

const fs::path& work_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("ddad_rt_fuzz_bundle_" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t manifest_len = data[0] | (static_cast<std::size_t>(data[1]) << 8);
  if (2 + manifest_len > size) return 0;
  std::string manifest(reinterpret_cast<const char*>(data) + 2, manifest_len);
  const std::string graph(reinterpret_cast<const char*>(data) + 2 + manifest_len,
                          size - 2 - manifest_len);
  const std::string sha = ddad_rt::sha256_hex(graph);
  for (std::size_t at = manifest.find("@SHA@"); at != std::string::npos;
       at = manifest.find("@SHA@", at + sha.size())) {
    manifest.replace(at, 5, sha);
  }
  const fs::path& dir = work_dir();
  write(dir / "manifest.json", manifest);
  write(dir / "ensemble.onnx", graph);
  try {
    ddad_rt::load_bundle(dir.string());
  } catch (const ddad_rt::BundleError&) {
    // the expected way to refuse a bad bundle
  }
  return 0;  // any other exception escapes and libFuzzer reports it as a crash
}
