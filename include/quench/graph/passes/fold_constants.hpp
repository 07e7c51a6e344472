#pragma once
// fold_constants: nodes of shape computations whose inputs are all constant are evaluated and
// replaced by initializers.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/constant_eval.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::passes {

struct fold_constants_options {
  /// Only results (and constant inputs) up to this size are folded, so computations on weights
  /// stay in the graph for the quantizer to see, and the file does not grow.
  std::size_t max_bytes = 64 * 1024;
};

}  // namespace quench::passes

namespace quench::detail {

/// The folded result of `n`, or nothing when an input is not constant (or too large, or of a type
/// folding does not handle), or the result is too large.
inline std::optional<folded> try_fold(const node& n, std::int64_t opset, const passes::fold_constants_options& o) {
  if (n.is("Shape") || n.is("Size")) {
    // Only the dimensions matter: a constant's, or an activation's whose shape is static (as
    // declared, or after quench::onnx::infer_shapes).
    const value* x = n.input(0);
    if (!x) throw_error(errc::invalid_model, n.context(), "has no input");
    std::vector<std::int64_t> dims;
    if (const tensor* t = constant_tensor(x)) dims = t->shape().dims();
    else if (auto s = x->static_shape()) dims = s->dims();
    else return std::nullopt;
    return shape_of(n, dims, n.is("Size"));
  }
  std::vector<std::optional<folded>> inputs;
  for (const value* v : n.inputs()) {
    if (!v) {
      inputs.emplace_back();
      continue;
    }
    const tensor* t = constant_tensor(v);
    if (!t || t->nbytes() > o.max_bytes) return std::nullopt;
    auto f = read_folded(*t);
    if (!f) return std::nullopt;
    inputs.push_back(std::move(f));
  }
  if (inputs.empty() && !n.is("ConstantOfShape")) throw_error(errc::invalid_model, n.context(), "has no inputs");
  fold_context c(n, std::move(inputs), opset, o.max_bytes);
  return evaluate(c);
}

inline void fold_constants_in(graph& g, std::int64_t opset, const passes::fold_constants_options& o, passes::pass_report& r) {
  std::unordered_set<std::string> created;
  // One sweep in node order folds whole chains of a topologically sorted graph; repeat in case
  // the order was not.
  for (bool changed = true; changed;) {
    changed = false;
    for (node* n : g.nodes()) {
      if (!is_foldable_op(*n)) continue;
      if (n->outputs().size() != 1 || !n->output(0))
        throw_error(errc::invalid_model, n->context(), "expected exactly one output");
      // A graph output stays produced by its node (some runtimes reject initializers as outputs).
      if (n->output(0)->is_graph_output()) continue;
      auto result = try_fold(*n, opset, o);
      if (!result) continue;
      value& init = replace_by_initializer(g, *n, write_folded(*result));
      created.insert(init.name());
      ++r.rewrites;
      changed = true;
    }
  }
  // Intermediate results of a folded chain are read by nothing now; the model's own unused
  // initializers are left to remove_dead_code.
  for (const std::string& name : created)
    if (value* v = g.find_value(name); v && !v->has_uses() && !v->is_graph_output()) g.remove_value(*v);
  for (node* n : g.nodes())
    for (graph* sub : n->subgraphs()) fold_constants_in(*sub, opset, o, r);
}

}  // namespace quench::detail

namespace quench::passes {

/// Evaluates nodes whose inputs are all constants (initializers) and replaces them by
/// initializers, for the operators of shape computations: Shape (also of an activation whose
/// shape is static — run quench::onnx::infer_shapes first to have them), Size, Gather,
/// Unsqueeze and Squeeze (axes attribute before opset 13, input from 13), Concat, Slice
/// (attributes before opset 10, inputs from 10), Cast, Reshape, Add/Sub/Mul/Div, Range,
/// ConstantOfShape, Equal, Where, Expand and Identity, on float, double, bool and integer types up
/// to 32 bits plus int64. Semantics are the operators' own: integer Div truncates, integer
/// arithmetic wraps; an integer division by zero or an out-of-range float-to-integer Cast is left
/// to the runtime. Results and inputs above `options.max_bytes` stay computed at run time.
/// Nodes producing a graph output stay. Recurses into sub-graphs; `rewrites` counts folded nodes.
/// Throws for malformed nodes (a Gather index out of range, a Reshape to a wrong element count).
///
///     // y = Reshape(x, Concat(Slice(Shape(x), [0], [1]), [-1]))   with x of shape [2, 3, 4]
///     quench::passes::fold_constants(model);
///     // y = Reshape(x, [2, -1])
inline pass_report fold_constants(graph& g, std::int64_t opset, const fold_constants_options& options = {}) {
  detail::check_opset(opset);
  pass_report r;
  detail::fold_constants_in(g, opset, options, r);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline pass_report fold_constants(model& m, const fold_constants_options& options = {}) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) return {};
  return fold_constants(m.main_graph(), opset, options);
}

}  // namespace quench::passes
