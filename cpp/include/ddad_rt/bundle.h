// A bundle: a directory with manifest.json and the ONNX graphs it lists, integrity-checked
// on load. The manifest is written by ddad_train.export (Python); this is its C++ reader.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ddad_rt/export.h"

namespace ddad_rt {

//! The bundle format this build reads and writes.
constexpr int kBundleFormatVersion = 1;

//! A loaded, verified bundle.
struct Bundle {
  std::string path;            //!< the bundle directory
  int format_version = 0;      //!< manifest format_version
  std::string backbone;        //!< "ae", "ae-u" or "memae"
  int k = 0;                   //!< members per module (NDM and UDM each)
  int channels = 1;            //!< image channels (manifest "channels"; only 1 is supported)
  std::int64_t height = 0;     //!< model image size
  std::int64_t width = 0;
  float norm_mean = 0.5f;      //!< network input = ([0,1] value - mean) / std
  float norm_std = 0.5f;
  std::vector<std::string> scores;          //!< score keys the bundle provides
  std::string default_score;                //!< the key a screening flag uses by default
  //! role -> file name; roles: "ensemble" (always), "refine_dual", "refine_intra"
  std::map<std::string, std::string> graphs;
  std::map<std::string, std::string> files;   //!< file name -> sha256 (hex)
  std::string identity;        //!< sha256 over the graph files' hashes (manifest-independent)
  std::string manifest_json;   //!< the manifest text as read
  //! Reduced precisions whose accuracy was checked on labelled images and found within
  //! tolerance (manifest "precision_checks": {"bf16": {"passed": true, ...}}); precision
  //! "auto" uses only these.
  std::vector<std::string> validated_precisions;
  //! For each checked precision, what ran its refiners when it was checked (the check's
  //! "refine_impl"; "openvino" for checks that predate the field): a check counts only for
  //! the arithmetic it measured.
  std::map<std::string, std::string> checked_refine_impl;
  //! Calibrated operating points (manifest "operating_points", written by `ddad-rt
  //! calibrate`): specificity key ("0.95") -> score key -> threshold. An image is flagged
  //! when its score is above the threshold. Empty: the bundle is not calibrated.
  std::map<std::string, std::map<std::string, double>> thresholds;
  //! Bytes of each graph file, read once and hash-checked (no re-read, no TOCTOU).
  std::map<std::string, std::string> graph_bytes;

  //! True when the bundle has a graph for `role`.
  bool has_graph(const std::string& role) const { return graphs.count(role) != 0; }
  //! True for AE-U bundles: the ensemble also outputs the NDM's log-variances.
  bool uncertainty() const { return backbone == "ae-u"; }
};

//! The manifest key of a specificity, as `ddad-rt calibrate` writes it: 0.95 -> "0.95",
//! 0.9 -> "0.90", 0.995 -> "0.995".
DDAD_RT_API std::string specificity_key(double specificity);

//! Loads `dir/manifest.json`, checks format and fields, verifies the sha256 of every listed
//! file (regular files only: no symbolic links), and checks every graph's inputs and outputs
//! against the manifest (no external data). Throws BundleError with the reason and the remedy.
DDAD_RT_API Bundle load_bundle(const std::string& dir);

}  // namespace ddad_rt
