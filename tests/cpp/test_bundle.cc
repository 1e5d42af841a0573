// Bundle loading: every way a bundle can be broken gives a BundleError that names it.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "ddad_rt/bundle.h"
#include "ddad_rt/errors.h"
#include "onnx_builder.h"
#include "sha256.h"
#include "testing.h"

namespace fs = std::filesystem;
using ddad_rt::BundleError;
using ddad_rt::load_bundle;

namespace {

struct TempBundle {
  fs::path dir;
  std::string graph = onnx_builder::ensemble(3, 64, 64);
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

namespace {

// A bundle whose ensemble graph is `graph` and whose manifest has `edit` applied
// (a replacement of one manifest fragment by another).
void expect_refused(const std::string& graph, const std::string& from, const std::string& to,
                    const std::string& needle) {
  TempBundle t;
  t.graph = graph;
  t.write("ensemble.onnx", graph);
  std::string m = t.manifest();
  if (!from.empty()) m.replace(m.find(from), from.size(), to);
  t.write("manifest.json", m);
  CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, needle);
}

}  // namespace

TEST(manifest_that_disagrees_with_its_graph_is_refused_naming_the_field) {
  namespace ob = onnx_builder;
  const std::string good = ob::ensemble(3, 64, 64);
  expect_refused(good, "\"k\": 3", "\"k\": 4", "field 'k' says 4, but the ensemble graph");
  expect_refused(good, "[64, 64]", "[64, 32]", "field 'image_size' says [64, 32]");
  expect_refused(good, "\"k\": 3", "\"k\": 3, \"channels\": 3", "'channels' is 3");
  expect_refused(good, "\"backbone\": \"ae\"", "\"backbone\": \"ae-u\"", "no output 'ndm_logvar'");
  expect_refused(ob::ensemble(3, 64, 64, true), "", "", "field 'backbone' says \"ae\"");
  // Names, types and ranks the engine relies on.
  expect_refused(ob::model({ob::value_info("images", {-1, 1, 64, 64})},
                           {ob::value_info("udm", {-1, 3, 64, 64})}),
                 "", "", "has no output 'ndm'");
  expect_refused(ob::model({ob::value_info("images", {-1, 1, 64, 64}, 10)},
                           {ob::value_info("udm", {-1, 3, 64, 64}), ob::value_info("ndm", {-1, 3, 64, 64})}),
                 "", "", "must be float32");
  expect_refused(ob::model({ob::value_info("images", {-1, 64, 64})},
                           {ob::value_info("udm", {-1, 3, 64, 64}), ob::value_info("ndm", {-1, 3, 64, 64})}),
                 "", "", "[batch, channels, height, width]");
  // A symbolic dimension where the manifest fixes one is a disagreement too.
  expect_refused(ob::ensemble(-1, 64, 64), "", "", "field 'k' says 3");
}

TEST(graph_with_external_data_is_refused) {
  namespace ob = onnx_builder;
  const std::string graph = ob::model(
      {ob::value_info("images", {-1, 1, 64, 64})},
      {ob::value_info("udm", {-1, 3, 64, 64}), ob::value_info("ndm", {-1, 3, 64, 64})},
      {ob::tensor("w0", false), ob::tensor("w1", true)});
  expect_refused(graph, "", "", "ONNX external data");
}

TEST(malformed_graph_bytes_are_a_bundle_error) {
  const std::string good = onnx_builder::ensemble(3, 64, 64);
  for (std::size_t cut : {std::size_t{1}, std::size_t{7}, good.size() / 2, good.size() - 1}) {
    expect_refused(good.substr(0, cut), "", "", "is not a valid ONNX model");
  }
  expect_refused("fake onnx bytes", "", "", "is not a valid ONNX model");
  expect_refused("", "", "", "it has no graph");
  // Subgraphs nested past the limit: refused, not recursed into until the stack runs out.
  std::string g = onnx_builder::field(2, "leaf");
  for (int i = 0; i < 40; ++i) {
    // graph { node { attribute { g: <g> } } }
    g = onnx_builder::field(1, onnx_builder::field(5, onnx_builder::field(6, g)));
  }
  expect_refused(onnx_builder::field(7, g), "", "", "nested more than 32 deep");
}

TEST(symlinked_bundle_files_are_refused) {
  TempBundle t;
  const fs::path real = t.dir.parent_path() / (t.dir.filename().string() + "_elsewhere.onnx");
  std::ofstream(real, std::ios::binary) << t.graph;
  fs::remove(t.dir / "ensemble.onnx");
  fs::create_symlink(real, t.dir / "ensemble.onnx");
  t.write("manifest.json", t.manifest());
  CHECK_THROWS_WITH(load_bundle(t.path()), BundleError, "is a symbolic link");
  fs::remove(real);
}

TEST(an_fp16_check_counts_only_when_made_on_a_gpu) {
  TempBundle t;
  std::string m = t.manifest();
  m.insert(m.size() - 1, R"(, "precision_checks": {"fp16": {"passed": true, "device": "cpu"},
                                                  "bf16": {"passed": true, "device": "cpu"}})");
  t.write("manifest.json", m);
  CHECK(load_bundle(t.path()).validated_precisions == std::vector<std::string>{"bf16"});
  m = t.manifest();
  m.insert(m.size() - 1, R"(, "precision_checks": {"fp16": {"passed": true, "device": "cuda"}})");
  t.write("manifest.json", m);
  CHECK(load_bundle(t.path()).validated_precisions == std::vector<std::string>{"fp16"});
}
