#include "onnx_signature.h"

#include <set>

namespace ddad_rt::onnx {
namespace {

// Field numbers of onnx.proto (ONNX IR version 3 and later) that the reader follows.
namespace model {  // ModelProto
constexpr int kGraph = 7, kTrainingInfo = 20, kFunctions = 25;
}
namespace graph {  // GraphProto
constexpr int kNode = 1, kInitializer = 5, kInput = 11, kOutput = 12, kSparseInitializer = 15;
}
namespace node {  // NodeProto
constexpr int kAttribute = 5;
}
namespace function {  // FunctionProto
constexpr int kNode = 7;
}
namespace attribute {  // AttributeProto
constexpr int kTensor = 5, kGraph = 6, kTensors = 10, kGraphs = 11, kSparseTensor = 22,
              kSparseTensors = 23;
}
namespace tensor {  // TensorProto
constexpr int kName = 8, kExternalData = 13, kDataLocation = 14;
constexpr std::uint64_t kExternal = 1;
}
namespace sparse {  // SparseTensorProto
constexpr int kValues = 1, kIndices = 2;
}
namespace training {  // TrainingInfoProto
constexpr int kInitialization = 1, kAlgorithm = 2;
}
namespace value_info {  // ValueInfoProto -> TypeProto -> TypeProto.Tensor -> TensorShapeProto
constexpr int kName = 1, kType = 2, kTensorType = 1, kElemType = 1, kShape = 2, kDim = 1,
              kDimValue = 1;
}

// A graph nested deeper than this (subgraphs of If/Loop inside each other) is refused
// rather than recursed into: a hostile file must not exhaust the stack.
constexpr int kMaxDepth = 32;

enum Wire : int { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

// One protobuf message's bytes, read field by field.
class Reader {
 public:
  Reader(const char* begin, const char* end) : p_(begin), end_(end) {}
  explicit Reader(const std::string& s) : Reader(s.data(), s.data() + s.size()) {}

  bool done() const { return p_ >= end_; }

  // The next field's number and wire type.
  void next(int& field, int& wire) {
    const std::uint64_t key = varint();
    field = static_cast<int>(key >> 3);
    wire = static_cast<int>(key & 7);
    if (field <= 0) fail("field number 0");
  }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) fail("truncated varint");
      const auto byte = static_cast<unsigned char>(*p_++);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }

  Reader message() {
    const std::uint64_t n = varint();
    if (n > static_cast<std::uint64_t>(end_ - p_)) fail("a field runs past the end");
    Reader sub(p_, p_ + n);
    p_ += n;
    return sub;
  }

  std::string bytes() {
    Reader sub = message();
    return std::string(sub.p_, sub.end_);
  }

  void skip(int wire) {
    switch (wire) {
      case kVarint: varint(); return;
      case kFixed64: advance(8); return;
      case kFixed32: advance(4); return;
      case kBytes: message(); return;
      default: fail("unsupported wire type " + std::to_string(wire));
    }
  }

  [[noreturn]] static void fail(const std::string& why) {
    throw MalformedGraph("not a valid ONNX model: " + why);
  }

 private:
  void advance(std::size_t n) {
    if (n > static_cast<std::size_t>(end_ - p_)) fail("truncated fixed-size field");
    p_ += n;
  }
  const char* p_;
  const char* end_;
};

void expect_bytes(int wire) {
  if (wire != kBytes) Reader::fail("a message field has wire type " + std::to_string(wire));
}

bool tensor_is_external(Reader r, std::string* name) {
  bool external = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == tensor::kDataLocation && w == kVarint) {
      const bool here = r.varint() == tensor::kExternal;  // read it whatever came before
      external = external || here;
    } else if (f == tensor::kExternalData) {
      expect_bytes(w);
      r.skip(w);
      external = true;
    } else if (f == tensor::kName && w == kBytes && name) {
      *name = r.bytes();
    } else {
      r.skip(w);
    }
  }
  return external;
}

bool sparse_is_external(Reader r) {
  bool external = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == sparse::kValues || f == sparse::kIndices) {
      expect_bytes(w);
      external = tensor_is_external(r.message(), nullptr) || external;
    } else {
      r.skip(w);
    }
  }
  return external;
}

bool graph_is_external(Reader r, int depth, std::set<std::string>* initializers);

bool attribute_is_external(Reader r, int depth) {
  bool external = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == attribute::kTensor || f == attribute::kTensors) {
      expect_bytes(w);
      external = tensor_is_external(r.message(), nullptr) || external;
    } else if (f == attribute::kSparseTensor || f == attribute::kSparseTensors) {
      expect_bytes(w);
      external = sparse_is_external(r.message()) || external;
    } else if (f == attribute::kGraph || f == attribute::kGraphs) {
      expect_bytes(w);
      external = graph_is_external(r.message(), depth + 1, nullptr) || external;
    } else {
      r.skip(w);
    }
  }
  return external;
}

