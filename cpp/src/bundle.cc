#include "ddad_rt/bundle.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "bundle_graphs.h"
#include "ddad_rt/errors.h"
#include "json.h"
#include "sha256.h"

namespace ddad_rt {
namespace {

namespace fs = std::filesystem;

const std::set<std::string>& known_scores() {
  static const std::set<std::string> k{"rec", "intra", "inter", "r_intra", "r_dual"};
  return k;
}

const std::set<std::string>& known_precisions() {
  static const std::set<std::string> p{"bf16", "fp16"};
  return p;
}

const std::set<std::string>& known_backbones() {
  static const std::set<std::string> b{"ae", "ae-u", "memae"};
  return b;
}

std::string read_file(const fs::path& path, const std::string& what) {
  std::error_code ec;
  if (fs::is_symlink(path, ec)) {
    // A link could point anywhere (another bundle's graph, a device, /proc): what is hashed
    // and loaded must be a file of the bundle itself.
    throw BundleError(path.string() + " (" + what + ") is a symbolic link; a bundle's files "
                      "must be regular files inside it: copy the bundle with its files "
                      "(cp -rL, shutil.copytree) rather than linking them");
  }
  if (!fs::is_regular_file(path, ec)) {
    throw BundleError("bundle file missing: " + path.string() + " (" + what +
                      "); a bundle is the whole directory written by `ddad-rt train` or "
                      "ddad_train.export: copy all of it, or re-export");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BundleError("cannot open " + path.string() + ": check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) throw BundleError("error reading " + path.string());
  return std::move(ss).str();
}

[[noreturn]] void bad_field(const fs::path& manifest, const std::string& field,
                            const std::string& expected) {
  throw BundleError("manifest " + manifest.string() + ": field '" + field + "' " + expected +
                    "; the manifest was edited or written by another tool: re-export the bundle");
}

const json::Value& require(const json::Value& obj, const std::string& key, const fs::path& m) {
  const json::Value* v = obj.find(key);
  if (v == nullptr) bad_field(m, key, "is missing");
  return *v;
}

std::string require_string(const json::Value& obj, const std::string& key, const fs::path& m) {
  const json::Value& v = require(obj, key, m);
  if (!v.is_string()) bad_field(m, key, "must be a string");
  return v.as_string();
}

long long require_int(const json::Value& obj, const std::string& key, const fs::path& m,
                      long long lo, long long hi) {
  const json::Value& v = require(obj, key, m);
  if (!v.is_number()) bad_field(m, key, "must be an integer");
  const double d = v.as_number();
  if (d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    bad_field(m, key, "must be an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], got " + std::to_string(d));
  }
  return static_cast<long long>(d);
}

// A bundle may come from an untrusted source: its file names must stay inside the bundle.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\\') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// format, format_version, backbone, k, channels, image_size, normalization.
void read_model_fields(const json::Value& m, const fs::path& manifest_path, Bundle& b) {
  const std::string format = require_string(m, "format", manifest_path);
  if (format != "ddad_rt.bundle") {
    bad_field(manifest_path, "format", "must be \"ddad_rt.bundle\", got \"" + format + "\"");
  }
  b.format_version =
      static_cast<int>(require_int(m, "format_version", manifest_path, 0, 1000000));
  if (b.format_version != kBundleFormatVersion) {
    throw BundleError("bundle " + b.path + " has format_version " +
                      std::to_string(b.format_version) + ", but this ddad_rt reads version " +
                      std::to_string(kBundleFormatVersion) +
                      ": install the ddad_rt release that wrote it, or re-export the model "
                      "with this release's ddad_train");
  }

  b.backbone = require_string(m, "backbone", manifest_path);
  if (!known_backbones().count(b.backbone)) {
    bad_field(manifest_path, "backbone", "must be one of ae, ae-u, memae; got \"" + b.backbone + "\"");
  }
  b.k = static_cast<int>(require_int(m, "k", manifest_path, 2, 64));
  if (m.find("channels") != nullptr) {
    b.channels = static_cast<int>(require_int(m, "channels", manifest_path, 1, 64));
    if (b.channels != 1) {
      bad_field(manifest_path, "channels", "is " + std::to_string(b.channels) +
                                               ", but this engine scores single-channel images only "
                                               "(colour images are converted to luma first)");
    }
  }

  const json::Value& size = require(m, "image_size", manifest_path);
  if (!size.is_array() || size.as_array().size() != 2 || !size.as_array()[0].is_number() ||
      !size.as_array()[1].is_number()) {
    bad_field(manifest_path, "image_size", "must be [height, width]");
  }
  const double h = size.as_array()[0].as_number();
  const double w = size.as_array()[1].as_number();
  if (h != std::floor(h) || w != std::floor(w) || h < 16 || w < 16 || h > 4096 || w > 4096) {
    bad_field(manifest_path, "image_size", "must hold two integers in [16, 4096]");
  }
  b.height = static_cast<std::int64_t>(h);
  b.width = static_cast<std::int64_t>(w);

  const json::Value& norm = require(m, "normalization", manifest_path);
  if (!norm.is_object()) bad_field(manifest_path, "normalization", "must be an object");
  const json::Value& mean = require(norm, "mean", manifest_path);
  const json::Value& stdv = require(norm, "std", manifest_path);
  if (!mean.is_number() || !stdv.is_number() || !(stdv.as_number() > 0.0)) {
    bad_field(manifest_path, "normalization", "must hold a number 'mean' and a positive 'std'");
  }
  b.norm_mean = static_cast<float>(mean.as_number());
  b.norm_std = static_cast<float>(stdv.as_number());
}

// scores, default_score, files, graphs, and that scores and graphs agree.
void read_scores_and_graphs(const json::Value& m, const fs::path& manifest_path, Bundle& b) {
  const json::Value& scores = require(m, "scores", manifest_path);
  if (!scores.is_array() || scores.as_array().empty()) {
    bad_field(manifest_path, "scores", "must be a non-empty list of score names");
  }
  for (const auto& s : scores.as_array()) {
    if (!s.is_string() || !known_scores().count(s.as_string())) {
      bad_field(manifest_path, "scores", "holds an unknown score (known: rec, intra, inter, r_intra, r_dual)");
    }
    b.scores.push_back(s.as_string());
  }
  b.default_score = require_string(m, "default_score", manifest_path);
  if (std::find(b.scores.begin(), b.scores.end(), b.default_score) == b.scores.end()) {
    bad_field(manifest_path, "default_score", "must be one of the bundle's scores");
  }

  const json::Value& files = require(m, "files", manifest_path);
  if (!files.is_object()) bad_field(manifest_path, "files", "must map file names to sha256");
  for (const auto& [name, digest] : files.as_object()) {
    if (!is_plain_file_name(name) || name == "manifest.json") {
      bad_field(manifest_path, "files", "lists \"" + name + "\", which is not a plain file name in the bundle");
    }
    if (!digest.is_string() || digest.as_string().size() != 64) {
      bad_field(manifest_path, "files", "must give a 64-hex-digit sha256 for \"" + name + "\"");
    }
    b.files[name] = digest.as_string();
  }

  const json::Value& graphs = require(m, "graphs", manifest_path);
  if (!graphs.is_object() || graphs.find("ensemble") == nullptr) {
    bad_field(manifest_path, "graphs", "must be an object naming at least the \"ensemble\" graph");
  }
  for (const auto& [role, file] : graphs.as_object()) {
    if (role != "ensemble" && role != "refine_dual" && role != "refine_intra") {
      bad_field(manifest_path, "graphs", "has an unknown role \"" + role +
                                             "\" (known: ensemble, refine_dual, refine_intra)");
    }
    if (!file.is_string() || !b.files.count(file.as_string())) {
      bad_field(manifest_path, "graphs", "names a graph file for \"" + role + "\" that 'files' does not list");
    }
    b.graphs[role] = file.as_string();
  }
  // Scores and graphs must agree: every score is computed, none is promised without a graph.
  for (const char* base : {"rec", "intra", "inter"}) {
    if (std::find(b.scores.begin(), b.scores.end(), base) == b.scores.end()) {
      bad_field(manifest_path, "scores", std::string("must include \"") + base +
                                             "\" (every bundle's ensemble computes it)");
    }
  }
  for (const auto& [score, role] : {std::pair<std::string, std::string>{"r_dual", "refine_dual"},
                                    {"r_intra", "refine_intra"}}) {
    const bool listed = std::find(b.scores.begin(), b.scores.end(), score) != b.scores.end();
    if (listed != b.has_graph(role)) {
      bad_field(manifest_path, "scores",
                listed ? "lists \"" + score + "\" but 'graphs' has no \"" + role + "\""
                       : "omits \"" + score + "\" although 'graphs' has \"" + role + "\"");
    }
  }
}

void read_precision_checks(const json::Value& m, const fs::path& manifest_path, Bundle& b) {
  if (const json::Value* checks = m.find("precision_checks")) {
    if (!checks->is_object()) bad_field(manifest_path, "precision_checks", "must be an object");
    for (const auto& [precision, check] : checks->as_object()) {
      if (!known_precisions().count(precision)) {
        bad_field(manifest_path, "precision_checks", "names an unknown precision \"" + precision +
                                                         "\" (known: bf16, fp16)");
      }
      const json::Value* passed = check.is_object() ? check.find("passed") : nullptr;
      if (passed == nullptr || passed->type() != json::Value::Type::kBool) {
        bad_field(manifest_path, "precision_checks",
                  "must map each precision to an object with a boolean 'passed'");
      }
      // fp16 runs on a GPU only: a check counts when it was made there.
      const json::Value* device = check.find("device");
      const bool on_gpu = device != nullptr && device->is_string() && device->as_string() == "cuda";
      if (passed->as_bool() && (precision != "fp16" || on_gpu)) {
        b.validated_precisions.push_back(precision);
      }
      const json::Value* impl = check.find("refine_impl");
      b.checked_refine_impl[precision] =
          impl != nullptr && impl->is_string() ? impl->as_string() : "openvino";
    }
  }
}

// operating_points.thresholds: {"0.95": {"inter": 0.41, ...}, ...} (ddad-rt calibrate).
void read_operating_points(const json::Value& m, const fs::path& manifest_path, Bundle& b) {
  const json::Value* op = m.find("operating_points");
  if (op == nullptr || op->type() == json::Value::Type::kNull) return;
  const json::Value* thresholds = op->is_object() ? op->find("thresholds") : nullptr;
  if (thresholds == nullptr || !thresholds->is_object()) {
    bad_field(manifest_path, "operating_points", "must be an object with 'thresholds'");
  }
  for (const auto& [specificity, per_score] : thresholds->as_object()) {
    if (!per_score.is_object()) {
      bad_field(manifest_path, "operating_points", "must map each specificity to {score: threshold}");
    }
    for (const auto& [key, value] : per_score.as_object()) {
      if (!value.is_number() || !known_scores().count(key)) {
        bad_field(manifest_path, "operating_points", "must map score names to numbers");
      }
      b.thresholds[specificity][key] = value.as_number();
    }
  }
}

// Verifies every listed file; keeps the graphs' bytes so the backend parses exactly what was
// hashed; sets the identity (a hash over the graphs' hashes).
void verify_files(const fs::path& root, Bundle& b) {
  std::string identity_text;
  for (const auto& [name, expected] : b.files) {
    std::string bytes = read_file(root / name, "listed in the manifest");
    const std::string actual = sha256_hex(bytes);
    if (actual != expected) {
      throw BundleError("sha256 mismatch for " + (root / name).string() + ": the manifest says " +
                        expected + ", the file has " + actual +
                        "; the file was modified, truncated or swapped: re-copy the bundle "
                        "from its source or re-export it");
    }
    bool is_graph = false;
    for (const auto& [role, file] : b.graphs) is_graph = is_graph || file == name;
    if (is_graph) {
      identity_text += name + ":" + actual + "\n";
      b.graph_bytes[name] = std::move(bytes);
    }
  }
  b.identity = sha256_hex(identity_text);
}

}  // namespace

std::string specificity_key(double specificity) {
  // Python's f"{s:.2f}" if round(s, 2) == s else f"{s:g}" (ddad_rt.calibrate).
  char two[64];
  std::snprintf(two, sizeof two, "%.2f", specificity);
  if (std::strtod(two, nullptr) == specificity) return two;
  char general[64];
  std::snprintf(general, sizeof general, "%g", specificity);
  return general;
}

Bundle load_bundle(const std::string& dir) {
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw BundleError("bundle not found: " + dir +
                      " is not a directory; pass the bundle directory (the one holding "
                      "manifest.json), e.g. the `bundle/` folder written by `ddad-rt demo`");
  }
  const fs::path manifest_path = root / "manifest.json";
  Bundle b;
  b.path = dir;
  b.manifest_json = read_file(manifest_path, "the bundle's manifest");

  json::Value m;
  try {
    m = json::parse(b.manifest_json);
  } catch (const json::ParseError& e) {
    throw BundleError("manifest " + manifest_path.string() + " is not valid JSON (" + e.what() +
                      "); the file is damaged: re-export or re-copy the bundle");
  }
  if (!m.is_object()) bad_field(manifest_path, "(top level)", "must be a JSON object");
  read_model_fields(m, manifest_path, b);
  read_scores_and_graphs(m, manifest_path, b);
  read_precision_checks(m, manifest_path, b);
  read_operating_points(m, manifest_path, b);
  verify_files(root, b);
  check_graphs_against_manifest(b, manifest_path.string());
  return b;
}

}  // namespace ddad_rt
