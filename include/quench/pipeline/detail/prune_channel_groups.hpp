#pragma once
// Channel groups: the sets of weights that index one channel space, found on an ONNX graph so
// that a permutation or a removal of channels can be applied to all of them at once without
// changing what the model computes.
//
// A group starts at the output of a "source" -- a Conv / ConvTranspose (group 1) / Gemm / MatMul
// whose weight is an initializer, its output channels one space -- and grows through the
// operators that treat channels independently:
//
//   elementwise   Relu, Clip, HardSigmoid, HardSwish, Sigmoid, Tanh, Erf, ... (one input),
//                 Add, Sub, Mul, Div, Max, Min, PRelu, Pow (the others: a constant broadcast
//                 along the channel, a per-channel constant, or another value of the group)
//   per-channel   BatchNormalization, InstanceNormalization, depthwise Conv (group = C,
//                 one filter per channel): their parameters are indexed by the channel
//   spatial       MaxPool, AveragePool, Global*Pool, LpPool, Resize/Upsample (channel scale 1),
//                 Flatten after a global pool (channel order survives [N, C, 1, 1] -> [N, C])
//
// When an elementwise operator joins a value of the group with another computed value, that value
// is pulled in too, back to its own sources (a residual Add couples the two branches' last convs; a
// squeeze-excitation Mul couples the gate's conv). Every consumer of a group value must be one of
// the above or a "sink": a Conv (group 1), ConvTranspose, Gemm (transA = 0) or MatMul reading the
// value as its data input, whose weight's input-channel axis is then part of the group. Anything
// else -- a graph output, Concat, Reshape, Transpose, LayerNormalization, a weight shared with
// nodes outside the group -- makes the group unusable, and the reason is kept for the report.
//
// Values are tracked with their channel axis counted from the end (-3 for NCHW, -1 for [N, C] and
// for a transformer's [B, T, C]), which is how ONNX broadcasting aligns shapes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/node.hpp"
#include "quench/graph/value.hpp"
#include "quench/sparsity/nm_mask.hpp"

namespace quench::pipeline::detail {

/// A constant a group may have to edit: an initializer, or the `value` attribute of a Constant node.
struct channel_constant {
  value* v = nullptr;           ///< the value nodes read
  tensor* data = nullptr;       ///< its data (the initializer or the attribute tensor)
  node* constant_node = nullptr;  ///< the Constant node, if the data lives there
};

/// The constant behind `v` (initializer or Constant node output), or an empty result.
inline std::optional<channel_constant> constant_behind(value* v) {
  if (!v) return std::nullopt;
  if (v->is_initializer()) return channel_constant{v, v->initializer(), nullptr};
  node* p = v->producer();
  if (p && p->is("Constant") && p->inputs().empty()) {
    attribute* a = p->find_attribute("value");
    if (a && a->type == attribute_type::tensor && a->t) return channel_constant{v, a->t.get(), p};
  }
  return std::nullopt;
}

/// A weight or parameter of a group and the axis along which it holds the group's channels.
struct channel_tensor {
  channel_constant c;
  std::size_t axis = 0;
  node* user = nullptr;        ///< the node reading it
  std::string role;            ///< "weight", "bias", "scale", ... for reports
};

struct channel_endpoint {
  node* n = nullptr;
  channel_tensor weight;  ///< along its output (source) or input (sink) channel axis
};

/// One channel space (see the header comment).
struct channel_group {
  std::int64_t channels = 0;
  std::vector<channel_endpoint> sources, sinks;
  std::vector<channel_tensor> params;   ///< source biases, BN / IN parameters, depthwise weights, per-channel constants
  std::vector<node*> nodes;             ///< the channel-wise operators in between
  std::vector<std::pair<value*, int>> values;  ///< every value of the group and its channel axis from the end
  std::vector<node*> depthwise;         ///< depthwise Convs whose `group` attribute counts the channels
  std::string failure;                  ///< why the group cannot be changed ("" = it can)
  std::string not_zero_preserving;      ///< why removing channels would change the result ("" = it would not)

