// Small ONNX models written byte by byte in protobuf's wire format, for the tests of the
// bundle's graph checks: the shapes, names and external-data flags a test needs, no weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace onnx_builder {

inline std::string varint(std::uint64_t v) {
  std::string s;
  do {
    const auto byte = static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    s += byte;
    v >>= 7;
  } while (v);
  return s;
}

//! A length-delimited field (wire type 2).
inline std::string field(int number, const std::string& payload) {
  return varint(static_cast<std::uint64_t>(number) << 3 | 2) + varint(payload.size()) + payload;
}

//! A varint field (wire type 0).
inline std::string field_varint(int number, std::uint64_t value) {
  return varint(static_cast<std::uint64_t>(number) << 3) + varint(value);
}

//! ValueInfoProto of a float32 tensor; a dim of -1 is symbolic ("batch").
inline std::string value_info(const std::string& name, const std::vector<std::int64_t>& dims,
                              int elem_type = 1) {
  std::string shape;
  for (std::int64_t d : dims) {
    shape += field(1, d < 0 ? field(2, "batch") : field_varint(1, static_cast<std::uint64_t>(d)));
  }
  const std::string tensor_type = field_varint(1, elem_type) + field(2, shape);
  return field(1, name) + field(2, field(1, tensor_type));
}

//! TensorProto named `name`; `external` stores its data in another file.
inline std::string tensor(const std::string& name, bool external) {
  std::string t = field_varint(1, 4) + field_varint(2, 1) + field(8, name);
  if (external) t += field(13, field(1, "location") + field(2, "weights.bin")) + field_varint(14, 1);
  return t;
}

//! ModelProto with one graph: inputs, outputs and initializers as given.
inline std::string model(const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs,
                         const std::vector<std::string>& initializers = {}) {
  std::string graph = field(2, "g");
  for (const auto& t : initializers) graph += field(5, t);
  for (const auto& i : inputs) graph += field(11, i);
  for (const auto& o : outputs) graph += field(12, o);
  return field_varint(1, 8) + field(7, graph);
}

//! The ensemble graph of a K-member, h x w bundle (AE-U adds ndm_logvar).
inline std::string ensemble(int k, int h, int w, bool uncertainty = false) {
  std::vector<std::string> outs{value_info("udm", {-1, k, h, w}), value_info("ndm", {-1, k, h, w})};
  if (uncertainty) outs.push_back(value_info("ndm_logvar", {-1, k, h, w}));
  return model({value_info("images", {-1, 1, h, w})}, outs, {tensor("w0", false)});
}

}  // namespace onnx_builder
