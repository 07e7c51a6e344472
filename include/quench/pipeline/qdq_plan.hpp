#pragma once
// qdq_plan: where a QDQ model gets its QuantizeLinear/DequantizeLinear pairs, decided on the float
// graph before anything is calibrated or changed. The plan names tensors and nodes only, so it
// can be printed, tested and edited, and applied later (insert_qdq.hpp).
//
//     auto plan = quench::pipeline::plan_qdq(model, profile, float_tensors);
//     for (const auto& t : plan.activations) std::cout << t.name << " <- range of " << t.range_of << '\n';
//
// ONNX Runtime placement (profile.placement == ort), after ORT's QDQ quantizer and the fusions of
// its QDQ transformer (onnxruntime/core/optimizer/qdq_transformer):
//   * matrix ops (Conv, ConvTranspose, Gemm, MatMul): activation inputs and the output are
//     quantized; float initializer weights become int8 + DQ (per channel), biases int32 + DQ.
//     A Conv needs the Q on its output to become QLinearConv; Gemm/MatMul fuse without one, so a
//     graph output produced by them stays float (no avoidable error on the model's result).
//   * ops with an integer kernel in ORT (Add, Mul, Concat, AveragePool, GlobalAveragePool,
//     Sigmoid, Softmax, LeakyRelu): every input and the output, when every data input is an
//     activation (an initializer operand cannot form QLinearAdd, so such a node stays float).
//     Softmax's output takes the range [0, 1], as ORT sets it.
//   * value-preserving ops (MaxPool, Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Slice,
//     Gather, Expand, Tile, Resize, Split, DepthToSpace, SpaceToDepth, zero-Pad): quantized only
//     when their input is, and their outputs share the input's scale and zero point, which lets
//     ORT drop the pair around them and run them on 8-bit data.
//   * Relu and Clip (min <= 0 <= max) right after a quantized producer whose output has no other
//     use are removed when activations are asymmetric: the producer's output takes the Relu's
//     calibrated range, whose zero point is the lowest integer, so the Q clamps exactly as the
//     Relu did (ORT's QDQRemovableActivation and its range adjustment). With symmetric
//     activations they are value-preserving ops instead.
//   Every consumer of a quantized tensor reads its DQ output, except excluded nodes, which read
//   the float tensor: a tensor read by both a Q and a float op would stop ORT's fusion.
// TensorRT placement (tensorrt, fp8), after its explicit-quantization guidance and
// pytorch-quantization's quantized modules: the activation inputs of matrix ops and pooling,
// and the residual input of Add (the one not produced by a matrix op; input 1 when both are, as
// torch exports `y + identity`). Outputs are not quantized and only the requesting node reads
// the DQ output; TensorRT fuses Conv+BN+ReLU(+Add) and moves Q/DQ itself.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/quant_profile.hpp"

