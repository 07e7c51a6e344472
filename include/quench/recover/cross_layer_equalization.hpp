#pragma once
// cross_layer_equalization: DFQ's weight equalization (Nagel et al. 2019, "Data-Free Quantization
// Through Weight Equalization and Bias Correction") on the graph. For two layers with an activation
// between them that commutes with positive per-channel scaling (f(s x) = s f(x): Relu, LeakyRelu,
// MaxPool, average pools, a Flatten to [N, C], nothing), output channel i of the first and input
// channel i of the second are rescaled by s_i = sqrt(r1_i / r2_i) (r = max |w| of the channel's
// weights):
//
//     W1[i, ...] /= s_i,  b1[i] /= s_i,  W2[:, i, ...] *= s_i   ->   both ranges sqrt(r1_i r2_i)
//
// which leaves the float function unchanged (up to float rounding) and evens out the per-channel
// weight ranges, so per-tensor weight quantization loses far less. Depthwise convolutions take part
// on both sides (conv -> dw -> pw chains are equalized pair by pair, repeated until the factors
// settle).
//
// Max(x, c) and Min(x, c) with a constant c (tf2onnx writes such floors: openWakeWord repeats
// Conv -> LeakyRelu -> Max(., -0.4) -> MaxPool -> Conv) commute too once c is made per channel: for
// s_i > 0, max(x_i / s_i, c_i / s_i) = max(x_i, c_i) / s_i, while max(x_i / s_i, c) is not. So c
// must broadcast to one value per channel (one element, or C on the channel axis and ones
// elsewhere); each such Max/Min of an equalized pair gets a private [1, C, 1, ...] copy, scaled
// with the producer's output channels, and the original (often one initializer shared by every
// Max) stays as it is for its other readers (it goes once none is left). Clip/Relu6 (ONNX's Clip
// takes only scalar bounds, so they cannot become per channel), a Max/Min of a non-constant, and
// everything else end a chain.
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
  /// The Max/Min nodes in between whose constants were replaced by private per-channel copies.
  std::vector<std::string> max_min;
  /// Factor each output channel of the producer was multiplied by, over all passes (what its
  /// output's statistics, e.g. a folded BatchNorm's, must be multiplied by too).
  std::vector<double> output_scale;
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

/// Whether constant `c` broadcasts to one value per channel of a rank-`rank` activation with
/// `channels` channels on axis 1 without changing the activation's shape: one element, or
/// `channels` elements on the (right-aligned) channel axis and ones elsewhere.
inline bool per_channel_broadcast(const tensor& c, std::size_t rank, std::int64_t channels) {
  if (c.rank() > rank) return false;  // would broadcast the activation to a higher rank
  if (c.shape().numel() == 1) return true;
  const std::size_t lead = rank - c.rank();
  for (std::size_t k = 0; k < c.rank(); ++k)
    if (c.shape()[k] != (lead + k == 1 ? channels : 1)) return false;
  return true;
}

/// A Max or Min reading the chain value at input `pos` whose other inputs are all float32
/// initializers (not graph inputs, which a caller may override) that broadcast per channel.
inline bool max_min_with_constants(const node& n, int pos, std::size_t rank, std::int64_t channels) {
  if (!n.is("Max") && !n.is("Min")) return false;
  if (pos < 0 || n.outputs().size() != 1 || !n.output(0)) return false;
  for (std::size_t i = 0; i < n.inputs().size(); ++i) {
    if (i == static_cast<std::size_t>(pos)) continue;
    const value* c = n.input(i);
    if (!c || !c->is_initializer() || c->is_graph_input() || c->initializer()->dtype() != dtype::float32)
      return false;
    if (!per_channel_broadcast(*c->initializer(), rank, channels)) return false;
  }
  return true;
}

