#pragma once
// high_bias_absorption: DFQ's high-bias absorption (Nagel et al. 2019, section 4.1). After a
// folded BatchNorm, a layer's output channel i is about N(mean_i, stddev_i^2) (passes::
// channel_gaussian). When a Relu follows and c_i = max(0, mean_i - 3 stddev_i) > 0, nearly every
// value of the channel is at least c_i, and there
//
//     relu(y_i) = relu(y_i - c_i) + c_i      (exact wherever y_i >= c_i)
//
// so c_i moves out of the first layer's bias into the next layer's: b1_i -= c_i and
// b2 += W2 c (c summed over each input channel's kernel). The activation's range shrinks by c_i
// while the float function stays the same except where y_i < c_i (about 0.13 % of a Gaussian's
// values) and at the next layer's zero-padded borders, which see 0 where the shifted input would
// be -c_i. That is why it is a separate, opt-in step and not part of cross-layer equalization,
// whose function is exact. Between the layers only Relu and MaxPool are allowed (both commute
// with subtracting a per-channel constant; MaxPool only without padding); the second layer is a
// Conv (group 1) or a Gemm, reading nothing but this chain.
//
//     auto stats = report.preprocess.bn_statistics;        // rescaled by CLE if it ran
//     auto r = quench::recover::absorb_high_biases(model, stats);
//     // r.pairs: layers whose biases moved, and the largest c of each

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/graph/model.hpp"
#include "quench/graph/passes/fold_batch_norm.hpp"
#include "quench/recover/cross_layer_equalization.hpp"

namespace quench::recover {

struct absorbed_pair {
  std::string producer, consumer;
  std::size_t channels = 0;  ///< channels with c > 0
  double largest = 0;        ///< largest c moved
};

struct absorption_report {
  std::vector<absorbed_pair> pairs;
};

namespace detail {

/// The float bias only `n` reads (the same rule as equalization's), or null.
inline tensor* private_bias(node& n) {
  value* b = n.input(2);
  return private_float_initializer(b) && b->initializer()->rank() == 1 ? b->initializer() : nullptr;
}

/// The bias of `n`, added as zeros of `channels` when it has none; null when it cannot be changed.
inline tensor* bias_for_absorption(graph& g, node& n, std::int64_t channels) {
  if (n.input(2)) return private_bias(n);
  value& bv = g.add_initializer(tensor(dtype::float32, {channels}, g.unique_name(n.name() + "_bias")));
  while (n.inputs().size() < 2) g.append_input(n, nullptr);
  g.set_input(n, 2, &bv);
  return bv.initializer();
}

}  // namespace detail

/// Absorbs high biases for every layer whose output has statistics in `stats` (see the header
/// comment); `stats` means are lowered by what moved, so they stay true for later steps (data-free
/// bias correction).
inline absorption_report absorb_high_biases(model& m, passes::batch_norm_statistics& stats, double sigmas = 3.0) {
  graph& g = m.main_graph();
  absorption_report report;
  for (node* n : g.nodes()) {
    if (!(n->is("Conv") || n->is("Gemm")) || !n->output(0)) continue;
    if (n->is("Gemm") && (n->attr_float("beta", 1.f) != 1.f || n->attr_float("alpha", 1.f) != 1.f)) continue;
    auto st = stats.find(n->output(0)->name());
    if (st == stats.end()) continue;
    // The chain to the next layer: Relu (required once) and unpadded MaxPools, single readers.
    value* v = n->output(0);
    bool relu = false;
    node* next = nullptr;
    while (v && !v->is_graph_output() && v->uses().size() == 1) {
      node* u = v->uses()[0].user;
      if (v->uses()[0].index != 0) break;
      const auto pads = u->attr_ints("pads", {});
      const bool unpadded = std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; }) &&
                            u->attr_string("auto_pad", "NOTSET") != "SAME_UPPER" && u->attr_string("auto_pad", "NOTSET") != "SAME_LOWER";
      if (u->is("Relu")) {
        relu = true;
      } else if (!(u->is("MaxPool") && unpadded && u->outputs().size() == 1)) {
        next = u;
        break;
      }
      v = u->output(0);
    }
    if (!relu || !next || !(next->is("Conv") || next->is("Gemm")) || next->input(0) != v) continue;
    const value* w2v = next->input(1);
    if (!w2v || !w2v->is_initializer() || w2v->is_graph_input() || w2v->initializer()->dtype() != dtype::float32) continue;
    const tensor& w2 = *w2v->initializer();
    const std::size_t channels = st->second.mean.size();
    std::int64_t out2 = 0;
    if (next->is("Conv")) {
      if (next->attr_int("group", 1) != 1 || w2.rank() < 3 || static_cast<std::size_t>(w2.shape()[1]) != channels) continue;
      out2 = w2.shape()[0];
    } else {
      if (w2.rank() != 2 || next->attr_int("transA", 0) != 0) continue;
      const bool trans = next->attr_int("transB", 0) != 0;
      if (static_cast<std::size_t>(w2.shape()[trans ? 1 : 0]) != channels) continue;
      out2 = w2.shape()[trans ? 0 : 1];
    }
    tensor* b1 = detail::private_bias(*n);
    if (!b1 || b1->size() != channels) continue;
    std::vector<double> c(channels, 0.0);
    std::size_t moved = 0;
    double largest = 0;
    for (std::size_t i = 0; i < channels; ++i) {
      c[i] = std::max(0.0, st->second.mean[i] - sigmas * st->second.stddev[i]);
      if (c[i] > 0) ++moved, largest = std::max(largest, c[i]);
    }
    if (moved == 0) continue;
    tensor* b2 = detail::bias_for_absorption(g, *next, out2);
    if (!b2 || b2->size() != static_cast<std::size_t>(out2)) continue;
    const auto w = w2.view<float>();
    auto bias2 = b2->view<float>();
    for (std::int64_t o = 0; o < out2; ++o) {
      double add = 0;
      if (next->is("Conv")) {
        const std::size_t k = w2.shape().inner(1);
        for (std::size_t i = 0; i < channels; ++i)
          for (std::size_t j = 0; j < k; ++j) add += w[(static_cast<std::size_t>(o) * channels + i) * k + j] * c[i];
      } else {
        const bool trans = next->attr_int("transB", 0) != 0;
        for (std::size_t i = 0; i < channels; ++i)
          add += w[trans ? static_cast<std::size_t>(o) * channels + i : i * static_cast<std::size_t>(out2) + static_cast<std::size_t>(o)] * c[i];
      }
      bias2[static_cast<std::size_t>(o)] = static_cast<float>(bias2[static_cast<std::size_t>(o)] + add);
    }
    auto bias1 = b1->view<float>();
    for (std::size_t i = 0; i < channels; ++i) {
      bias1[i] = static_cast<float>(bias1[i] - c[i]);
      st->second.mean[i] -= c[i];
    }
    report.pairs.push_back({n->name(), next->name(), moved, largest});
  }
  return report;
}

}  // namespace quench::recover