namespace quench::pipeline {

struct plan_options {
  /// Op types whose nodes are quantized; empty: every op type the placement knows.
  std::set<std::string> op_types;
  /// Nodes kept in float: no Q/DQ is placed because of them and they read float inputs.
  std::set<std::string> exclude_nodes;
  /// Tensors never quantized (their consumers read the float tensor).
  std::set<std::string> exclude_tensors;
  /// Graph outputs quantized with a range of their own although the placement leaves them float
  /// (ORT fuses a Gemm output without a Q): a QAT model's output fake quant clamps there, and the
  /// exported model must clamp as training did.
  std::set<std::string> quantize_outputs;
  /// Narrow each activation range to the values its consumers can tell apart (see
  /// detail::saturation_bounds): exact, and a Conv -> LeakyRelu -> Max(x, c) chain gets one
  /// fine grid instead of a coarse one over values the Max discards.
  bool saturation_bounds = true;
};

/// One activation tensor that gets QuantizeLinear -> DequantizeLinear.
struct planned_activation {
  std::string name;      ///< the tensor in the float graph (after absorbed Relu/Clip are gone)
  std::string range_of;  ///< the float model's tensor whose calibrated range it takes
  /// Non-empty: takes the scale and zero point of this planned tensor (value-preserving op).
  std::string share_with;
  bool fixed_unit_range = false;  ///< Softmax output: [0, 1] without calibration
  /// Bounds the values are known to keep (an absorbed Relu: >= 0; Clip: its min and max). The
  /// range is clamped to them, so a symmetric range (a TensorRT cache, ...) still clamps as the
  /// absorbed op did.
  float lower_bound = -std::numeric_limits<float>::infinity();
  float upper_bound = std::numeric_limits<float>::infinity();
  /// A graph output whose DQ output takes its name (ORT placement: the Q keeps the producer fusable).
  bool output_through_dq = false;
  /// (node, input index) pairs that read the DQ output.
  std::vector<std::pair<std::string, std::size_t>> readers;
};

/// A float initializer weight of a matrix op that becomes integer + DQ.
struct planned_weight {
  std::string node;
  std::size_t input = 1;
  std::int64_t axis = -1;  ///< channel axis; -1 per tensor
};

/// A float bias that becomes int32 + DQ with scale = input scale x weight scale.
struct planned_bias {
  std::string node;
  std::size_t input = 2;
  std::string activation;  ///< the planned activation read by input 0
};

struct qdq_plan {
  std::vector<std::string> absorbed;  ///< Relu/Clip nodes removed (their range moves to the producer's output)
  std::vector<planned_activation> activations;  ///< in topological order of the tensors
  std::vector<planned_weight> weights;
  std::vector<planned_bias> biases;
  std::vector<std::string> quantized_nodes;  ///< nodes the placement quantized, in graph order

  const planned_activation* find(const std::string& tensor) const noexcept {
    for (const auto& a : activations)
      if (a.name == tensor) return &a;
    return nullptr;
  }
  /// The float tensors whose ranges calibration must provide.
  std::vector<std::string> calibrated_tensors() const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& a : activations)
      if (a.share_with.empty() && !a.fixed_unit_range && seen.insert(a.range_of).second) out.push_back(a.range_of);
    return out;
  }
};

