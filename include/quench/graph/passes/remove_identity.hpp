#pragma once
// remove_identity: Identity nodes, and Dropout nodes that run in inference mode, are removed by
// wiring their consumers to their input.

#include <cstdint>
#include <string>

#include "quench/core/error.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::detail {

/// Whether Dropout `n` is the identity at inference time; `why` says what keeps it otherwise.
inline bool dropout_is_identity(const node& n, std::int64_t opset, std::string& why) {
  if (opset < 7) {
    // Dropout-1/6 carry the mode in the node: is_test = 0 asks for random dropping.
    if (n.attr_int("is_test", 0) == 0) {
      why = "is_test = 0 asks for training-mode dropout";
      return false;
    }
  } else if (opset >= 12) {
    // Dropout-12 and later: the optional third input switches training on; absent means off.
    const value* mode = n.input(2);
    if (mode) {
      const tensor* t = constant_tensor(mode);
      if (!t) {
        why = "training_mode '" + mode->name() + "' is not a constant";
        return false;
      }
      if (t->dtype() != dtype::bool_ || t->size() != 1)
        throw_error(errc::invalid_model, n.context(),
                    "training_mode '" + mode->name() + "' must be a bool scalar, found " + to_string(t->dtype()) + " " +
                        to_string(t->shape()));
      if (t->view<bool>()[0]) {
        why = "training_mode is true";
        return false;
      }
    }
  }
  // The mask says which elements were kept: in inference all of them. Replacing a used mask by a
  // constant would need its shape and could be as large as the activation, so the node stays.
  if (const value* mask = n.output(1); mask && (mask->has_uses() || mask->is_graph_output())) {
    why = "its mask output '" + mask->name() + "' is used";
    return false;
  }
  return true;
}

inline void remove_identity_in(graph& g, std::int64_t opset, passes::pass_report& r) {
  for (node* n : g.nodes()) {
    for (graph* sub : n->subgraphs()) remove_identity_in(*sub, opset, r);
    const bool identity = n->is("Identity");
    if (!identity && !n->is("Dropout")) continue;
    if (!n->input(0)) throw_error(errc::invalid_model, n->context(), "has no data input");
    if (n->outputs().empty() || n->outputs().size() > (identity ? 1u : 2u))
      throw_error(errc::invalid_model, n->context(),
                  "expected " + std::string(identity ? "1 output" : "1 or 2 outputs") + ", found " +
                      std::to_string(n->outputs().size()));
    std::string why;
    if (!identity && !dropout_is_identity(*n, opset, why)) {
      r.kept.push_back(n->context() + ": " + why);
      continue;
    }
    value& x = *n->input(0);
    value* y = n->output(0);
    if (!y) {  // nothing reads it
      g.remove_node(*n);
      ++r.rewrites;
      continue;
    }
    if (!y->is_graph_output()) {
      detail::bypass_node(g, *n, *y, x, /*take_name=*/false);
      ++r.rewrites;
      continue;
    }
    // y is a graph output: its name is part of the model's interface. x takes that name when it
    // is an ordinary intermediate of this graph; a graph input, an initializer, another graph
    // output or a value of an enclosing scope cannot be renamed, and the node stays.
    const bool renamable = x.producer() && !x.is_graph_output() && !x.is_graph_input() && !x.is_initializer() &&
                           !x.is_outer_ref();
    if (!renamable) {
      r.kept.push_back(n->context() + ": graph output '" + y->name() + "' is fed by '" + x.name() +
                       "', which cannot take its name");
      continue;
    }
    detail::bypass_node(g, *n, *y, x, /*take_name=*/true);
    ++r.rewrites;
  }
}

}  // namespace quench::detail

namespace quench::passes {

/// Removes `Identity` nodes and inference-mode `Dropout` nodes in `g` and its sub-graphs: their
/// consumers read the input instead. A Dropout is inference-mode when (opset < 7) `is_test` is
/// set, (opset 7-11) always, (opset >= 12) its `training_mode` input is absent or a constant
/// false. A Dropout whose mask output is used stays (a constant all-true mask would need a known
/// shape and may be as large as the activation).
///
/// Graph outputs keep their names: when the removed node's output is a graph output, its input
/// is renamed to that name (and takes its declared type). When the input cannot be renamed — it
/// is a graph input, an initializer, another graph output or a value of an enclosing scope — the
/// node stays, with a line in the report. `rewrites` counts removed nodes.
///
///     // x -> Identity -> Relu -> Dropout(ratio=0.1) -> y (graph output)
///     auto r = quench::passes::remove_identity(model);
///     // x -> Relu -> y: r.rewrites == 2, the Relu now produces "y"
inline pass_report remove_identity(graph& g, std::int64_t opset) {
  detail::check_opset(opset);
  pass_report r;
  detail::remove_identity_in(g, opset, r);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline pass_report remove_identity(model& m) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) return {};
  return remove_identity(m.main_graph(), opset);
}

}  // namespace quench::passes
