#include "bundle_graphs.h"

#include <algorithm>
#include <vector>

#include "ddad_rt/errors.h"
#include "onnx_signature.h"

namespace ddad_rt {
namespace {

// What one graph must take or give: dims[1] is the channel count, dims[2..3] the image size.
struct Expected {
  std::string name;       // empty: the graph's single input, whatever its name
  std::int64_t channels;
  std::string channels_field;  // the manifest field that sets `channels`; empty: the role does
};

class GraphCheck {
 public:
  GraphCheck(const Bundle& b, const std::string& manifest, const std::string& role)
      : b_(b), manifest_(manifest), role_(role), file_(b.graphs.at(role)) {
    try {
      sig_ = onnx::read_signature(b.graph_bytes.at(file_));
    } catch (const onnx::MalformedGraph& e) {
      fail("is " + std::string(e.what()) + "; the file is damaged or is not an ONNX model: "
           "re-export the bundle");
    }
    if (sig_.external_data) {
      fail("refers to tensor data in other files (ONNX external data); a bundle's graph must "
           "be one self-contained file, listed and hashed in the manifest: re-export it "
           "without external data");
    }
  }

  void input(const Expected& e) const {
    if (sig_.inputs.size() != 1) {
      fail("must have exactly one input, it has " + std::to_string(sig_.inputs.size()));
    }
    tensor(sig_.inputs[0], "input", e);
  }

  void output(const Expected& e) const {
    const auto it = std::find_if(sig_.outputs.begin(), sig_.outputs.end(),
                                 [&](const onnx::TensorSignature& t) { return t.name == e.name; });
    if (it == sig_.outputs.end()) fail("has no output '" + e.name + "' (" + output_names() + ")");
    tensor(*it, "output '" + e.name + "'", e);
  }

  bool has_output(const std::string& name) const {
    return std::any_of(sig_.outputs.begin(), sig_.outputs.end(),
                       [&](const onnx::TensorSignature& t) { return t.name == name; });
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw BundleError("bundle " + b_.path + ": the " + role_ + " graph " + file_ + " " + what);
  }

  [[noreturn]] void disagree(const std::string& field, const std::string& says,
                             const onnx::TensorSignature& t, const std::string& which) const {
    throw BundleError("manifest " + manifest_ + ": field '" + field + "' says " + says +
                      ", but the " + role_ + " graph " + file_ + "'s " + which + " has shape " +
                      onnx::dims_text(t) +
                      "; the manifest was edited or does not belong to these graphs: "
                      "re-export the bundle");
  }

 private:
  void tensor(const onnx::TensorSignature& t, const std::string& which, const Expected& e) const {
    if (t.elem_type != onnx::kFloat) {
      fail("'s " + which + " must be float32 (ONNX type 1), it is type " + std::to_string(t.elem_type));
    }
    if (!t.has_shape || t.dims.size() != 4) {
      fail("'s " + which + " must have a [batch, channels, height, width] shape, it has " +
           onnx::dims_text(t));
    }
    if (t.dims[1] != e.channels && e.channels_field.empty()) {
      fail("'s " + which + " must have " + std::to_string(e.channels) + " channels, it has shape " +
           onnx::dims_text(t) + ": this is not a " + role_ + " graph");
    }
    if (t.dims[1] != e.channels) {
      disagree(e.channels_field, std::to_string(e.channels), t, which);
    }
    if (t.dims[2] != b_.height || t.dims[3] != b_.width) {
      disagree("image_size", "[" + std::to_string(b_.height) + ", " + std::to_string(b_.width) + "]",
               t, which);
    }
  }

  std::string output_names() const {
    std::string s = "its outputs:";
    for (const auto& t : sig_.outputs) s += " " + t.name;
    return s;
  }

  const Bundle& b_;
  const std::string& manifest_;
  std::string role_;
  std::string file_;
  onnx::GraphSignature sig_;
};

}  // namespace

void check_graphs_against_manifest(const Bundle& b, const std::string& manifest_path) {
  {
    const GraphCheck g(b, manifest_path, "ensemble");
    g.input({"", b.channels, "channels"});
    g.output({"udm", b.k, "k"});
    g.output({"ndm", b.k, "k"});
    if (b.uncertainty()) {
      g.output({"ndm_logvar", b.k, "k"});
    } else if (g.has_output("ndm_logvar")) {
      throw BundleError("manifest " + manifest_path + ": field 'backbone' says \"" + b.backbone +
                        "\", but the ensemble graph outputs ndm_logvar (an AE-U ensemble): the "
                        "manifest was edited or does not belong to these graphs: re-export the bundle");
    }
  }
  for (const auto& [role, channels] : {std::pair<std::string, std::int64_t>{"refine_dual", 2},
                                       {"refine_intra", 1}}) {
    if (!b.has_graph(role)) continue;
    const GraphCheck g(b, manifest_path, role);
    g.input({"", channels, ""});
    g.output({"logits", 2, ""});
  }
}

}  // namespace ddad_rt