// Nodes (NodeProto, or a FunctionProto's nodes): their attributes' tensors and subgraphs.
bool nodes_are_external(Reader r, int node_field, int depth) {
  bool external = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f != node_field) {
      r.skip(w);
      continue;
    }
    expect_bytes(w);
    Reader n = r.message();
    while (!n.done()) {
      int nf, nw;
      n.next(nf, nw);
      if (nf == node::kAttribute) {
        expect_bytes(nw);
        external = attribute_is_external(n.message(), depth) || external;
      } else {
        n.skip(nw);
      }
    }
  }
  return external;
}

bool graph_is_external(Reader r, int depth, std::set<std::string>* initializers) {
  if (depth > kMaxDepth) Reader::fail("graphs nested more than " + std::to_string(kMaxDepth) + " deep");
  bool external = nodes_are_external(r, graph::kNode, depth);
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == graph::kInitializer) {
      expect_bytes(w);
      std::string name;
      external = tensor_is_external(r.message(), &name) || external;
      if (initializers) initializers->insert(name);
    } else if (f == graph::kSparseInitializer) {
      expect_bytes(w);
      external = sparse_is_external(r.message()) || external;
    } else {
      r.skip(w);
    }
  }
  return external;
}

void read_shape(Reader r, TensorSignature& t) {
  t.has_shape = true;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f != value_info::kDim) {
      r.skip(w);
      continue;
    }
    expect_bytes(w);
    Reader d = r.message();
    std::int64_t dim = -1;
    while (!d.done()) {
      int df, dw;
      d.next(df, dw);
      if (df == value_info::kDimValue && dw == kVarint) {
        dim = static_cast<std::int64_t>(d.varint());
      } else {
        d.skip(dw);
      }
    }
    t.dims.push_back(dim < 0 ? -1 : dim);
  }
}

TensorSignature read_value_info(Reader r) {
  TensorSignature t;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == value_info::kName && w == kBytes) {
      t.name = r.bytes();
    } else if (f == value_info::kType && w == kBytes) {
      Reader type = r.message();
      while (!type.done()) {
        int tf, tw;
        type.next(tf, tw);
        if (tf != value_info::kTensorType || tw != kBytes) {
          type.skip(tw);
          continue;
        }
        Reader tensor_type = type.message();
        while (!tensor_type.done()) {
          int xf, xw;
          tensor_type.next(xf, xw);
          if (xf == value_info::kElemType && xw == kVarint) {
            t.elem_type = static_cast<int>(tensor_type.varint());
          } else if (xf == value_info::kShape && xw == kBytes) {
            read_shape(tensor_type.message(), t);
          } else {
            tensor_type.skip(xw);
          }
        }
      }
    } else {
      r.skip(w);
    }
  }
  return t;
}

// The top-level graph's inputs and outputs.
void read_interface(Reader r, const std::set<std::string>& initializers, GraphSignature& sig) {
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == graph::kInput || f == graph::kOutput) {
      expect_bytes(w);
      TensorSignature t = read_value_info(r.message());
      if (f == graph::kOutput) {
        sig.outputs.push_back(std::move(t));
      } else if (!initializers.count(t.name)) {  // old IR versions list weights as inputs
        sig.inputs.push_back(std::move(t));
      }
    } else {
      r.skip(w);
    }
  }
}

bool training_info_is_external(Reader r) {
  bool external = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == training::kInitialization || f == training::kAlgorithm) {
      expect_bytes(w);
      external = graph_is_external(r.message(), 1, nullptr) || external;
    } else {
      r.skip(w);
    }
  }
  return external;
}

}  // namespace

GraphSignature read_signature(const std::string& bytes) {
  GraphSignature sig;
  Reader r(bytes);
  bool has_graph = false;
  while (!r.done()) {
    int f, w;
    r.next(f, w);
    if (f == model::kGraph) {
      expect_bytes(w);
      if (has_graph) Reader::fail("two graphs in one model");
      has_graph = true;
      const Reader g = r.message();
      std::set<std::string> initializers;
      sig.external_data = graph_is_external(g, 0, &initializers) || sig.external_data;
      read_interface(g, initializers, sig);
    } else if (f == model::kFunctions) {
      expect_bytes(w);
      sig.external_data = nodes_are_external(r.message(), function::kNode, 1) || sig.external_data;
    } else if (f == model::kTrainingInfo) {
      expect_bytes(w);
      sig.external_data = training_info_is_external(r.message()) || sig.external_data;
    } else {
      r.skip(w);
    }
  }
  if (!has_graph) Reader::fail("it has no graph");
  return sig;
}

std::string dims_text(const TensorSignature& t) {
  if (!t.has_shape) return "(no shape)";
  std::string s = "[";
  for (std::size_t i = 0; i < t.dims.size(); ++i) {
    if (i) s += ", ";
    s += t.dims[i] < 0 ? std::string("?") : std::to_string(t.dims[i]);
  }
  return s + "]";
}

}  // namespace ddad_rt::onnx
