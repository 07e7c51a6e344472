#pragma once
// fold_conv_mul_add: a Mul, Add, Sub or Div by a per-output-channel constant after a Conv,
// ConvTranspose, Gemm or MatMul (+ bias Add) is folded into that operator's weight and bias.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/channel_affine.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::detail {

/// Folds `n` (Mul/Add/Sub/Div) into the operator before it if it can; true when it did.
inline bool fold_elementwise(graph& g, node& n, std::int64_t opset, passes::pass_report& r) {
  const bool mul = n.is("Mul"), add = n.is("Add"), sub = n.is("Sub"), div = n.is("Div");
  if (n.inputs().size() != 2 || !n.input(0) || !n.input(1) || n.outputs().size() != 1 || !n.output(0))
    throw_error(errc::invalid_model, n.context(), "expected 2 inputs and 1 output");
  if (opset < 7) {
    // Before opset 7 broadcasting was opt-in (broadcast = 1); an explicit axis aligns the
    // second input there instead of at the end, which the per-channel test below does not model.
    if (n.attr_int("broadcast", 0) == 0 || n.find_attribute("axis")) return false;
  }
  for (std::size_t i = 0; i < 2; ++i) {
    value& y = *n.input(i);
    const value& c = *n.input(1 - i);
    const tensor* ct = constant_tensor(&c);
    if (!ct || constant_tensor(&y)) continue;
    if (div && i == 1) continue;  // c / y is not affine in y
    if (opset < 7 && i == 1) continue;  // the second input is the one broadcast
    std::string why;
    const auto site = find_linear_site(y, /*allow_matmul=*/true, why);
    if (!site) {
      // MatMul products (attention scores, ...) are rarely meant: report Conv and Gemm only.
      const node* p = y.producer();
      if (!why.empty() && !(p->is("MatMul") || p->is("Add"))) r.kept.push_back(n.context() + ": " + why);
      continue;
    }
    std::vector<double> cv;
    if (!channel_values(*ct, *site, cv)) {
      r.kept.push_back(n.context() + ": constant '" + c.name() + "' (" + to_string(ct->dtype()) + " " +
                       to_string(ct->shape()) + ") is not per output channel of " + site->op->context());
      continue;
    }
    const std::size_t count = cv.size();
    std::vector<double> scale(count, 1.0), shift(count, 0.0);
    for (std::size_t m = 0; m < count; ++m) {
      if (mul) scale[m] = cv[m];
      else if (add) shift[m] = cv[m];
      else if (sub && i == 0) shift[m] = -cv[m];
      else if (sub) scale[m] = -1.0, shift[m] = cv[m];
      else if (cv[m] == 0.0) {
        r.kept.push_back(n.context() + ": divides by zero in channel " + std::to_string(m));
        return false;
      } else {
        scale[m] = 1.0 / cv[m];
      }
    }
    bool zero_shift = true;
    for (double t : shift) zero_shift = zero_shift && t == 0.0;
    // A bare MatMul followed by Add(bias) is already the canonical linear layer: nothing to do.
    if (!zero_shift && !site->can_shift()) continue;
    apply_channel_affine(*site, scale, shift);
    bypass_node(g, n, *n.output(0), y, /*take_name=*/true);
    return true;
  }
  return false;
}

inline void fold_conv_mul_add_in(graph& g, std::int64_t opset, passes::pass_report& r) {
  // Conv -> Mul -> Add folds one node per sweep; repeat until nothing changes.
  for (bool changed = true; changed;) {
    changed = false;
    for (node* n : g.nodes()) {
      if (!(n->is("Mul") || n->is("Add") || n->is("Sub") || n->is("Div"))) continue;
      if (fold_elementwise(g, *n, opset, r)) {
        ++r.rewrites;
        changed = true;
      }
    }
  }
  // Reasons are collected on every sweep; report each once.
  std::vector<std::string> unique;
  for (auto& k : r.kept)
    if (std::find(unique.begin(), unique.end(), k) == unique.end()) unique.push_back(std::move(k));
  r.kept = std::move(unique);
  for (node* n : g.nodes())
    for (graph* sub : n->subgraphs()) fold_conv_mul_add_in(*sub, opset, r);
}

}  // namespace quench::detail

namespace quench::passes {

/// Folds `Mul`, `Add`, `Sub` (either order) and `Div` (by the constant) whose other input is a
/// constant broadcast per output channel — a scalar, [C], [C,1,1], [1,C,1,1], ... for a Conv or
/// ConvTranspose; a scalar, [C] or [1,C] for a Gemm or MatMul — into the preceding `Conv`,
/// `ConvTranspose`, `Gemm`, or `MatMul` + `Add(bias)`, when nothing else reads the intermediate.
/// A Mul scales the weight's output channels and the bias; an Add shifts the bias (a Conv
/// without bias gets one). A bare MatMul absorbs only Mul/Div (it has no bias). The folded
/// operator's output takes the removed node's output name. Weights shared with other nodes are
/// cloned; arithmetic is in double precision. `rewrites` counts removed nodes.
///
///     // x -> Conv(W, b) -> Mul(s[C,1,1]) -> Add(t[1,C,1,1]) -> y
///     quench::passes::fold_conv_mul_add(model);
///     // x -> Conv(W * s, b * s + t) -> y
inline pass_report fold_conv_mul_add(graph& g, std::int64_t opset) {
  detail::check_opset(opset);
  pass_report r;
  detail::fold_conv_mul_add_in(g, opset, r);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline pass_report fold_conv_mul_add(model& m) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) return {};
  return fold_conv_mul_add(m.main_graph(), opset);
}

}  // namespace quench::passes
