#pragma once
// node: one operator application in a graph.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/attribute.hpp"
#include "quench/graph/value.hpp"

namespace quench {

/// Owned by its graph. Inputs may be null (an omitted optional input, "" in ONNX). Rewire inputs
/// and outputs through graph's mutation functions so uses stay consistent; name, op type, domain
/// and attributes may be edited directly.
class node {
 public:
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  const std::string& op_type() const noexcept { return op_type_; }
  void set_op_type(std::string t) { op_type_ = std::move(t); }
  /// "" is the default ONNX domain (same as "ai.onnx").
  const std::string& domain() const noexcept { return domain_; }
  void set_domain(std::string d) { domain_ = std::move(d); }
  bool is(std::string_view op_type) const noexcept {
    return op_type_ == op_type && (domain_.empty() || domain_ == "ai.onnx");
  }

  const std::vector<value*>& inputs() const noexcept { return inputs_; }
  const std::vector<value*>& outputs() const noexcept { return outputs_; }
  value* input(std::size_t i) const noexcept { return i < inputs_.size() ? inputs_[i] : nullptr; }
  value* output(std::size_t i) const noexcept { return i < outputs_.size() ? outputs_[i] : nullptr; }

  std::vector<attribute>& attributes() noexcept { return attributes_; }
  const std::vector<attribute>& attributes() const noexcept { return attributes_; }
  const attribute* find_attribute(std::string_view name) const noexcept {
    for (const auto& a : attributes_)
      if (a.name == name) return &a;
    return nullptr;
  }
  attribute* find_attribute(std::string_view name) noexcept {
    for (auto& a : attributes_)
      if (a.name == name) return &a;
    return nullptr;
  }
  /// Integer attribute or `fallback` when absent; throws invalid_model when present with another type.
  std::int64_t attr_int(std::string_view name, std::int64_t fallback) const {
    const attribute* a = find_attribute(name);
    if (!a) return fallback;
    check_type(*a, attribute_type::int_);
    return a->i;
  }
  float attr_float(std::string_view name, float fallback) const {
    const attribute* a = find_attribute(name);
    if (!a) return fallback;
    check_type(*a, attribute_type::float_);
    return a->f;
  }
  std::string attr_string(std::string_view name, std::string fallback) const {
    const attribute* a = find_attribute(name);
    if (!a) return fallback;
    check_type(*a, attribute_type::string);
    return a->s;
  }
  std::vector<std::int64_t> attr_ints(std::string_view name, std::vector<std::int64_t> fallback) const {
    const attribute* a = find_attribute(name);
    if (!a) return fallback;
    check_type(*a, attribute_type::ints);
    return a->ints;
  }
  /// Replaces or adds an attribute of the same name.
  void set_attribute(attribute a) {
    for (auto& old : attributes_)
      if (old.name == a.name) {
        old = std::move(a);
        return;
      }
    attributes_.push_back(std::move(a));
  }
  bool remove_attribute(std::string_view name) {
    for (auto it = attributes_.begin(); it != attributes_.end(); ++it)
      if (it->name == name) {
        attributes_.erase(it);
        return true;
      }
    return false;
  }

  /// Sub-graphs held in graph / graphs attributes (If branches, Loop and Scan bodies).
  std::vector<graph*> subgraphs() const {
    std::vector<graph*> out;
    for (const auto& a : attributes_) {
      if (a.g) out.push_back(a.g.get());
      for (const auto& g : a.graphs) out.push_back(g.get());
    }
    return out;
  }

  const std::string& doc_string() const noexcept { return doc_string_; }
  void set_doc_string(std::string d) { doc_string_ = std::move(d); }
  /// Serialized NodeProto with every field quench does not model (e.g. fields added by later
  /// ONNX versions); written back on save.
  const std::string& residual() const noexcept { return residual_; }
  void set_residual(std::string r) { residual_ = std::move(r); }

  /// The graph that owns this node.
  quench::graph* owner() const noexcept { return owner_; }

  /// "node 'name' (OpType)" for error messages.
  std::string context() const {
    return "node '" + name_ + "' (" + (domain_.empty() ? "" : domain_ + "::") + op_type_ + ")";
  }

 private:
  friend class graph;
  node() = default;

  void check_type(const attribute& a, attribute_type want) const {
    if (a.type != want)
      throw_error(errc::invalid_model, context(),
                  "attribute '" + a.name + "' has type " + std::to_string(static_cast<int>(a.type)) +
                      ", expected " + std::to_string(static_cast<int>(want)));
  }

  std::string name_, op_type_, domain_, doc_string_, residual_;
  std::vector<value*> inputs_, outputs_;
  std::vector<attribute> attributes_;
  quench::graph* owner_ = nullptr;
};

}  // namespace quench