  bool usable() const noexcept { return failure.empty(); }
  bool has_node(const node* x) const {
    for (const auto& s : sources)
      if (s.n == x) return true;
    for (const auto& s : sinks)
      if (s.n == x) return true;
    return std::find(nodes.begin(), nodes.end(), x) != nodes.end();
  }
};

namespace channel_ops {

inline bool is_unary(const node& n) {
  static const std::set<std::string> ops = {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu",
                                            "Celu", "Softplus", "Softsign", "Erf", "Identity", "Dropout", "Neg", "Abs", "Sqrt",
                                            "Exp", "Gelu", "Mish", "Clip", "ThresholdedRelu", "Reciprocal"};
  return (n.domain().empty() || n.domain() == "ai.onnx") && ops.count(n.op_type());
}
inline bool is_binary(const node& n) {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu", "Pow"};
  return (n.domain().empty() || n.domain() == "ai.onnx") && ops.count(n.op_type());
}
inline bool is_pool(const node& n) {
  return n.is("MaxPool") || n.is("AveragePool") || n.is("LpPool") || n.is("GlobalAveragePool") || n.is("GlobalMaxPool") ||
         n.is("GlobalLpPool");
}
inline bool is_global_pool(const node& n) { return n.is("GlobalAveragePool") || n.is("GlobalMaxPool") || n.is("GlobalLpPool"); }
inline bool is_matrix_op(const node& n) { return n.is("Conv") || n.is("ConvTranspose") || n.is("Gemm") || n.is("MatMul"); }

/// Whether a scalar-ish constant is all zeros / all >= 0 / all <= 0 (for Clip bounds and friends).
inline bool all_of_constant(const tensor& t, bool (*pred)(double)) {
  const std::vector<float> v = sparsity::float_values(t);
  return std::all_of(v.begin(), v.end(), [&](float x) { return pred(x); });
}

}  // namespace channel_ops

/// Depthwise Conv: group == input channels == output channels, one filter per channel.
inline bool is_depthwise(const node& n, std::int64_t channels) {
  if (!n.is("Conv")) return false;
  const auto w = constant_behind(n.input(1));
  if (!w || w->data->rank() < 3) return false;
  const std::int64_t group = n.attr_int("group", 1);
  return group > 1 && group == channels && w->data->shape()[0] == channels && w->data->shape()[1] == 1;
}

class channel_group_builder {
 public:
  explicit channel_group_builder(graph& g) : g_(g) {}

  /// The group whose first source is `start` (a source-capable node).
  channel_group build(node& start) {
    grp_ = channel_group{};
    axis_.clear();
    rank_.clear();
    unit_spatial_.clear();
    visited_.clear();
    queue_.clear();
    if (add_source(start)) {
      while (!queue_.empty() && grp_.usable()) {
        value* v = queue_.front();
        queue_.pop_front();
        forward(*v);
      }
    }
    if (grp_.usable()) check_constants_owned();
    if (grp_.usable()) check_zero_preserving();
    return std::move(grp_);
  }

  /// Whether `n` can start a group: a matrix op with an initializer weight at input 1.
  static bool source_capable(const node& n) {
    if (!channel_ops::is_matrix_op(n) || !n.output(0)) return false;
    auto w = constant_behind(n.input(1));
    if (!w || !n.input(0)) return false;
    if (n.is("MatMul")) return w->data->rank() == 2;
    if (n.is("Gemm")) return w->data->rank() == 2 && n.attr_int("transA", 0) == 0;
    return w->data->rank() >= 3 && n.attr_int("group", 1) == 1;
  }

 private:
  bool fail(const std::string& why) {
    if (grp_.failure.empty()) grp_.failure = why;
    return false;
  }

  bool check_count(std::int64_t c, const std::string& what) {
    if (grp_.channels == 0) grp_.channels = c;
    if (c != grp_.channels)
      return fail(what + " has " + std::to_string(c) + " channels where the group has " + std::to_string(grp_.channels));
    return true;
  }

  int rank_of(value& v) const {
    auto it = rank_.find(&v);
    if (it != rank_.end() && it->second > 0) return it->second;
    if (v.dims()) return static_cast<int>(v.dims()->size());
    return -1;
  }

