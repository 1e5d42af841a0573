// A bundle's graphs checked against its manifest. The manifest is outside the bundle's
// identity (calibration rewrites it), so its k, image_size, channels and backbone could be
// edited; every backend sizes buffers from them, so they must equal what the graphs compute.
#pragma once

#include <string>

#include "ddad_rt/bundle.h"

namespace ddad_rt {

//! Checks every graph of `b` (graph_bytes already hash-verified): well-formed ONNX, no
//! external data, and inputs/outputs whose names, float32 type and shapes match the manifest.
//! Throws BundleError naming the manifest field (or the graph) that disagrees.
void check_graphs_against_manifest(const Bundle& b, const std::string& manifest_path);

}  // namespace ddad_rt
