#pragma once
// cross_layer_equalization: DFQ's weight equalization (Nagel et al. 2019, "Data-Free Quantization
// Through Weight Equalization and Bias Correction") on the graph. For two layers with an activation
// between them that commutes with positive per-channel scaling (f(s x) = s f(x): Relu, LeakyRelu,
// MaxPool, average pools, a Flatten to [N, C], nothing), output channel i of the first and input channel i of the second are rescaled
// by s_i = sqrt(r1_i / r2_i) (r = max |w| of the channel's weights):
//
//     W1[i, ...] /= s_i,  b1[i] /= s_i,  W2[:, i, ...] *= s_i   ->   both ranges sqrt(r1_i r2_i)
//
// which leaves the float function unchanged (up to float rounding) and evens out the per-channel
// weight ranges, so per-tensor weight quantization loses far less. Depthwise convolutions take part
// on both sides (conv -> dw -> pw chains are equalized pair by pair, repeated until the factors
// settle). Clip/Relu6 and everything else end a chain (they do not commute with scaling).
// Fold BatchNormalization first (passes::fold_batch_norm; quantize_static's clean-up does).
//
//     auto r = quench::recover::equalize(model);
//     // r.pairs: the (producer, consumer) pairs equalized, with their range spread before/after

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"

namespace quench::recover {

struct equalize_options {
  int iterations = 20;             ///< passes over all pairs (each pass converges chains further)
  double tolerance = 1e-4;         ///< stop when no factor moves further than this from 1
  double min_range = 1e-12;        ///< channels whose weights are all ~0 are left alone
};

/// One equalized pair of layers.
struct equalized_pair {
  std::string producer, consumer;
  std::size_t channels = 0;
  /// max_i r_i / min_i r_i of the producer's output channels, before and after (1 = even).
  double spread_before = 0, spread_after = 0;
};

struct equalize_report {
  std::vector<equalized_pair> pairs;
  int passes = 0;
};

namespace detail {

/// A weight view for one layer: which axis holds the channels it produces / consumes.
struct layer_weights {
  node* n = nullptr;
  tensor* w = nullptr;
  tensor* b = nullptr;        ///< may be null (no bias)
  std::int64_t out_axis = 0;  ///< axis of the output channels in w
  std::int64_t in_axis = 1;   ///< axis of the input channels in w (depthwise: the same as out_axis)
};

inline bool private_float_initializer(const value* v) {
  return v && v->is_initializer() && !v->is_graph_input() && v->uses().size() == 1 && v->initializer()->dtype() == dtype::float32;
}

/// The weights of a Conv (group 1 or depthwise) or Gemm whose parameters only it reads.
inline bool layer_of(node& n, layer_weights& out) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
  const bool conv = n.op_type() == "Conv", gemm = n.op_type() == "Gemm";
  if (!conv && !gemm) return false;
  value* w = n.input(1);
  if (!private_float_initializer(w)) return false;
  value* b = n.input(2);
  if (b && !(private_float_initializer(b) && b->initializer()->rank() == 1)) return false;
  tensor& wt = *w->initializer();
  out = {&n, &wt, b ? b->initializer() : nullptr, 0, 1};
  if (conv) {
    if (wt.rank() < 3) return false;
    const std::int64_t group = n.attr_int("group", 1);
    if (group == 1) return true;
    // Depthwise: one input channel per group and one filter per group: channel i in is channel i out.
    if (wt.shape()[1] != 1 || group != wt.shape()[0]) return false;
    out.in_axis = 0;
    return true;
  }
  if (wt.rank() != 2 || n.attr_float("alpha", 1.f) <= 0.f || n.attr_int("transA", 0) != 0) return false;
  const bool trans_b = n.attr_int("transB", 0) != 0;
  out.out_axis = trans_b ? 0 : 1;
  out.in_axis = trans_b ? 1 : 0;
  return true;
}

/// Ops between two layers that commute with a positive per-channel scale. Averages are linear per
/// channel (a MobileNet's head conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm is a pair);
/// Flatten keeps the channel index only on [N, C, 1, 1], which the channel-count check in
/// equalize() enforces (on [N, C, H, W] the Gemm sees C*H*W inputs).
inline bool commutes_with_scaling(const node& n) {
  if (n.is("Relu") || n.is("MaxPool") || n.is("LeakyRelu")) return true;
  if (n.is("GlobalAveragePool") || n.is("AveragePool")) return true;
  if (n.is("Flatten")) return n.attr_int("axis", 1) == 1;
  return false;
}

/// max |w| per index of `axis`.
inline std::vector<double> channel_ranges(const tensor& w, std::int64_t axis) {
  const std::size_t a = static_cast<std::size_t>(axis);
  const std::size_t outer = w.shape().outer(a), dim = static_cast<std::size_t>(w.shape()[a]), inner = w.shape().inner(a);
  std::vector<double> r(dim, 0.0);
  const float* x = w.view<float>().data();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < dim; ++c)
      for (std::size_t i = 0; i < inner; ++i) r[c] = std::max(r[c], static_cast<double>(std::fabs(x[(o * dim + c) * inner + i])));
  return r;
}