  /// Adds `v` to the group with channel axis `caxis` (from the end); queues its uses.
  bool add_value(value& v, int caxis, int rank, bool unit_spatial) {
    auto it = axis_.find(&v);
    if (it != axis_.end()) {
      if (it->second != caxis) return fail("value '" + v.name() + "' is reached with two different channel axes");
      return true;
    }
    if (v.is_graph_output()) return fail("value '" + v.name() + "' is a graph output");
    if (v.is_graph_input() || v.is_initializer() || v.is_outer_ref()) return fail("value '" + v.name() + "' is not computed in the graph");
    if (rank < 0 && v.dims()) rank = static_cast<int>(v.dims()->size());
    if (rank > 0 && rank + caxis < 0) return fail("value '" + v.name() + "' has rank " + std::to_string(rank) + ", too low for its channel axis");
    if (v.dims() && rank > 0) {
      const auto& d = (*v.dims())[static_cast<std::size_t>(rank + caxis)];
      if (d.value && !check_count(*d.value, "value '" + v.name() + "'")) return false;
    }
    axis_[&v] = caxis;
    rank_[&v] = rank;
    if (unit_spatial) unit_spatial_.insert(&v);
    grp_.values.emplace_back(&v, caxis);
    queue_.push_back(&v);
    return true;
  }

  bool add_tensor(std::vector<channel_tensor>& list, const channel_constant& c, std::size_t axis, node& user, const std::string& role) {
    if (axis >= c.data->rank()) return fail(user.context() + " " + role + " '" + c.v->name() + "' has no axis " + std::to_string(axis));
    if (!check_count(c.data->shape()[axis], user.context() + " " + role + " '" + c.v->name() + "'")) return false;
    list.push_back(channel_tensor{c, axis, &user, role});
    return true;
  }

  /// `n` produces group channels at its output (a Conv's filters, a Gemm's output features).
  bool add_source(node& n) {
    if (!source_capable(n)) return fail(n.context() + " cannot define a channel space (weight not an initializer, grouped, or transposed input)");
    if (visited_source_.count(&n)) return true;
    visited_source_.insert(&n);
    const auto w = *constant_behind(n.input(1));
    std::size_t out_axis = 0;
    int caxis = -1, rank = -1;
    if (n.is("Conv")) out_axis = 0, rank = static_cast<int>(w.data->rank()), caxis = 1 - rank;
    else if (n.is("ConvTranspose")) out_axis = 1, rank = static_cast<int>(w.data->rank()), caxis = 1 - rank;
    else if (n.is("Gemm")) out_axis = n.attr_int("transB", 0) ? 0 : 1, rank = 2;
    else out_axis = 1;  // MatMul [K, N]
    channel_endpoint src{&n, {w, out_axis, &n, "weight"}};
    if (!check_count(w.data->shape()[out_axis], n.context() + " weight '" + w.v->name() + "'")) return false;
    grp_.sources.push_back(src);
    if (n.inputs().size() > 2 && n.input(2)) {
      auto b = constant_behind(n.input(2));
      if (!b) return fail(n.context() + " bias is not a constant");
      if (n.is("Gemm")) {
        // C broadcasts to [M, N]: [N] or [1, N] index the channels, a scalar does not.
        const auto& s = b->data->shape();
        if (s.rank() == 1 && s[0] == grp_.channels) {
          if (!add_tensor(grp_.params, *b, 0, n, "bias")) return false;
        } else if (s.rank() == 2 && s[0] == 1 && s[1] == grp_.channels) {
          if (!add_tensor(grp_.params, *b, 1, n, "bias")) return false;
        } else if (b->data->size() != 1) {
          return fail(n.context() + " bias C has shape " + to_string(s) + ", not per output channel");
        }
      } else if (!add_tensor(grp_.params, *b, 0, n, "bias")) {
        return false;
      }
    }
    return add_value(*n.output(0), caxis, rank, false);
  }

  /// `n` reads group channels at its data input (input 0) through its weight's input axis.
  bool add_sink(node& n, value& v) {
    if (!channel_ops::is_matrix_op(n)) return fail(n.context() + " is not a matrix operator");
    const auto w = constant_behind(n.input(1));
    if (!w) return fail(n.context() + " weight is not a constant");
    const int caxis = axis_.at(&v), rank = rank_of(v);
    std::size_t in_axis = 0;
    if (n.is("Conv") || n.is("ConvTranspose")) {
      if (n.attr_int("group", 1) != 1) return fail(n.context() + " is a grouped convolution");
      if (caxis != 1 - static_cast<int>(w->data->rank())) return fail(n.context() + " reads the channels on another axis");
      in_axis = n.is("Conv") ? 1 : 0;
    } else if (n.is("Gemm")) {
      if (n.attr_int("transA", 0) != 0) return fail(n.context() + " has transA = 1");
      if (caxis != -1) return fail(n.context() + " reads the channels on another axis");
      in_axis = n.attr_int("transB", 0) ? 1 : 0;
    } else {
      if (w->data->rank() != 2) return fail(n.context() + " has a batched weight");
      if (caxis != -1) return fail(n.context() + " reads the channels on another axis");
      in_axis = 0;
    }
    (void)rank;
    if (!check_count(w->data->shape()[in_axis], n.context() + " weight '" + w->v->name() + "'")) return false;
    grp_.sinks.push_back(channel_endpoint{&n, {*w, in_axis, &n, "weight"}});
    return true;
  }

