#pragma once
// value: a named tensor in a graph (SSA: produced once, by a node, or a graph input or an
// initializer), with its element type, its possibly symbolic shape, its producer and consumers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/tensor_encoding.hpp"

namespace quench {

class node;
class graph;

/// One dimension of a value's shape: a number, a symbolic name ("batch"), or unknown.
struct dim {
  std::optional<std::int64_t> value;  ///< known size
  std::string param;                  ///< symbolic name when `value` is empty; may be empty too

  bool is_known() const noexcept { return value.has_value(); }
  friend bool operator==(const dim& a, const dim& b) { return a.value == b.value && a.param == b.param; }
  friend bool operator!=(const dim& a, const dim& b) { return !(a == b); }
};

/// A use of a value: `user->inputs()[index] == value`, or index `implicit_use` when a sub-graph
/// of `user` (If/Loop/Scan) reads the value from the enclosing scope.
struct use {
  node* user = nullptr;
  int index = 0;
  static constexpr int implicit_use = -1;
  friend bool operator==(const use& a, const use& b) { return a.user == b.user && a.index == b.index; }
};

/// Owned by its graph; pointers stay valid until the value is removed. The producer and consumer
/// lists are maintained by graph's mutation functions (never edit them directly).
class value {
 public:
  const std::string& name() const noexcept { return name_; }

  /// Element type as an ONNX TensorProto.DataType number (0 = unknown). A number, not a dtype,
  /// because a model may carry types quench has no kernel for (strings, complex) and must keep them.
  std::int32_t elem_type() const noexcept { return elem_type_; }
  void set_elem_type(std::int32_t t) noexcept { elem_type_ = t; }
  /// The dtype, or dtype::undefined when the type is unknown or not one quench handles.
  quench::dtype dtype() const noexcept {
    return is_known_dtype(elem_type_) ? static_cast<quench::dtype>(elem_type_) : quench::dtype::undefined;
  }

  /// Shape; empty optional = rank unknown.
  const std::optional<std::vector<dim>>& dims() const noexcept { return dims_; }
  void set_dims(std::optional<std::vector<dim>> d) { dims_ = std::move(d); }
  /// The shape when every dimension is known.
  std::optional<quench::shape> static_shape() const {
    if (!dims_) return std::nullopt;
    std::vector<std::int64_t> s;
    for (const auto& d : *dims_) {
      if (!d.value) return std::nullopt;
      s.push_back(*d.value);
    }
    return quench::shape(std::move(s));
  }

  node* producer() const noexcept { return producer_; }
  int producer_output() const noexcept { return producer_output_; }
  const std::vector<use>& uses() const noexcept { return uses_; }
  bool has_uses() const noexcept { return !uses_.empty(); }

  bool is_graph_input() const noexcept { return is_input_; }
  bool is_graph_output() const noexcept { return is_output_; }

  /// The constant data when this value is an initializer.
  bool is_initializer() const noexcept { return initializer_ != nullptr; }
  const tensor* initializer() const noexcept { return initializer_.get(); }
  tensor* initializer() noexcept { return initializer_.get(); }

  /// How the initializer was stored; ignored for values that are not initializers.
  tensor_encoding initializer_encoding() const noexcept { return encoding_; }
  void set_initializer_encoding(tensor_encoding e) noexcept { encoding_ = e; }
  /// Opaque fields of the initializer's TensorProto (doc_string, segment, external_data keys,
  /// unknown fields), serialized with the data, dims, type and name cleared.
  const std::string& initializer_residual() const noexcept { return init_residual_; }
  void set_initializer_residual(std::string r) { init_residual_ = std::move(r); }

  /// True for a sparse initializer: a constant the graph keeps opaque (in the graph residual).
  bool is_opaque_constant() const noexcept { return opaque_constant_; }

  /// True when the producer, if any, lives in an enclosing graph (a sub-graph's outer reference).
  bool is_outer_ref() const noexcept { return outer_ != nullptr; }
  /// The enclosing graph's value this outer reference stands for.
  value* outer() const noexcept { return outer_; }

  /// Opaque serialized ONNX TypeProto as loaded; the ONNX layer writes it back unchanged when
  /// elem_type and dims still match it, so denotations and non-tensor types survive a round trip.
  const std::string& type_residual() const noexcept { return type_residual_; }
  void set_type_residual(std::string r) { type_residual_ = std::move(r); }
  /// Opaque doc_string and unknown fields of the ValueInfoProto (serialized, name/type cleared).
  const std::string& info_residual() const noexcept { return info_residual_; }
  void set_info_residual(std::string r) { info_residual_ = std::move(r); }

 private:
  friend class graph;
  explicit value(std::string name) : name_(std::move(name)) {}

  std::string name_;
  std::int32_t elem_type_ = 0;
  std::optional<std::vector<dim>> dims_;
  node* producer_ = nullptr;
  int producer_output_ = 0;
  std::vector<use> uses_;
  bool is_input_ = false;
  bool is_output_ = false;
  std::unique_ptr<tensor> initializer_;
  tensor_encoding encoding_ = tensor_encoding::raw;
  std::string init_residual_;
  value* outer_ = nullptr;
  bool opaque_constant_ = false;
  std::string type_residual_;
  std::string info_residual_;
};

}  // namespace quench