/// Gives every constant input of Max/Min `n` (all inputs but `pos`) a private [1, C, 1, ...] copy
/// named after it; an original no other reader keeps is removed. Returns the copies.
inline std::vector<tensor*> make_constants_per_channel(graph& g, node& n, int pos, std::size_t rank,
                                                       std::int64_t channels) {
  std::vector<tensor*> out;
  for (std::size_t i = 0; i < n.inputs().size(); ++i) {
    if (i == static_cast<std::size_t>(pos)) continue;
    value* c = n.input(i);
    std::vector<std::int64_t> dims(rank, 1);
    dims[1] = channels;
    tensor t(dtype::float32, shape(std::move(dims)), g.unique_name(c->name() + "_per_channel"));
    const auto src = c->initializer()->view<float>();
    auto dst = t.view<float>();
    for (std::size_t k = 0; k < dst.size(); ++k) dst[k] = src[src.size() == 1 ? 0 : k];
    value& copy = g.add_initializer(std::move(t));
    g.set_input(n, i, &copy);
    if (!c->has_uses() && !c->is_graph_output()) g.remove_value(*c);
    out.push_back(copy.initializer());
  }
  return out;
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
/// Weights and biases are changed in place; the only structural change is that each Max/Min with
/// a constant inside an equalized pair reads a new private per-channel initializer.
inline equalize_report equalize(model& m, const equalize_options& opt = {}) {
  graph& g = m.main_graph();
  struct pair_ref {
    detail::layer_weights first, second;
    std::vector<tensor*> constants;  ///< per-channel Max/Min constants, scaled with first's outputs
    std::vector<std::string> max_min;
  };
  std::vector<pair_ref> pairs;
  for (node* n : g.nodes()) {
    detail::layer_weights a;
    if (!detail::layer_of(*n, a)) continue;
    // Walk the single-consumer chain of scaling-commuting ops to the next layer.
    const std::int64_t channels = a.w->shape()[a.out_axis];
    std::size_t rank = n->is("Conv") ? a.w->rank() : 2;  // of the activation: [N, C, spatial...] or [N, C]
    struct max_min_ref {
      use u;
      std::size_t rank;  ///< of the activation at the Max/Min (a Flatten may come after it)
    };
    std::vector<max_min_ref> max_min;
    value* v = n->output(0);
    node* next = nullptr;
    while (v && !v->is_graph_output() && v->uses().size() == 1) {
      const use u = v->uses()[0];
      if (u.index == 0 && detail::commutes_with_scaling(*u.user)) {
        if (u.user->is("Flatten")) rank = 2;
        v = u.user->output(0);
        continue;
      }
      if (detail::max_min_with_constants(*u.user, u.index, rank, channels)) {
        max_min.push_back({u, rank});
        v = u.user->output(0);
        continue;
      }
      if (u.index == 0) next = u.user;
      break;
    }
    detail::layer_weights b;
    if (!next || !detail::layer_of(*next, b)) continue;
    if (channels != b.w->shape()[b.in_axis]) continue;  // a Flatten-like reshape in between
    pair_ref pr{a, b, {}, {}};
    // Only now, with the pair certain, do the Max/Min constants get their private copies.
    for (const max_min_ref& r : max_min) {
      for (tensor* c : detail::make_constants_per_channel(g, *r.u.user, r.u.index, r.rank, channels))
        pr.constants.push_back(c);
      pr.max_min.push_back(r.u.user->name());
    }
    pairs.push_back(std::move(pr));
  }

  equalize_report report;
  std::vector<double> before(pairs.size());
  std::vector<std::vector<double>> total(pairs.size());
  for (std::size_t p = 0; p < pairs.size(); ++p) total[p].assign(static_cast<std::size_t>(pairs[p].first.w->shape()[pairs[p].first.out_axis]), 1.0);
  for (std::size_t p = 0; p < pairs.size(); ++p)
    before[p] = detail::spread(detail::channel_ranges(*pairs[p].first.w, pairs[p].first.out_axis), opt.min_range);
  for (int pass = 0; pass < opt.iterations; ++pass) {
    double moved = 0;
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      const pair_ref& pr = pairs[p];
      const auto r1 = detail::channel_ranges(*pr.first.w, pr.first.out_axis);
      const auto r2 = detail::channel_ranges(*pr.second.w, pr.second.in_axis);
      std::vector<double> s(r1.size(), 1.0), inv(r1.size(), 1.0);
      for (std::size_t i = 0; i < r1.size(); ++i) {
        if (r1[i] <= opt.min_range || r2[i] <= opt.min_range) continue;
        s[i] = std::sqrt(r1[i] / r2[i]);
        inv[i] = 1.0 / s[i];
        total[p][i] *= inv[i];
        moved = std::max(moved, std::fabs(std::log(s[i])));
      }
      detail::scale_channels(*pr.first.w, pr.first.out_axis, inv);
      if (pr.first.b) detail::scale_channels(*pr.first.b, 0, inv);
      for (tensor* c : pr.constants) detail::scale_channels(*c, 1, inv);  // max(x/s, c/s) = max(x, c)/s
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
    e.max_min = pairs[p].max_min;
    e.output_scale = std::move(total[p]);
    report.pairs.push_back(e);
  }
  return report;
}

}  // namespace quench::recover
