// What an ONNX graph takes and gives - its inputs' and outputs' names, element types and
// shapes - and whether it refers to data outside its own file, read straight from the
// protobuf wire format. The engine checks a bundle's graphs against its manifest with this
// before any backend sees them: backends size buffers from the manifest, so a manifest that
// disagrees with its graphs must never reach them. No ONNX or protobuf library is needed.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddad_rt::onnx {

//! ONNX TensorProto.DataType of float32.
constexpr int kFloat = 1;

//! One graph input or output.
struct TensorSignature {
  std::string name;
  int elem_type = 0;                 //!< TensorProto.DataType (1 = float32)
  std::vector<std::int64_t> dims;    //!< -1 where the dimension is symbolic or unknown
  bool has_shape = false;            //!< false: the graph states no shape at all
};

//! A graph's interface and where its data lives.
struct GraphSignature {
  std::vector<TensorSignature> inputs;   //!< graph inputs that are not initializers
  std::vector<TensorSignature> outputs;
  //! Some tensor (initializer, constant, attribute, function body, subgraph) keeps its data
  //! in another file (data_location = EXTERNAL): loading it would read outside the bundle.
  bool external_data = false;
};

//! The bytes are not a well-formed ONNX model.
class MalformedGraph : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

//! Reads the signature of the ONNX model in `bytes`. Throws MalformedGraph when the bytes
//! are not a protobuf-encoded ModelProto with a graph (truncated, nested too deep, ...).
GraphSignature read_signature(const std::string& bytes);

//! "[batch, 1, 64, 64]"-style text of a signature's dims (symbolic dims as "?").
std::string dims_text(const TensorSignature& t);

}  // namespace ddad_rt::onnx
