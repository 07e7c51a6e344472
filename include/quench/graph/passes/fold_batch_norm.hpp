#pragma once
// fold_batch_norm: an inference-mode BatchNormalization after a Conv, ConvTranspose or Gemm is
// folded into that operator's weight and bias.

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/channel_affine.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::passes {

/// What a folded BatchNormalization says about the distribution of its output: channel c is
/// about N(mean[c], stddev[c]^2) on the data it was trained on (its B and |scale|). Data-free
/// bias correction (DFQ, Nagel et al. 2019) estimates a layer's input mean from it.
struct channel_gaussian {
  std::vector<double> mean, stddev;
};
/// Output value name of the folded operator (the BatchNorm's output name) -> its statistics.
using batch_norm_statistics = std::map<std::string, channel_gaussian>;

}  // namespace quench::passes

namespace quench::detail {

/// Per-channel scale and shift of an inference-mode BatchNormalization, or false (with `why`)
/// when it cannot be folded. Throws for a malformed node.
inline bool batch_norm_affine(const node& bn, std::int64_t opset, std::int64_t channels, dtype type,
                              std::vector<double>& scale, std::vector<double>& shift, std::string& why) {
  // Training-mode outputs (running mean/var, saved mean/var) need the batch statistics.
  for (std::size_t i = 1; i < bn.outputs().size(); ++i)
    if (const value* o = bn.output(i); o && (o->has_uses() || o->is_graph_output())) {
      why = "training-mode output '" + o->name() + "' is used";
      return false;
    }
  if (opset >= 14 && bn.attr_int("training_mode", 0) != 0) {
    why = "training_mode = 1 normalizes with batch statistics";
    return false;
  }
  if (opset < 9 && bn.attr_int("spatial", 1) == 0) {
    why = "spatial = 0 normalizes every element separately";
    return false;
  }
  static const char* const names[] = {"scale", "B", "mean", "var"};
  std::vector<double> p[4];
  for (std::size_t i = 0; i < 4; ++i) {
    const value* v = bn.input(i + 1);
    const tensor* t = constant_tensor(v);
    if (!t) {
      why = std::string(names[i]) + " '" + v->name() + "' is not a constant";
      return false;
    }
    if (t->dtype() != type) {
      why = std::string(names[i]) + " '" + v->name() + "' is " + to_string(t->dtype()) + ", the weight " + to_string(type);
      return false;
    }
    if (t->rank() != 1 || t->shape()[0] != channels)
      throw_shape_mismatch(bn.context() + " input '" + names[i] + "'",
                           "shape [" + std::to_string(channels) + "] (the channels of the operator before it)",
                           to_string(t->shape()));
    p[i] = to_doubles(*t);
  }
  const double eps = bn.attr_float("epsilon", 1e-5f);
  const auto c = static_cast<std::size_t>(channels);
  scale.resize(c);
  shift.resize(c);
  for (std::size_t m = 0; m < c; ++m) {
    const double var = p[3][m] + eps;
    if (!(var > 0.0))
      throw_error(errc::invalid_value, bn.context(),
                  "var + epsilon is " + std::to_string(var) + " for channel " + std::to_string(m) + " (must be positive)");
    scale[m] = p[0][m] / std::sqrt(var);
    shift[m] = p[1][m] - p[2][m] * scale[m];
  }
  return true;
}

inline void fold_batch_norm_in(graph& g, std::int64_t opset, passes::pass_report& r, passes::batch_norm_statistics* stats) {
  for (node* n : g.nodes()) {
    for (graph* sub : n->subgraphs()) fold_batch_norm_in(*sub, opset, r, nullptr);  // names are per graph
    if (!n->is("BatchNormalization")) continue;
    if (n->inputs().size() != 5)
      throw_error(errc::invalid_model, n->context(),
                  "expected 5 inputs (X, scale, B, mean, var), found " + std::to_string(n->inputs().size()));
    for (std::size_t i = 0; i < 5; ++i)
      if (!n->input(i)) throw_error(errc::invalid_model, n->context(), "input " + std::to_string(i) + " is missing");
    if (!n->output(0)) throw_error(errc::invalid_model, n->context(), "has no output Y");
    std::string why;
    const auto site = find_linear_site(*n->input(0), /*allow_matmul=*/false, why);
    if (!site) {
      const node* p = n->input(0)->producer();
      r.kept.push_back(n->context() + ": " +
                       (!why.empty() ? why : "its input comes from " + (p ? p->context() : "no Conv, ConvTranspose or Gemm")));
      continue;
    }
    std::vector<double> scale, shift;
    if (!batch_norm_affine(*n, opset, site->channels, site->type, scale, shift, why)) {
      r.kept.push_back(n->context() + ": " + why);
      continue;
    }
    if (stats) {
      passes::channel_gaussian cg;
      cg.mean = to_doubles(*constant_tensor(n->input(2)));
      for (double v : to_doubles(*constant_tensor(n->input(1)))) cg.stddev.push_back(std::fabs(v));
      (*stats)[n->output(0)->name()] = std::move(cg);
    }
    apply_channel_affine(*site, scale, shift);
    value& y = *site->op->output(0);
    bypass_node(g, *n, *n->output(0), y, /*take_name=*/true);
    ++r.rewrites;
  }
}

}  // namespace quench::detail

namespace quench::passes {

/// Folds every inference-mode `BatchNormalization` whose input is produced by a `Conv`,
/// `ConvTranspose` (weight [C_in, C_out/group, ...], grouped or not) or `Gemm` (either transB,
/// any alpha/beta) and read by nothing else, in `g` and its sub-graphs. With
/// s = scale / sqrt(var + epsilon) (epsilon of that node) the weight's output channel m is
/// multiplied by s[m] and the bias becomes (b - mean) * s + B; a Conv without bias gets one, a
/// Gemm's C becomes per-channel with beta = 1. The operator's output takes the BatchNorm's
/// output name. Weights shared with other nodes are cloned; folding is in double precision.
///
/// Kept (with a reason in the report): parameters that are not initializers, types other than
/// float/double, training mode, spatial = 0 (opset < 9), intermediates with other consumers.
/// Throws for parameters whose shape is not [C] or a non-positive var + epsilon. `rewrites`
/// counts folded BatchNormalization nodes. With `stats`, each main-graph fold records its output's
/// channel statistics there (see channel_gaussian).
///
///     // x -> Conv(W) -> BatchNormalization(scale, B, mean, var) -> y
///     quench::passes::fold_batch_norm(model);
///     // x -> Conv(W', B') -> y
inline pass_report fold_batch_norm(graph& g, std::int64_t opset, batch_norm_statistics* stats = nullptr) {
  detail::check_opset(opset);
  pass_report r;
  detail::fold_batch_norm_in(g, opset, r, stats);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline pass_report fold_batch_norm(model& m, batch_norm_statistics* stats = nullptr) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) return {};
  return fold_batch_norm(m.main_graph(), opset, stats);
}

}  // namespace quench::passes