  /// `other` meets a group value of axis `caxis` in an elementwise node `n`: a constant that
  /// broadcasts along the channel, a per-channel constant, or a computed value pulled into the group.
  bool join_operand(node& n, value& other, int caxis, int rank) {
    if (auto c = constant_behind(&other)) {
      const auto& s = c->data->shape();
      const int pos = static_cast<int>(s.rank()) + caxis;
      if (pos < 0 || s[static_cast<std::size_t>(pos)] == 1) return true;  // same for every channel
      return add_tensor(grp_.params, *c, static_cast<std::size_t>(pos), n, "operand");
    }
    return pull(other, caxis, rank);
  }

  /// `v` must carry the group's channels: bring it and whatever computes it into the group.
  bool pull(value& v, int caxis, int rank) {
    if (axis_.count(&v)) {
      if (axis_.at(&v) != caxis) return fail("value '" + v.name() + "' is reached with two different channel axes");
      return true;
    }
    node* p = v.producer();
    if (!p) return fail("value '" + v.name() + "' is not computed in the graph");
    if (v.producer_output() != 0) return fail(p->context() + " output " + std::to_string(v.producer_output()) + " joins the group");
    if (source_capable(*p) && !(p->is("Conv") && is_depthwise(*p, grp_.channels))) return add_source(*p);
    return visit(*p, &v, caxis, rank);
  }

  /// Forward: every use of group value `v`.
  void forward(value& v) {
    if (v.is_graph_output()) {
      fail("value '" + v.name() + "' is a graph output");
      return;
    }
    const int caxis = axis_.at(&v);
    const int rank = rank_of(v);
    for (const use& u : v.uses()) {
      if (!grp_.usable()) return;
      node& n = *u.user;
      if (u.index == use::implicit_use) {
        fail(n.context() + " reads '" + v.name() + "' inside a sub-graph");
        return;
      }
      if (channel_ops::is_matrix_op(n) && u.index == 0 && !(n.is("Conv") && is_depthwise(n, grp_.channels))) {
        if (!sink_seen_.insert(&n).second) continue;
        add_sink(n, v);
        continue;
      }
      if (channel_ops::is_matrix_op(n) && u.index != 0 && !(n.is("Conv") && is_depthwise(n, grp_.channels))) {
        fail(n.context() + " reads '" + v.name() + "' as a weight");
        return;
      }
      visit(n, &v, caxis, rank);
    }
  }

