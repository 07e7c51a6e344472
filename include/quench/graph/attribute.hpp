#pragma once
// attribute: a typed node attribute as ONNX AttributeProto defines it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/tensor_encoding.hpp"

namespace quench {

class graph;

/// Numbered as ONNX AttributeProto.AttributeType.
enum class attribute_type : std::int32_t {
  undefined = 0,
  float_ = 1,
  int_ = 2,
  string = 3,
  tensor = 4,
  graph = 5,
  sparse_tensor = 11,
  type_proto = 13,
  floats = 6,
  ints = 7,
  strings = 8,
  tensors = 9,
  graphs = 10,
  sparse_tensors = 12,
  type_protos = 14,
};

/// One attribute (move-only: it may own a sub-graph). Only the member matching `type` is meaningful. Sparse tensors and type protos
/// are kept opaque in `residual` (quench reads none of them, but they survive a round trip), as
/// are `ref_attr_name` (attributes of function bodies) and doc strings.
struct attribute {
  std::string name;
  attribute_type type = attribute_type::undefined;
  float f = 0.f;
  std::int64_t i = 0;
  std::string s;  ///< bytes, not necessarily UTF-8
  std::unique_ptr<quench::tensor> t;
  std::unique_ptr<quench::graph> g;
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
  std::vector<std::unique_ptr<quench::tensor>> tensors;
  std::vector<std::unique_ptr<quench::graph>> graphs;
  /// Serialized AttributeProto holding every field not listed above (empty if none).
  std::string residual;
  /// Opaque fields of `t`'s / `tensors`' TensorProtos, in the same order (see value::initializer_residual).
  std::vector<std::string> tensor_residuals;
  /// How `t` / `tensors` were stored, in the same order.
  std::vector<tensor_encoding> tensor_encodings;

  static attribute make_int(std::string n, std::int64_t v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::int_;
    a.i = v;
    return a;
  }
  static attribute make_float(std::string n, float v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::float_;
    a.f = v;
    return a;
  }
  static attribute make_string(std::string n, std::string v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::string;
    a.s = std::move(v);
    return a;
  }
  static attribute make_ints(std::string n, std::vector<std::int64_t> v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::ints;
    a.ints = std::move(v);
    return a;
  }
  static attribute make_floats(std::string n, std::vector<float> v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::floats;
    a.floats = std::move(v);
    return a;
  }
  static attribute make_tensor(std::string n, quench::tensor v) {
    attribute a;
    a.name = std::move(n);
    a.type = attribute_type::tensor;
    a.t = std::make_unique<quench::tensor>(std::move(v));
    return a;
  }
};

}  // namespace quench
