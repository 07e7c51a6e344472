#pragma once
// op_context: what an operator kernel sees of the node it runs: inputs, attributes, the opset
// version in force, and where to put its outputs.

#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/node.hpp"

namespace quench::runtime {

class op_context {
 public:
  op_context(const node& n, std::int64_t opset, std::vector<const tensor*> inputs, std::vector<tensor>& outputs,
             int threads, std::vector<tensor*> reusable = {})
      : node_(n), opset_(opset), inputs_(std::move(inputs)), outputs_(outputs), threads_(threads), reusable_(std::move(reusable)) {}

  const quench::node& node() const noexcept { return node_; }
  /// The version of the node's domain imported by the model.
  std::int64_t opset() const noexcept { return opset_; }
  int threads() const noexcept { return threads_; }

  /// Inputs as ONNX lists them, omitted optional inputs included (as null).
  std::size_t input_count() const noexcept { return inputs_.size(); }
  /// Input `i`, or null when omitted or beyond the node's inputs.
  const tensor* input(std::size_t i) const noexcept { return i < inputs_.size() ? inputs_[i] : nullptr; }
  /// Input `i`; throws invalid_model naming the node when it is missing.
  const tensor& required_input(std::size_t i) const {
    const tensor* t = input(i);
    if (!t) fail(errc::invalid_model, "requires input " + std::to_string(i));
    return *t;
  }
  /// Input `i` checked to have element type T; returns its view.
  template <class T>
  tensor_view<const T> input_as(std::size_t i) const {
    const tensor& t = required_input(i);
    if (t.dtype() != dtype_of_v<T>)
      fail(errc::dtype_mismatch, "input " + std::to_string(i) + ": expected " + to_string(dtype_of_v<T>) + ", found " +
                                     to_string(t.dtype()));
    return t.view<T>();
  }

  /// Input `i` when its storage may be overwritten and passed on as an output (moved into
  /// set_output): the executor offers an intermediate whose last use is this node, that no other
  /// input slot of the node names and no other tensor shares. Null otherwise. Elementwise kernels
  /// use it to work in place, saving an allocation and half the memory traffic.
  tensor* reusable_input(std::size_t i) const noexcept {
    tensor* t = i < reusable_.size() ? reusable_[i] : nullptr;
    return t && t->storage_unique() ? t : nullptr;
  }

  /// Storage for an output of `type` and shape `s` that a kernel fills element by element from
  /// input `i`: the input's own tensor when reusable_input(i) offers one of that type and shape
  /// (take the input's data pointer first: the input is moved from), else uninitialised storage.
  tensor reuse_or_allocate(std::size_t i, quench::dtype type, const shape& s) const {
    if (tensor* t = reusable_input(i); t && t->dtype() == type && t->shape() == s) return std::move(*t);
    return tensor::uninitialized(type, s);
  }

  std::size_t output_count() const noexcept { return outputs_.size(); }
  /// False for an omitted optional output: kernels may skip computing it.
  bool output_wanted(std::size_t i) const noexcept {
    return i < node_.outputs().size() && node_.outputs()[i] != nullptr;
  }
  /// Stores output `i` (named after the node's output value).
  void set_output(std::size_t i, tensor t) {
    if (i >= outputs_.size()) fail(errc::invalid_model, "has no output " + std::to_string(i));
    if (const value* v = node_.output(i)) t.set_name(v->name());
    outputs_[i] = std::move(t);
  }

  /// Throws `code` with this node as context.
  [[noreturn]] void fail(errc code, const std::string& message) const { throw_error(code, node_.context(), message); }
  [[noreturn]] void unsupported(const std::string& message) const { fail(errc::unsupported_op, message); }

 private:
  const quench::node& node_;
  std::int64_t opset_;
  std::vector<const tensor*> inputs_;
  std::vector<tensor>& outputs_;
  int threads_;
  std::vector<tensor*> reusable_;
};

}  // namespace quench::runtime