  /// A channel-wise node `n`, reached through `via` (one of its inputs or its output 0).
  bool visit(node& n, value* via, int caxis, int rank) {
    if (visited_.count(&n)) return true;
    visited_.insert(&n);
    (void)via;
    auto out = [&](int out_caxis, int out_rank, bool unit) -> bool {
      if (!n.output(0)) return fail(n.context() + " has no output");
      for (std::size_t i = 1; i < n.outputs().size(); ++i)
        if (n.output(i) && (n.output(i)->has_uses() || n.output(i)->is_graph_output()))
          return fail(n.context() + " output " + std::to_string(i) + " is used");
      return add_value(*n.output(0), out_caxis, out_rank, unit);
    };
    if (n.is("Conv") && is_depthwise(n, grp_.channels)) {
      const auto w = constant_behind(n.input(1));
      if (caxis != 1 - static_cast<int>(w->data->rank())) return fail(n.context() + " reads the channels on another axis");
      grp_.nodes.push_back(&n);
      grp_.depthwise.push_back(&n);
      if (!add_tensor(grp_.params, *w, 0, n, "weight")) return false;
      if (n.inputs().size() > 2 && n.input(2)) {
        auto b = constant_behind(n.input(2));
        if (!b) return fail(n.context() + " bias is not a constant");
        if (!add_tensor(grp_.params, *b, 0, n, "bias")) return false;
      }
      if (!pull(*n.input(0), caxis, rank)) return false;
      return out(caxis, rank, false);
    }
    if (n.is("BatchNormalization") || n.is("InstanceNormalization")) {
      if (!n.input(0)) return fail(n.context() + " has no input");
      const int r = rank > 0 ? rank : rank_of(*n.input(0));
      if (r <= 0 || caxis != 1 - r) return fail(n.context() + " normalizes axis 1, which is not the channel axis here");
      grp_.nodes.push_back(&n);
      const std::size_t params = n.is("BatchNormalization") ? 5 : 3;
      static const char* names[] = {"", "scale", "B", "mean", "var"};
      for (std::size_t i = 1; i < params; ++i) {
        auto c = constant_behind(n.input(i));
        if (!c) return fail(n.context() + " parameter " + std::to_string(i) + " is not a constant");
        if (!add_tensor(grp_.params, *c, 0, n, names[i])) return false;
      }
      if (!pull(*n.input(0), caxis, r)) return false;
      return out(caxis, r, false);
    }
    if (channel_ops::is_unary(n)) {
      for (std::size_t i = 1; i < n.inputs().size(); ++i)  // Clip bounds, Dropout ratio/mode
        if (n.input(i) && !constant_behind(n.input(i))) return fail(n.context() + " input " + std::to_string(i) + " is not a constant");
      grp_.nodes.push_back(&n);
      if (!n.input(0) || !pull(*n.input(0), caxis, rank)) return false;
      return out(caxis, rank, unit_spatial_.count(n.input(0)) > 0);
    }
    if (channel_ops::is_binary(n)) {
      if (n.inputs().size() != 2 || !n.input(0) || !n.input(1)) return fail(n.context() + " does not have two inputs");
      grp_.nodes.push_back(&n);
      if (n.is("Pow") && !constant_behind(n.input(1))) return fail(n.context() + " has a computed exponent");
      int out_rank = rank;
      for (int i = 0; i < 2; ++i) {
        value& x = *n.input(static_cast<std::size_t>(i));
        const int r = rank_of(x);
        if (r > out_rank) out_rank = r;
        if (!join_operand(n, x, caxis, rank)) return false;
      }
      const bool unit = unit_spatial_.count(n.input(0)) && unit_spatial_.count(n.input(1));
      return out(caxis, out_rank, unit);
    }
    if (channel_ops::is_pool(n)) {
      grp_.nodes.push_back(&n);
      const int r = rank > 0 ? rank : rank_of(*n.input(0));
      if (r <= 0 || caxis != 1 - r) return fail(n.context() + " pools a layout whose channel axis is not 1");
      if (!pull(*n.input(0), caxis, r)) return false;
      return out(caxis, r, channel_ops::is_global_pool(n));
    }
    if (n.is("Resize") || n.is("Upsample")) {
      grp_.nodes.push_back(&n);
      const int r = rank > 0 ? rank : rank_of(*n.input(0));
      if (r <= 0 || caxis != 1 - r) return fail(n.context() + " resizes a layout whose channel axis is not 1");
      // The channel scale must be 1 (or the size the channel count): then it only touches space.
      for (std::size_t i = 1; i < n.inputs().size(); ++i) {
        if (!n.input(i)) continue;
        auto c = constant_behind(n.input(i));
        if (!c) return fail(n.context() + " input " + std::to_string(i) + " is not a constant");
        if (c->data->size() == static_cast<std::size_t>(r) && c->data->dtype() == dtype::float32 && c->data->view<float>()[1] != 1.f)
          return fail(n.context() + " scales the channel axis");
        if (c->data->size() == static_cast<std::size_t>(r) && c->data->dtype() == dtype::int64 &&
            c->data->view<std::int64_t>()[1] != grp_.channels)
          return fail(n.context() + " resizes the channel axis");
      }
      if (!pull(*n.input(0), caxis, r)) return false;
      return out(caxis, r, false);
    }
    if (n.is("Flatten")) {
      grp_.nodes.push_back(&n);
      const int r = rank > 0 ? rank : rank_of(*n.input(0));
      const std::int64_t axis = n.attr_int("axis", 1);
      const bool keeps = (r == 2 && caxis == -1 && axis == 1) ||
                         (r > 2 && caxis == 1 - r && axis == 1 && unit_spatial_.count(n.input(0)));
      if (!keeps) return fail(n.context() + " mixes the channels with other axes");
      if (!pull(*n.input(0), caxis, r)) return false;
      return out(-1, 2, false);
    }
    return fail(n.context() + " is not channel-wise");
  }

