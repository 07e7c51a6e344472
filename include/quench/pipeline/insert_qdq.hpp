#pragma once
// insert_qdq: applies a qdq_plan to the float graph, with the activations' quantization
// parameters already chosen. Names follow ONNX Runtime's quantize_static, so tools that know its
// output (and people who read it) find their way:
//
//     x -> x_QuantizeLinear -> x_QuantizeLinear_Output -> x_DequantizeLinear -> x_DequantizeLinear_Output
//          (x_scale, x_zero_point: rank-0 initializers, shared by both)
//     W -> W_quantized (int8) + W_scale + W_zero_point -> W_DequantizeLinear -> W_DequantizeLinear_Output
//     B -> B_quantized (int32) + B_quantized_scale + B_quantized_zero_point -> B_DequantizeLinear
//
// A quantized tensor that is a graph output keeps its name on the DequantizeLinear's output (the
// producer's output is renamed `<x>_prequant`), so the model's interface does not change.
// Zero points are always written, also when 0: ORT's QDQ fusions need all three inputs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/pipeline/qdq_plan.hpp"
#include "quench/pipeline/weight_qparams.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/quantize.hpp"

namespace quench::pipeline {

/// What insert_qdq did, for reports.
struct qdq_insert_report {
  std::vector<std::string> activations;  ///< quantized activation tensors (float model names)
  std::vector<std::string> weights;      ///< quantized weight initializers
  std::vector<std::string> biases;       ///< int32 biases
  std::size_t weight_bytes_before = 0, weight_bytes_after = 0;
  std::size_t bias_overflows = 0;  ///< bias values clipped to the int32 range
  /// The float model's tensor behind each DQ output that replaced it ("x_DequantizeLinear_Output" ->
  /// "x"), for per-tensor error reports.
  std::map<std::string, std::string> dq_of;
  /// DQ output -> the interval its planned activation was bounded to (planned_activation's
  /// lower_bound and upper_bound: an absorbed Relu, saturation bounds), when either is finite.
  /// Values outside it are ones the consumers cannot tell apart, so error reports clamp the
  /// float tensor to it before comparing.
  std::map<std::string, std::pair<float, float>> bounds;
};

struct weight_options {
  dtype type = dtype::int8;
  bool symmetric = true;
  bool reduce_range = false;  ///< quant_profile::weight_reduce_range
  weight_method method = weight_method::minmax;
  std::int64_t block_size = 0;  ///< blocked along the reduction axis (weight-only int4/uint4)
  /// Weights whose quantization was decided elsewhere, by float initializer name: scales and zero
  /// points trained by QAT or chosen for AdaRound. Their axis must be the planned one.
  std::map<std::string, qparams> fixed_params;
  /// Integer values for weights in `fixed_params` (AdaRound's rounding, a folded QAT model's
  /// int8 weights), typed like the qparams and shaped like the weight; absent: rounded to nearest.
  /// Shared, not copied: options are copied around and weights can be large.
  std::map<std::string, std::shared_ptr<const tensor>> fixed_values;
};

namespace detail {

/// Clamps quantized weights to the reduced range of their type: a clipped range (MSE) maps the
/// values it clips beyond it, and a full-range integer would bring back the int16 saturation
/// reduce_range exists to avoid.
inline void clamp_to_reduced_range(tensor& q, const qparams& p) {
  range_options ro;
  ro.reduce_range = true;
  const integer_range r = target_range(p.type, ro);
  auto clamp = [&](auto tag) {
    using T = decltype(tag);
    for (T& v : q.view<T>()) v = static_cast<T>(std::min<std::int64_t>(std::max<std::int64_t>(v, r.min), r.max));
  };
  switch (q.dtype()) {
    case dtype::int8: clamp(std::int8_t{}); break;
    case dtype::uint8: clamp(std::uint8_t{}); break;
    case dtype::int16: clamp(std::int16_t{}); break;
    case dtype::uint16: clamp(std::uint16_t{}); break;
    default: throw_error(errc::invalid_argument, tensor_context(q.name()), "reduce_range applies to 8- and 16-bit weights, found " + to_string(q.dtype()));
  }
}

/// A scale tensor: rank 0 for per tensor, else the qparams' parameter shape.
inline tensor make_scale_tensor(const qparams& p, const std::string& name) {
  shape s = p.granularity == quant_granularity::per_tensor ? shape{} : p.param_shape;
  tensor t(dtype::float32, s, name);
  auto v = t.view<float>();
  for (std::size_t i = 0; i < p.scales.size(); ++i) v[i] = p.scales[i];
  return t;
}

/// Zero points in the quantized type, shaped like the scales (float8 zero is the +0 pattern).
inline tensor make_zero_point_tensor(const qparams& p, const std::string& name) {
  shape s = p.granularity == quant_granularity::per_tensor ? shape{} : p.param_shape;
  tensor t(p.type, s, name);
  const std::size_t n = p.scales.size();
  auto fill = [&](auto tag) {
    using Q = decltype(tag);
    Q* v = reinterpret_cast<Q*>(t.bytes());
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<Q>(p.zero_point(i));
  };
  switch (p.type) {
    case dtype::int8: fill(std::int8_t{}); break;
    case dtype::uint8: fill(std::uint8_t{}); break;
    case dtype::int16: fill(std::int16_t{}); break;
    case dtype::uint16: fill(std::uint16_t{}); break;
    case dtype::int32: fill(std::int32_t{}); break;
    case dtype::int4:
    case dtype::uint4: {
      std::vector<std::int32_t> z(n);
      for (std::size_t i = 0; i < n; ++i) z[i] = p.zero_point(i);
      pack_4bit(z.data(), n, reinterpret_cast<std::uint8_t*>(t.bytes()));
      break;
    }
    default:
      if (!is_float8(p.type)) throw_error(errc::unsupported_dtype, "zero point", "no zero point of type " + to_string(p.type));
      break;  // all zero bytes
  }
  return t;
}

inline std::string fresh_name(graph& g, const std::string& want) { return g.find_value(want) ? g.unique_name(want) : want; }

/// Adds `q` + scale + zero point initializers and a DequantizeLinear reading them; returns its output.
inline value& add_dequantized_constant(graph& g, tensor q, const qparams& p, const std::string& base,
                                       const std::string& scale_name, const std::string& zp_name) {
  q.set_name(fresh_name(g, base + "_quantized"));
  value& qv = g.add_initializer(std::move(q));
  value& sv = g.add_initializer(make_scale_tensor(p, fresh_name(g, scale_name)));
  value& zv = g.add_initializer(make_zero_point_tensor(p, fresh_name(g, zp_name)));
  node& dq = g.add_node("DequantizeLinear", {&qv, &sv, &zv}, {fresh_name(g, base + "_DequantizeLinear_Output")},
                        fresh_name(g, base + "_DequantizeLinear"));
  if (p.granularity != quant_granularity::per_tensor) dq.set_attribute(attribute::make_int("axis", p.axis));
  if (p.granularity == quant_granularity::blocked) dq.set_attribute(attribute::make_int("block_size", p.block_size));
  return *dq.output(0);
}

/// int32 bias for scale[c] = input_scale x weight_scale[c] (float32 products, as ORT's numpy
/// arrays compute them), rounded half to even in float64 and clipped to int32.
inline tensor quantize_bias(const tensor& b, float input_scale, const qparams& w, std::vector<float>& scales,
                            std::size_t& overflows) {
  const std::size_t n = b.size();
  scales.assign(n, 0.f);
  for (std::size_t c = 0; c < n; ++c) {
    const float ws = w.scales.size() == 1 ? w.scales[0] : w.scales[c % w.scales.size()];
    scales[c] = input_scale * ws;
  }
  tensor q(dtype::int32, b.shape(), b.name());
  auto out = q.view<std::int32_t>();
  auto in = b.view<float>();
  for (std::size_t c = 0; c < n; ++c) {
    const float v = in[c];
    if (!std::isfinite(v)) throw_error(errc::not_finite, tensor_context(b.name()), "bias element " + std::to_string(c) + " is not finite");
    double r = std::nearbyint(static_cast<double>(v) / static_cast<double>(scales[c]));
    constexpr double lo = std::numeric_limits<std::int32_t>::min(), hi = std::numeric_limits<std::int32_t>::max();
    if (r < lo || r > hi) {
      ++overflows;
      r = r < lo ? lo : hi;
    }
    out[c] = static_cast<std::int32_t>(r);
  }
  return q;
}

}  // namespace detail

/// Quantizes the planned weights of `g` (see the header comment); returns each weight's qparams
/// by node name, for the biases. A weight shared by several nodes is quantized once per axis.
inline std::map<std::string, qparams> insert_weight_qdq(graph& g, const std::vector<planned_weight>& weights, const weight_options& wo,
                                                        qdq_insert_report& report) {
  std::unordered_map<std::string, node*> by_name;
  for (node* n : g.nodes()) by_name.emplace(n->name(), n);
  std::map<std::pair<std::string, std::int64_t>, std::pair<value*, qparams>> done;
  std::map<std::string, qparams> per_node;
  std::set<std::string> seen;
  std::set<value*> replaced;
  for (const planned_weight& pw : weights) {
    node* n = by_name.at(pw.node);
    value* w = n->input(pw.input);
    const tensor& wt = *w->initializer();
    auto key = std::make_pair(w->name(), pw.axis);
    auto it = done.find(key);
    if (it == done.end()) {
      weight_qparams_options o;
      o.type = wo.type;
      o.symmetric = wo.symmetric;
      o.reduce_range = wo.reduce_range;
      o.method = wo.method;
      o.axis = pw.axis;
      if (wo.block_size > 0) {
        // Blocks run along the reduction axis: the other axis of a 2-D weight than its channel axis.
        o.block_size = wo.block_size;
        o.axis = wt.rank() == 2 ? (pw.axis == 0 ? 1 : 0) : 1;
      }
      qparams p;
      tensor q;
      if (auto fp = wo.fixed_params.find(w->name()); fp != wo.fixed_params.end()) {
        p = fp->second;
        if (p.granularity == quant_granularity::per_axis && p.axis != pw.axis)
          throw_error(errc::invalid_argument, tensor_context(w->name()),
                      "fixed weight qparams are per channel on axis " + std::to_string(p.axis) + ", the consumer needs axis " +
                          std::to_string(pw.axis));
        if (auto fv = wo.fixed_values.find(w->name()); fv != wo.fixed_values.end()) {
          const tensor& given = *fv->second;
          if (given.dtype() != p.type || given.shape() != wt.shape())
            throw_error(errc::shape_mismatch, tensor_context(w->name()),
                        "fixed integer values must be " + to_string(p.type) + " " + to_string(wt.shape()) + ", found " +
                            to_string(given.dtype()) + " " + to_string(given.shape()));
          q = given.clone();
        } else {
          q = quantize(wt, p);
        }
        if (wo.reduce_range) detail::clamp_to_reduced_range(q, p);
      } else {
        p = weight_qparams(wt, o);
        q = quantize(wt, p);
        if (wo.reduce_range) detail::clamp_to_reduced_range(q, p);
      }
      // A weight quantized again along another axis gets names of its own.
      const std::string base = seen.insert(w->name()).second ? w->name() : w->name() + "_axis" + std::to_string(pw.axis);
      report.weight_bytes_before += wt.nbytes();
      report.weight_bytes_after += q.nbytes() + p.scales.size() * (4 + storage_bytes(p.type, 1));
      value& dq = detail::add_dequantized_constant(g, std::move(q), p, base, base + "_scale", base + "_zero_point");
      it = done.emplace(key, std::make_pair(&dq, p)).first;
      report.weights.push_back(w->name());
    }
    g.set_input(*n, pw.input, it->second.first);
    per_node[pw.node] = it->second.second;
    replaced.insert(w);
  }
  for (value* w : replaced)
    if (!w->has_uses() && !w->is_graph_output()) g.remove_value(*w);
  return per_node;
}

/// Applies `plan` to `m`: removes absorbed activations, quantizes weights and biases, inserts a
/// Q/DQ pair per planned activation with `params[name]` (a shared tensor uses its root's) and
/// points the planned readers at the DQ output. `params` must hold every planned activation that
/// is not shared. Nodes are re-sorted topologically.
inline qdq_insert_report insert_qdq(model& m, const qdq_plan& plan, const std::map<std::string, qparams>& params,
                                    const weight_options& wo) {
  graph& g = m.main_graph();
  qdq_insert_report report;
  std::unordered_map<std::string, node*> by_name;
  for (node* n : g.nodes()) by_name.emplace(n->name(), n);
  auto node_named = [&](const std::string& name) -> node& {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw_error(errc::invalid_argument, "QDQ plan", "names node '" + name + "', which the model does not have");
    return *it->second;
  };

  std::vector<value*> clip_bounds;
  for (const std::string& name : plan.absorbed) {
    node& r = node_named(name);
    for (std::size_t i = 1; i < r.inputs().size(); ++i)
      if (r.input(i) && r.input(i)->is_initializer()) clip_bounds.push_back(r.input(i));
    value& x = *r.input(0);
    value& y = *r.output(0);
    g.replace_all_uses(y, x);
    g.remove_node(r);
    by_name.erase(name);
  }

  const auto weight_params = insert_weight_qdq(g, plan.weights, wo, report);

  // Activations. Shared tensors reuse their root's scale and zero point initializers.
  std::map<std::string, std::pair<value*, value*>> param_values;  // root -> (scale, zero point)
  std::map<std::string, const qparams*> param_of;
  for (const planned_activation& a : plan.activations) {
    const std::string root = a.share_with.empty() ? a.name : a.share_with;
    auto pit = params.find(root);
    if (pit == params.end()) throw_error(errc::invalid_argument, tensor_context(a.name), "has no quantization parameters");
    const qparams& p = pit->second;
    param_of[a.name] = &p;
    value* src = g.find_value(a.name);
    if (!src) throw_error(errc::invalid_argument, "QDQ plan", "names tensor '" + a.name + "', which the model does not have");
    auto pv = param_values.find(root);
    if (pv == param_values.end()) {
      value& sv = g.add_initializer(detail::make_scale_tensor(p, detail::fresh_name(g, root + "_scale")));
      value& zv = g.add_initializer(detail::make_zero_point_tensor(p, detail::fresh_name(g, root + "_zero_point")));
      pv = param_values.emplace(root, std::make_pair(&sv, &zv)).first;
    }
    // A graph output keeps its name on the DQ output (the model's interface stays as it was).
    std::string dq_name = detail::fresh_name(g, a.name + "_DequantizeLinear_Output");
    if (a.output_through_dq && src->is_graph_output()) {
      g.rename_value(*src, g.unique_name(a.name + "_prequant"));
      dq_name = a.name;
    }
    node& q = g.add_node("QuantizeLinear", {src, pv->second.first, pv->second.second},
                         {detail::fresh_name(g, a.name + "_QuantizeLinear_Output")}, detail::fresh_name(g, a.name + "_QuantizeLinear"));
    node& dq = g.add_node("DequantizeLinear", {q.output(0), pv->second.first, pv->second.second}, {dq_name},
                          detail::fresh_name(g, a.name + "_DequantizeLinear"));
    value& out = *dq.output(0);
    for (const auto& [reader, index] : a.readers) g.set_input(node_named(reader), index, &out);
    if (dq_name == a.name && a.output_through_dq) {
      out.set_elem_type(src->elem_type());  // the graph output keeps its declared type and shape
      out.set_dims(src->dims());
      for (std::size_t i = 0; i < g.outputs().size(); ++i)
        if (g.outputs()[i] == src) g.set_output(i, out);
    }
    report.dq_of[out.name()] = a.range_of;  // an absorbed Relu: the Relu's output
    if (std::isfinite(a.lower_bound) || std::isfinite(a.upper_bound)) report.bounds[out.name()] = {a.lower_bound, a.upper_bound};
    report.activations.push_back(a.name);
  }

  for (const planned_bias& pb : plan.biases) {
    node& n = node_named(pb.node);
    value* b = n.input(pb.input);
    auto wp = weight_params.find(pb.node);
    auto ap = param_of.find(pb.activation);
    if (!b || !b->is_initializer() || wp == weight_params.end() || ap == param_of.end()) continue;
    const qparams& w = wp->second;
    const std::size_t channels = b->initializer()->size();
    if (w.scales.size() != 1 && channels % w.scales.size() != 0) continue;  // no channel correspondence: keep float
    std::vector<float> scales;
    tensor q = detail::quantize_bias(*b->initializer(), ap->second->scales[0], w, scales, report.bias_overflows);
    qparams bp = w.scales.size() == 1 ? qparams::per_tensor(dtype::int32, scales[0])
                                      : qparams::per_axis(dtype::int32, 0, scales);
    if (w.scales.size() == 1) bp.scales = {scales[0]};
    const std::string base = b->name();
    value& dq = detail::add_dequantized_constant(g, std::move(q), bp, base, base + "_quantized_scale", base + "_quantized_zero_point");
    g.set_input(n, pb.input, &dq);
    report.weight_bytes_before += b->initializer()->nbytes();
    report.weight_bytes_after += channels * 8;
    if (!b->has_uses() && !b->is_graph_output()) g.remove_value(*b);
    report.biases.push_back(base);
  }

  // The bounds the absorbed Clips read, once nothing else does.
  std::set<value*> unused(clip_bounds.begin(), clip_bounds.end());
  for (value* v : unused)
    if (!v->has_uses() && !v->is_graph_output() && !v->is_graph_input()) g.remove_value(*v);
  g.topological_sort();
  return report;
}

}  // namespace quench::pipeline