namespace detail {

inline bool is_matrix_op(const std::string& op) {
  return op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul";
}

/// Ops ONNX Runtime runs on 8-bit data through its QDQ fusions (QLinearAdd, QLinearConcat, ...).
inline bool is_ort_integer_op(const std::string& op) {
  static const std::set<std::string> ops{"Add", "Mul", "Concat", "AveragePool", "GlobalAveragePool", "Sigmoid", "Softmax",
                                         "LeakyRelu"};
  return ops.count(op) != 0;
}

/// Ops whose outputs hold values of the input (or convex combinations of them, Resize): the input's
/// scale fits the output exactly.
inline bool is_value_preserving_op(const std::string& op) {
  static const std::set<std::string> ops{"MaxPool", "Reshape",  "Transpose", "Squeeze",      "Unsqueeze",    "Flatten",
                                         "Slice",   "Gather",   "Expand",    "Tile",         "Resize",       "Split",
                                         "Pad",     "DepthToSpace", "SpaceToDepth", "Identity"};
  return ops.count(op) != 0;
}

inline bool is_pool_op(const std::string& op) { return op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool"; }

/// A scalar float initializer's value, or `fallback` when the input is absent.
inline bool constant_scalar(const value* v, float& out) {
  if (!v) return false;
  const tensor* t = v->initializer();
  if (!t || t->size() != 1 || t->dtype() != dtype::float32) return false;
  out = t->view<float>()[0];
  return true;
}

/// The constant bounds of a Clip (or Relu: [0, inf)); false when they are not constants.
inline bool activation_bounds(const node& n, std::int64_t opset, float& lo, float& hi) {
  lo = -std::numeric_limits<float>::infinity();
  hi = std::numeric_limits<float>::infinity();
  if (n.is("Relu")) {
    lo = 0.f;
    return true;
  }
  if (opset < 11) {
    lo = n.attr_float("min", lo);
    hi = n.attr_float("max", hi);
    return true;
  }
  if (n.input(1) && !constant_scalar(n.input(1), lo)) return false;
  if (n.input(2) && !constant_scalar(n.input(2), hi)) return false;
  return true;
}

/// Per tensor, the interval [lo, hi] outside which nothing downstream can tell values apart:
/// every consumer saturates there (Relu below 0, Clip, Max(x, c) below c, Min(x, c) above c),
/// possibly behind strictly monotone LeakyRelu or element-selecting ops (MaxPool, Reshape, ...).
/// Clamping a tensor to it changes no graph output, so a quantizer may use it as the range's
/// limits. tf2onnx exports LeakyRelu(0.2) -> Max(x, -0.4): the producing Conv's output matters
/// only above -2, while its calibrated minimum is often -20. Unknown consumers and graph outputs
/// give (-inf, inf). `g` must be topologically sorted.
inline std::map<std::string, std::pair<float, float>> saturation_bounds(const graph& g, std::int64_t opset) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  std::map<std::string, std::pair<float, float>> out;
  auto bounds_of = [&](const value* v) -> std::pair<float, float> {
    auto it = v ? out.find(v->name()) : out.end();
    return it == out.end() ? std::pair<float, float>{-inf, inf} : it->second;
  };
  // What the consumer `n` reading input `index` lets through, given its output's interval.
  auto through = [&](const node& n, std::int64_t index) -> std::pair<float, float> {
    const std::pair<float, float> none{-inf, inf};
    if (index < 0 || n.outputs().empty() || !n.output(0)) return none;
    auto [lo, hi] = bounds_of(n.output(0));
    if (n.is("Relu") || n.is("Clip")) {
      float a, b;
      if (index != 0 || !activation_bounds(n, opset, a, b)) return none;
      return {std::max(lo, a), std::min(hi, b)};
    }
    if (n.is("LeakyRelu")) {
      const float alpha = n.attr_float("alpha", 0.01f);
      if (!(alpha > 0.f)) return none;
      return {lo < 0.f ? lo / alpha : lo, hi < 0.f ? hi / alpha : hi};
    }
    if ((n.is("Max") || n.is("Min")) && n.inputs().size() == 2) {
      float c;
      if (!constant_scalar(n.input(1 - static_cast<std::size_t>(index)), c)) return none;
      return n.is("Max") ? std::pair<float, float>{std::max(lo, c), hi} : std::pair<float, float>{lo, std::min(hi, c)};
    }
    // Ops whose outputs are elements of their data input (or a constant pad): the loosest
    // interval of their outputs.
    if (index == 0 && is_value_preserving_op(n.op_type()) && !n.is("Resize")) {
      std::pair<float, float> r{inf, -inf};
      for (const value* o : n.outputs()) {
        auto [l, h] = bounds_of(o);
        r = {std::min(r.first, l), std::max(r.second, h)};
      }
      return r;
    }
    return none;
  };
  auto settle = [&](const value* v) {
    if (!v || v->is_graph_output() || v->uses().empty()) return;
    std::pair<float, float> r{inf, -inf};
    for (const use& u : v->uses()) {
      auto [l, h] = u.index == use::implicit_use ? std::pair<float, float>{-inf, inf} : through(*u.user, u.index);
      r = {std::min(r.first, l), std::max(r.second, h)};
    }
    if (r.first > r.second || (r.first == -inf && r.second == inf)) return;
    out[v->name()] = r;
  };
  const std::vector<node*> nodes = g.nodes();  // a copy: nodes() returns by value
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
    for (const value* v : (*it)->outputs()) settle(v);
  for (const value* v : g.inputs()) settle(v);
  return out;
}

/// The channel axis of a matrix op's weight (input 1), or -1 when only per tensor fits.
inline std::int64_t weight_channel_axis(const node& n, std::size_t rank) {
  const std::string& op = n.op_type();
  if (op == "Conv") return 0;
  if (op == "ConvTranspose") return 1;
  if (op == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  if (op == "MatMul") return rank == 2 ? 1 : -1;  // a batched B gets one range
  return -1;
}

}  // namespace detail

/// The placement for `m` (a float model, ideally after passes::standard_passes). `float_tensors`
/// holds the names of the float32 activations (graph inputs and node outputs) as a run of the
/// model showed them; anything else is never quantized.
inline qdq_plan plan_qdq(const model& m, const quant_profile& profile, const std::unordered_set<std::string>& float_tensors,
                         const plan_options& opt = {}) {
  const graph& g = m.main_graph();
  const std::int64_t opset = m.opset();
  qdq_plan plan;
  auto selected = [&](const node& n) {
    if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
    if (opt.exclude_nodes.count(n.name())) return false;
    return opt.op_types.empty() || opt.op_types.count(n.op_type()) != 0;
  };
  auto activation = [&](const value* v) {
    return v && !v->is_initializer() && float_tensors.count(v->name()) && !opt.exclude_tensors.count(v->name());
  };
  auto float_weight = [](const value* v) {
    return v && v->is_initializer() && !v->is_graph_input() && v->initializer()->dtype() == dtype::float32 &&
           v->initializer()->size() > 0;
  };
  const bool ort = profile.placement == qdq_placement::ort;

  // Requests: tensor -> readers, in the order nodes ask for them.
  std::map<std::string, std::vector<std::pair<std::string, std::size_t>>> requested;
  std::set<std::string> own_output;  // tensors quantized with a range of their own
  std::set<std::string> unit_range;
  std::set<std::string> quantized_nodes;
  auto request = [&](const node& n, std::size_t i) { requested[n.input(i)->name()].push_back({n.name(), i}); };

  for (const node* n : g.nodes()) {
    if (!selected(*n)) continue;
    const std::string& op = n->op_type();
    if (profile.placement == qdq_placement::weights) {
      // Weights only: no activation is looked at, so no data is needed.
      if (!detail::is_matrix_op(op) || !float_weight(n->input(1))) continue;
      // Blocks run along the reduction axis of a matrix; a Conv's (C x kh x kw) is short and
      // strided, so blocked 4-bit weights are for Gemm/MatMul (as ORT's MatMulNBits).
      if (profile.block_size > 0 && op != "Gemm" && op != "MatMul") continue;
      const tensor& w = *n->input(1)->initializer();
      std::int64_t axis = profile.per_channel && opset >= 13 ? detail::weight_channel_axis(*n, w.rank()) : -1;
      if (axis >= static_cast<std::int64_t>(w.rank())) axis = -1;
      quantized_nodes.insert(n->name());
      plan.weights.push_back({n->name(), 1, axis});
      continue;
    }
    if (detail::is_matrix_op(op)) {
      if (!activation(n->input(0))) continue;
      const bool dynamic_b = op == "MatMul" && activation(n->input(1));
      if (!dynamic_b && !float_weight(n->input(1))) continue;
      quantized_nodes.insert(n->name());
      request(*n, 0);
      if (dynamic_b) {
        request(*n, 1);
      } else {
        const tensor& w = *n->input(1)->initializer();
        std::int64_t axis = profile.per_channel && opset >= 13 ? detail::weight_channel_axis(*n, w.rank()) : -1;
        if (axis >= static_cast<std::int64_t>(w.rank())) axis = -1;
        plan.weights.push_back({n->name(), 1, axis});
      }
      if (profile.placement == qdq_placement::ort && op != "MatMul") {
        const value* out = n->output(0);
        const bool fuses_without_q = op == "Gemm";
        if (out && activation(out) && !(out->is_graph_output() && fuses_without_q)) own_output.insert(out->name());
      }
      continue;
    }
    if (!ort) {
      if (detail::is_pool_op(op) && activation(n->input(0))) {
        quantized_nodes.insert(n->name());
        request(*n, 0);
      } else if (op == "Add" && n->inputs().size() == 2 && activation(n->input(0)) && activation(n->input(1))) {
        auto from_matrix = [](const value* v) { return v->producer() && detail::is_matrix_op(v->producer()->op_type()); };
        const bool m0 = from_matrix(n->input(0)), m1 = from_matrix(n->input(1));
        if (!m0 && !m1) continue;  // no Conv+Add fusion to enable
        quantized_nodes.insert(n->name());
        request(*n, m1 && !m0 ? 0 : 1);
      }
      continue;
    }
    if (detail::is_ort_integer_op(op)) {
      bool all_activations = !n->inputs().empty();
      const std::size_t data_inputs = (op == "Add" || op == "Mul" || op == "Concat") ? n->inputs().size() : 1;
      for (std::size_t i = 0; i < data_inputs; ++i) all_activations = all_activations && activation(n->input(i));
      const value* out = n->output(0);
      if (!all_activations || !out || !activation(out)) continue;
      quantized_nodes.insert(n->name());
      for (std::size_t i = 0; i < data_inputs; ++i) request(*n, i);
      own_output.insert(out->name());
      if (op == "Softmax") unit_range.insert(out->name());
    }
  }

  // MatMul outputs in ORT placement: quantized when the next op wants them anyway (no Q is needed
  // for MatMulIntegerToFloat), and Conv outputs always (QLinearConv needs the Q).
  // Absorb Relu/Clip: X -> Relu -> Y becomes X with Y's range.
  std::map<std::string, std::string> range_source;  // tensor -> float tensor whose range it takes
  std::map<std::string, std::string> alias;         // absorbed Y -> X
  std::set<std::string> absorbed_nodes;
  std::map<std::string, std::pair<float, float>> bounds;
  if (ort && profile.absorb_activations && !profile.activation_symmetric && !is_float8(profile.activation_type)) {
    for (const node* n : g.nodes()) {
      if (!(n->is("Relu") || n->is("Clip")) || opt.exclude_nodes.count(n->name())) continue;
      const value* x = n->input(0);
      const value* y = n->output(0);
      if (!x || !y || !x->producer() || !own_output.count(x->name()) || x->uses().size() != 1 || x->is_graph_output() ||
          y->is_graph_output() || !activation(y))
        continue;
      // The Q after the producer clamps to its range, which always includes 0: exact only for
      // bounds on either side of 0.
      float lo, hi;
      if (!detail::activation_bounds(*n, opset, lo, hi) || lo > 0.f || hi < 0.f) continue;
      bounds[x->name()] = {lo, hi};
      absorbed_nodes.insert(n->name());
      alias[y->name()] = x->name();
      range_source[x->name()] = y->name();
      plan.absorbed.push_back(n->name());
    }
  }
  auto resolve = [&](std::string t) {
    for (auto it = alias.find(t); it != alias.end(); it = alias.find(t)) t = it->second;
    return t;
  };

  // Collect readers per planned tensor: ORT placement lets every consumer but excluded nodes read
  // the DQ output; TensorRT only the requesting ones. Walk in node order to keep topological order.
  std::map<std::string, planned_activation> planned;
  std::vector<std::string> order;
  auto plan_tensor = [&](const std::string& name) -> planned_activation& {
    auto it = planned.find(name);
    if (it == planned.end()) {
      planned_activation a;
      a.name = name;
      auto rs = range_source.find(name);
      a.range_of = rs == range_source.end() ? name : rs->second;
      it = planned.emplace(name, std::move(a)).first;
      order.push_back(name);
    }
    return it->second;
  };
  std::map<std::string, std::vector<std::string>> absorbed_into;  // X -> the absorbed outputs Y
  for (const auto& kv : alias) absorbed_into[resolve(kv.first)].push_back(kv.first);
  std::map<std::string, std::vector<std::pair<std::string, std::size_t>>> requested_at;  // resolved names
  for (const auto& [t, readers] : requested) {
    auto& r = requested_at[resolve(t)];
    r.insert(r.end(), readers.begin(), readers.end());
  }
  auto consumers_of = [&](const std::string& name, std::vector<std::pair<std::string, std::size_t>>& readers) {
    // The uses of the tensor and of every Relu/Clip output absorbed into it.
    std::vector<const value*> values{g.find_value(name)};
    if (auto it = absorbed_into.find(name); it != absorbed_into.end())
      for (const std::string& y : it->second) values.push_back(g.find_value(y));
    for (const value* v : values)
      for (const use& u : v->uses()) {
        if (u.index == use::implicit_use || absorbed_nodes.count(u.user->name()) || opt.exclude_nodes.count(u.user->name()))
          continue;
        readers.push_back({u.user->name(), static_cast<std::size_t>(u.index)});
      }
  };

  // Graph inputs first, then node outputs in order: the activations come out topologically sorted.
  std::vector<const value*> candidates(g.inputs().begin(), g.inputs().end());
  for (const node* n : g.nodes())
    for (const value* v : n->outputs())
      if (v) candidates.push_back(v);
  for (const value* v : candidates) {
    const std::string name = v->name();
    if (alias.count(name)) continue;  // absorbed output: its uses belong to the producer's tensor
    const bool forced_output = v->is_graph_output() && opt.quantize_outputs.count(name) && activation(v);
    bool wanted = own_output.count(name) != 0 || forced_output;
    std::vector<std::pair<std::string, std::size_t>> req;
    if (auto it = requested_at.find(name); it != requested_at.end()) {
      wanted = true;
      req = it->second;
    }
    // A value-preserving op is quantized when its input is.
    std::string share;
    if (ort && v->producer() && selected(*v->producer()) && !absorbed_nodes.count(v->producer()->name())) {
      const node& p = *v->producer();
      const bool preserving = detail::is_value_preserving_op(p.op_type()) ||
                              ((p.is("Relu") || p.is("Clip")) && (profile.activation_symmetric || is_float8(profile.activation_type)));
      bool zero_pad = true;
      if (p.is("Pad")) {
        float pad_value = 0.f;
        zero_pad = p.attr_string("mode", "constant") == "constant" &&
                   (opset < 11 ? p.attr_float("value", 0.f) == 0.f : (!p.input(2) || (detail::constant_scalar(p.input(2), pad_value) && pad_value == 0.f)));
      }
      const value* in = p.input(0);
      if (preserving && zero_pad && in && planned.count(resolve(in->name())) && activation(v)) {
        share = resolve(in->name());
        wanted = true;
        quantized_nodes.insert(p.name());
      }
    }
    if (!wanted || !activation(v)) continue;
    planned_activation& a = plan_tensor(name);
    if (!share.empty()) {
      // Follow the chain to the tensor that owns the parameters.
      std::string root = share;
      while (!planned.at(root).share_with.empty()) root = planned.at(root).share_with;
      a.share_with = root;
    }
    if (unit_range.count(name)) a.fixed_unit_range = true;
    if (auto b = bounds.find(name); b != bounds.end()) std::tie(a.lower_bound, a.upper_bound) = b->second;
    if (ort) {
      consumers_of(name, a.readers);
      a.output_through_dq = v->is_graph_output();
    } else {
      a.readers = req;
      a.output_through_dq = forced_output;
    }
  }
  if (opt.saturation_bounds) {
    const auto saturation = detail::saturation_bounds(g, opset);
    for (const std::string& name : order) {
      planned_activation& a = planned.at(name);
      auto sb = saturation.find(name);
      if (!a.share_with.empty() || a.fixed_unit_range || sb == saturation.end()) continue;
      a.lower_bound = std::max(a.lower_bound, sb->second.first);
      a.upper_bound = std::min(a.upper_bound, sb->second.second);
    }
  }
  for (const std::string& name : order) plan.activations.push_back(std::move(planned.at(name)));

  // Biases: int32 needs both the input's and the weight's scale.
  if (profile.quantize_bias) {
    std::unordered_map<std::string, const node*> by_name;
    for (const node* c : g.nodes()) by_name.emplace(c->name(), c);
    for (const planned_weight& w : plan.weights) {
      auto found = by_name.find(w.node);
      const node* n = found == by_name.end() ? nullptr : found->second;
      if (!n || n->op_type() == "MatMul" || !n->input(2)) continue;
      const value* b = n->input(2);
      if (!b->is_initializer() || b->initializer()->dtype() != dtype::float32 || b->initializer()->rank() != 1) continue;
      if (n->op_type() == "Gemm" && n->attr_float("beta", 1.f) != 1.f) continue;  // ORT's QGemm needs beta = 1
      const std::string in = resolve(n->input(0)->name());
      const planned_activation* a = plan.find(in);
      if (!a) continue;
      plan.biases.push_back({n->name(), 2, in});
    }
  }
  for (const node* n : g.nodes())
    if (quantized_nodes.count(n->name())) plan.quantized_nodes.push_back(n->name());
  return plan;
}

}  // namespace quench::pipeline