  /// Weights and parameters may be read by nodes of the group only, and each once per axis.
  void check_constants_owned() {
    std::map<value*, std::set<std::size_t>> axes;
    auto check = [&](const channel_tensor& t) {
      axes[t.c.v].insert(t.axis);
      for (const use& u : t.c.v->uses())
        if (!grp_.has_node(u.user)) {
          fail("constant '" + t.c.v->name() + "' is also read by " + u.user->context() + ", outside the group");
          return;
        }
      if (t.c.v->is_graph_output()) fail("constant '" + t.c.v->name() + "' is a graph output");
    };
    for (const auto& s : grp_.sources) check(s.weight);
    for (const auto& s : grp_.sinks) check(s.weight);
    for (const auto& p : grp_.params) check(p);
    // A per-channel constant read by two nodes of the group would be edited twice.
    std::map<std::pair<value*, std::size_t>, int> edits;
    for (const auto& p : grp_.params) ++edits[{p.c.v, p.axis}];
    for (const auto& s : grp_.sources) ++edits[{s.weight.c.v, s.weight.axis}];
    for (const auto& s : grp_.sinks) ++edits[{s.weight.c.v, s.weight.axis}];
    for (const auto& [k, count] : edits)
      if (count > 1) fail("constant '" + k.first->name() + "' is read by several nodes of the group");
  }

  /// For channel removal: a removed channel must reach every sink as exact zeros once its source
  /// filters, biases and per-channel parameters are zeroed, or removing it would change the sinks'
  /// sums. Records the first operator that breaks this.
  void check_zero_preserving() {
    std::unordered_set<const value*> zero;
    for (const auto& s : grp_.sources) zero.insert(s.n->output(0));
    auto is_zero = [&](value* v) { return zero.count(v) > 0; };
    auto constant_zero = [](value* v) {
      auto c = constant_behind(v);
      return c && channel_ops::all_of_constant(*c->data, [](double x) { return x == 0; });
    };
    auto per_channel = [&](value* v) {
      for (const auto& p : grp_.params)
        if (p.c.v == v) return true;
      return false;
    };
    for (node* n : g_.nodes()) {
      if (std::find(grp_.nodes.begin(), grp_.nodes.end(), n) == grp_.nodes.end()) continue;
      value* x = n->input(0);
      bool z = false;
      if (n->is("BatchNormalization") || n->is("InstanceNormalization") || (n->is("Conv") && is_depthwise(*n, grp_.channels))) {
        z = is_zero(x);  // parameters zeroed with the channel
      } else if (n->is("Relu") || n->is("LeakyRelu") || n->is("HardSwish") || n->is("Tanh") || n->is("Elu") || n->is("Selu") ||
                 n->is("Celu") || n->is("Softsign") || n->is("Erf") || n->is("Identity") || n->is("Dropout") || n->is("Neg") ||
                 n->is("Abs") || n->is("Sqrt") || n->is("Gelu") || n->is("Mish") || n->is("ThresholdedRelu") || channel_ops::is_pool(*n) ||
                 n->is("Resize") || n->is("Upsample") || n->is("Flatten")) {
        z = is_zero(x);
      } else if (n->is("Clip")) {
        bool contains_zero = n->attr_float("min", -1.f) <= 0 && n->attr_float("max", 1.f) >= 0;
        if (auto lo = constant_behind(n->input(1))) contains_zero = contains_zero && channel_ops::all_of_constant(*lo->data, [](double v) { return v <= 0; });
        if (auto hi = constant_behind(n->input(2))) contains_zero = contains_zero && channel_ops::all_of_constant(*hi->data, [](double v) { return v >= 0; });
        z = is_zero(x) && contains_zero;
      } else if (n->is("HardSigmoid")) {
        z = is_zero(x) && n->attr_float("beta", 0.5f) == 0.f;
      } else if (n->is("Mul")) {
        z = is_zero(n->input(0)) || is_zero(n->input(1));
      } else if (n->is("Div")) {
        z = is_zero(n->input(0));
      } else if (n->is("Add") || n->is("Sub") || n->is("Max") || n->is("Min")) {
        z = true;
        for (value* in : n->inputs())
          z = z && (is_zero(in) || constant_zero(in) || ((n->is("Add") || n->is("Sub")) && per_channel(in)));
      } else if (n->is("PRelu") || n->is("Pow")) {
        z = is_zero(x) && (n->is("PRelu") || !constant_zero(n->input(1)));
      }
      if (z) zero.insert(n->output(0));
    }
    for (const auto& s : grp_.sinks)
      if (!is_zero(s.n->input(0))) {
        // Name the first operator on the path that produces non-zeros.
        value* v = s.n->input(0);
        std::string why = "removed channels would reach " + s.n->context() + " as non-zero values";
        if (v->producer()) why += " (from " + v->producer()->context() + ")";
        grp_.not_zero_preserving = why;
        return;
      }
  }