/// w[..., c, ...] *= f[c] along `axis`.
inline void scale_channels(tensor& w, std::int64_t axis, const std::vector<double>& f) {
  const std::size_t a = static_cast<std::size_t>(axis);
  const std::size_t outer = w.shape().outer(a), dim = static_cast<std::size_t>(w.shape()[a]), inner = w.shape().inner(a);
  float* x = w.view<float>().data();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < dim; ++c)
      for (std::size_t i = 0; i < inner; ++i) {
        float& v = x[(o * dim + c) * inner + i];
        v = static_cast<float>(static_cast<double>(v) * f[c]);
      }
}

inline double spread(const std::vector<double>& r, double floor) {
  double lo = HUGE_VAL, hi = 0;
  for (double v : r)
    if (v > floor) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  return hi > 0 ? hi / lo : 1.0;
}

}  // namespace detail

/// Finds every equalizable pair in the main graph and equalizes it (see the header comment).
/// Initializers are changed in place; the graph's structure is not.
inline equalize_report equalize(model& m, const equalize_options& opt = {}) {
  graph& g = m.main_graph();
  struct pair_ref {
    detail::layer_weights first, second;
  };
  std::vector<pair_ref> pairs;
  for (node* n : g.nodes()) {
    detail::layer_weights a;
    if (!detail::layer_of(*n, a)) continue;
    // Walk the single-consumer chain of scaling-commuting ops to the next layer.
    value* v = n->output(0);
    node* next = nullptr;
    while (v && !v->is_graph_output() && v->uses().size() == 1 && v->uses()[0].index == 0) {
      node* u = v->uses()[0].user;
      if (detail::commutes_with_scaling(*u)) {
        v = u->output(0);
        continue;
      }
      next = u;
      break;
    }
    detail::layer_weights b;
    if (!next || !detail::layer_of(*next, b)) continue;
    if (a.w->shape()[a.out_axis] != b.w->shape()[b.in_axis]) continue;  // a Flatten-like reshape in between
    pairs.push_back({a, b});
  }

  equalize_report report;
  std::vector<double> before(pairs.size());
  for (std::size_t p = 0; p < pairs.size(); ++p)
    before[p] = detail::spread(detail::channel_ranges(*pairs[p].first.w, pairs[p].first.out_axis), opt.min_range);
  for (int pass = 0; pass < opt.iterations; ++pass) {
    double moved = 0;
    for (const pair_ref& pr : pairs) {
      const auto r1 = detail::channel_ranges(*pr.first.w, pr.first.out_axis);
      const auto r2 = detail::channel_ranges(*pr.second.w, pr.second.in_axis);
      std::vector<double> s(r1.size(), 1.0), inv(r1.size(), 1.0);
      for (std::size_t i = 0; i < r1.size(); ++i) {
        if (r1[i] <= opt.min_range || r2[i] <= opt.min_range) continue;
        s[i] = std::sqrt(r1[i] / r2[i]);
        inv[i] = 1.0 / s[i];
        moved = std::max(moved, std::fabs(std::log(s[i])));
      }
      detail::scale_channels(*pr.first.w, pr.first.out_axis, inv);
      if (pr.first.b) detail::scale_channels(*pr.first.b, 0, inv);
      detail::scale_channels(*pr.second.w, pr.second.in_axis, s);
    }
    report.passes = pass + 1;
    if (moved < opt.tolerance) break;
  }
  for (std::size_t p = 0; p < pairs.size(); ++p) {
    equalized_pair e;
    e.producer = pairs[p].first.n->name();
    e.consumer = pairs[p].second.n->name();
    e.channels = static_cast<std::size_t>(pairs[p].first.w->shape()[pairs[p].first.out_axis]);
    e.spread_before = before[p];
    e.spread_after = detail::spread(detail::channel_ranges(*pairs[p].first.w, pairs[p].first.out_axis), opt.min_range);
    report.pairs.push_back(e);
  }
  return report;
}

}  // namespace quench::recover
