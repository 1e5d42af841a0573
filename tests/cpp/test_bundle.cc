// Bundle loading: every way a bundle can be broken gives a BundleError that names it.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/errors.h"
#include "sha256.h"
#include "testing.h"

namespace fs = std::filesystem;
using ddad_rt::BundleError;
using ddad_rt::load_bundle;

namespace {

struct TempBundle {
  fs::path dir;
  std::string graph = "fake onnx bytes";
  TempBundle() {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("ddad_rt_test_" + std::to_string(rd()));
    fs::create_directories(dir);
    write("ensemble.onnx", graph);
  }
  ~TempBundle() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  std::string manifest(int version = 1, const std::string& file = "ensemble.onnx",
                       const std::string& digest = "") const {
    const std::string d = digest.empty() ? ddad_rt::sha256_hex(graph) : digest;
    return std::string(R"({"format": "ddad_rt.bundle", "format_version": )") +
           std::to_string(version) +
           R"(, "backbone": "ae", "k": 3, "image_size": [64, 64],
              "normalization": {"mean": 0.5, "std": 0.5},
              "scores": ["rec", "intra", "inter"], "default_score": "inter",
              "graphs": {"ensemble": ")" + file + R"("},
              "files": {")" + file + R"(": ")" + d + R"("}})";
  }
  std::string path() const { return dir.string(); }
};

}  // namespace

TEST(bundle_loads_and_verifies) {
  TempBundle t;
  t.write("manifest.json", t.manifest());
  const ddad_rt::Bundle b = load_bundle(t.path());
  CHECK(b.k == 3);
  CHECK(b.height == 64 && b.width == 64);
  CHECK(b.default_score == "inter");
  CHECK(b.scores.size() == 3);
  CHECK(b.graph_bytes.at("ensemble.onnx") == t.graph);
  CHECK(b.identity ==
        ddad_rt::sha256_hex("ensemble.onnx:" + ddad_rt::sha256_hex(t.graph) + "\n"));
}

TEST(bundle_identity_ignores_manifest_edits) {
  TempBundle t;
  t.write("manifest.json", t.manifest());
  const std::string id1 = load_bundle(t.path()).identity;
  std::string m = t.manifest();
  m.insert(m.size() - 1, R"(, "thresholds": {"inter": 0.1})");
  t.write("manifest.json", m);
  CHECK(load_bundle(t.path()).identity == id1);
}

TEST(bundle_errors_name_the_problem) {
  CHECK_THROWS_WITH(load_bundle("/nonexistent/ddad_bundle"), BundleError, "not a directory");
  {
    TempBundle t;  // no manifest
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "manifest.json");
  }
  {
    TempBundle t;
    t.write("manifest.json", "{not json");
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "not valid JSON");
  }
  {
    TempBundle t;
    t.write("manifest.json", t.manifest(2));
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "format_version 2");
  }
  {
    TempBundle t;
    t.write("manifest.json", t.manifest(1, "ensemble.onnx", std::string(64, '0')));
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "sha256 mismatch");
  }
  {
    TempBundle t;
    t.write("manifest.json", t.manifest());
    t.write("ensemble.onnx", "tampered");
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "sha256 mismatch");
  }
  {
    TempBundle t;
    t.write("manifest.json", t.manifest());
    fs::remove(t.dir / "ensemble.onnx");
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "bundle file missing");
  }
  {
    TempBundle t;  // a manifest must not reach outside its bundle
    t.write("manifest.json", t.manifest(1, "../escape.onnx"));
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "not a plain file name");
  }
  {
    TempBundle t;
    std::string m = t.manifest();
    m.replace(m.find("\"k\": 3"), 6, "\"k\": 1");
    t.write("manifest.json", m);
    CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "'k'");
  }
}