  graph& g_;
  channel_group grp_;
  std::unordered_map<value*, int> axis_, rank_;
  std::unordered_set<value*> unit_spatial_;
  std::unordered_set<node*> visited_, sink_seen_, visited_source_;
  std::deque<value*> queue_;
};

/// Every channel group of `g`, each started from the first source (in graph order) that no earlier
/// group claimed. Groups that cannot be changed are included with their `failure`.
inline std::vector<channel_group> find_channel_groups(graph& g) {
  std::vector<channel_group> groups;
  std::unordered_set<node*> claimed;
  for (node* n : g.nodes()) {
    if (claimed.count(n) || !channel_group_builder::source_capable(*n)) continue;
    channel_group_builder b(g);
    channel_group grp = b.build(*n);
    claimed.insert(n);
    for (const auto& s : grp.sources) claimed.insert(s.n);
    groups.push_back(std::move(grp));
  }
  return groups;
}

// ---- applying an index map to a group -------------------------------------------------------

/// `t` with its `axis` re-indexed: out[..., j, ...] = t[..., index[j], ...] (a permutation, or the
/// kept channels of a removal).
inline tensor take_along(const tensor& t, std::size_t axis, const std::vector<std::int64_t>& index) {
  std::vector<std::int64_t> dims = t.shape().dims();
  const std::size_t outer = t.shape().outer(axis), inner = t.shape().inner(axis), n = static_cast<std::size_t>(dims[axis]);
  dims[axis] = static_cast<std::int64_t>(index.size());
  tensor out(t.dtype(), shape(dims), t.name());
  const std::size_t width = storage_bytes(t.dtype(), 1), row = inner * width;
  const std::byte* src = t.bytes();
  std::byte* dst = out.bytes();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t j = 0; j < index.size(); ++j)
      std::memcpy(dst + (o * index.size() + j) * row, src + (o * n + static_cast<std::size_t>(index[j])) * row, row);
  return out;
}

inline void replace_constant(channel_constant& c, tensor t) {
  t.set_name(c.data->name());
  *c.data = std::move(t);
  std::vector<dim> d;
  for (auto x : c.data->shape()) d.push_back(dim{x, {}});
  c.v->set_dims(std::move(d));
}

/// Re-indexes every weight, parameter and value of the group by `index` (see take_along): a
/// permutation of the channels leaves the model's function unchanged; a subset removes the other
/// channels (depthwise `group` attributes and value shapes follow).
inline void apply_channel_index(channel_group& grp, const std::vector<std::int64_t>& index) {
  auto edit = [&](channel_tensor& t) { replace_constant(t.c, take_along(*t.c.data, t.axis, index)); };
  for (auto& s : grp.sources) edit(s.weight);
  for (auto& s : grp.sinks) edit(s.weight);
  for (auto& p : grp.params) edit(p);
  const auto c = static_cast<std::int64_t>(index.size());
  for (node* n : grp.depthwise) n->set_attribute(attribute::make_int("group", c));
  for (auto& [v, caxis] : grp.values) {
    if (!v->dims()) continue;
    auto d = *v->dims();
    const int pos = static_cast<int>(d.size()) + caxis;
    if (pos >= 0) d[static_cast<std::size_t>(pos)] = dim{c, {}};
    v->set_dims(std::move(d));
  }
  grp.channels = c;
}

}  // namespace quench::pipeline::detail
