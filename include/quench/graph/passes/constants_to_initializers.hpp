#pragma once
// constants_to_initializers: Constant nodes become initializers, so later passes (and
// quantizers) find weights where they look for them.

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::detail {

/// The tensor a Constant node holds, or no tensor (with `why` set) when it must stay a node.
inline bool constant_node_tensor(const node& n, std::int64_t opset, tensor& out, std::string& why) {
  const attribute* found = nullptr;
  for (const attribute& a : n.attributes()) {
    const bool known = a.name == "value" || a.name == "sparse_value" || a.name == "value_float" ||
                       a.name == "value_floats" || a.name == "value_int" || a.name == "value_ints" ||
                       a.name == "value_string" || a.name == "value_strings";
    if (!known) continue;
    if (found)
      throw_error(errc::invalid_model, n.context(),
                  "has both '" + found->name + "' and '" + a.name + "'; a Constant holds exactly one value");
    found = &a;
  }
  if (!found) throw_error(errc::invalid_model, n.context(), "has no value attribute");
  const attribute& a = *found;
  // value_float(s)/value_int(s)/value_string(s) arrived in opset 12, sparse_value in 11: a
  // runtime reading an older model would reject them, so such a model is malformed.
  const std::int64_t since = a.name == "value" ? 1 : a.name == "sparse_value" ? 11 : 12;
  if (opset < since)
    throw_error(errc::invalid_model, n.context(),
                "attribute '" + a.name + "' needs opset " + std::to_string(since) + ", the model imports " +
                    std::to_string(opset));
  auto expect = [&](attribute_type t) {
    if (a.type != t)
      throw_error(errc::invalid_model, n.context(),
                  "attribute '" + a.name + "' has type " + std::to_string(static_cast<int>(a.type)) + ", expected " +
                      std::to_string(static_cast<int>(t)));
  };
  if (a.name == "value") {
    expect(attribute_type::tensor);
    if (!a.t) throw_error(errc::invalid_model, n.context(), "attribute 'value' holds no tensor");
    out = a.t->clone();
  } else if (a.name == "value_float") {
    expect(attribute_type::float_);
    out = tensor::from<float>({}, {a.f});
  } else if (a.name == "value_int") {
    expect(attribute_type::int_);
    out = tensor::from<std::int64_t>({}, {a.i});
  } else if (a.name == "value_floats") {
    expect(attribute_type::floats);
    out = tensor(dtype::float32, {static_cast<std::int64_t>(a.floats.size())});
    std::copy(a.floats.begin(), a.floats.end(), out.view<float>().begin());
  } else if (a.name == "value_ints") {
    expect(attribute_type::ints);
    out = tensor(dtype::int64, {static_cast<std::int64_t>(a.ints.size())});
    std::copy(a.ints.begin(), a.ints.end(), out.view<std::int64_t>().begin());
  } else {
    // Sparse tensors are kept opaque by the graph view, and quench tensors hold no strings.
    why = "attribute '" + a.name + "' is kept as a Constant node";
    return false;
  }
  return true;
}

inline void constants_to_initializers_in(graph& g, std::int64_t opset, passes::pass_report& r) {
  for (node* n : g.nodes()) {
    for (graph* sub : n->subgraphs()) constants_to_initializers_in(*sub, opset, r);
    if (!n->is("Constant")) continue;
    if (n->outputs().size() != 1 || !n->output(0))
      throw_error(errc::invalid_model, n->context(), "expected exactly one output");
    if (!n->inputs().empty()) throw_error(errc::invalid_model, n->context(), "a Constant takes no inputs");
    tensor t;
    std::string why;
    if (!constant_node_tensor(*n, opset, t, why)) {
      r.kept.push_back(n->context() + ": " + why);
      continue;
    }
    if (n->output(0)->is_graph_output()) {
      // Some runtimes reject a graph output that is an initializer; the node costs nothing.
      r.kept.push_back(n->context() + ": its output is a graph output");
      continue;
    }
    // Keep how the bytes were stored (external data stays external) and the TensorProto extras.
    const attribute* a = n->find_attribute("value");
    tensor_encoding enc = tensor_encoding::raw;
    std::string residual;
    if (a && a->t) {
      if (!a->tensor_encodings.empty()) enc = a->tensor_encodings[0];
      if (!a->tensor_residuals.empty()) residual = a->tensor_residuals[0];
    }
    value& init = detail::replace_by_initializer(g, *n, std::move(t));
    init.set_initializer_encoding(enc);
    init.set_initializer_residual(std::move(residual));
    ++r.rewrites;
  }
}

}  // namespace quench::detail

namespace quench::passes {

/// Turns every `Constant` node (attributes `value`, and from opset 12 `value_float(s)` and
/// `value_int(s)`) into an initializer of the same name, in `g` and its sub-graphs. Kept, with a
/// line in the report: Constants holding `sparse_value` or strings, and Constants whose output
/// is a graph output. `rewrites` counts converted nodes. Throws invalid_model for a Constant
/// with no value, two values, or an attribute its opset does not have.
///
///     quench::model m = quench::onnx::load_model("exported.onnx");
///     auto r = quench::passes::constants_to_initializers(m);   // r.rewrites Constants converted
inline pass_report constants_to_initializers(graph& g, std::int64_t opset) {
  detail::check_opset(opset);
  pass_report r;
  detail::constants_to_initializers_in(g, opset, r);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline pass_report constants_to_initializers(model& m) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) return {};  // no ai.onnx node can be present
  return constants_to_initializers(m.main_graph(), opset);
}

}  // namespace quench::passes
