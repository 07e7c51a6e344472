#pragma once
// quantize_weights: the weight half of a QDQ model. Every float32 weight initializer of a Conv,
// ConvTranspose, Gemm or MatMul becomes an integer initializer followed by a DequantizeLinear node,
// laid out and named as ONNX Runtime's quantize_static writes them:
//
//     W (float)  ->  W_quantized (int8) --+
//                    W_scale (float)    --+--> DequantizeLinear "W_DequantizeLinear"
//                    W_zero_point (int8) -+       -> "W_DequantizeLinear_Output" -> Conv
//
// Ranges and rounding are ONNX Runtime's (quench/quant/choose_qparams.hpp): symmetric for signed
// types (zero point 0, narrow range [-127, 127] for int8), per output channel along the axis the
// consumer reads channels from: Conv 0, ConvTranspose 1, MatMul's B [K, N] 1, Gemm's B 0 with
// transB = 1, else 1. Per-channel needs opset 13 (the `axis` of DequantizeLinear); below it the
// weights are quantized per tensor. A weight shared by several consumers is quantized once per
// axis. This is also the whole of the weight-only profile (DequantizeLinear only, float
// activations).
//
//     auto report = quench::pipeline::quantize_weights(model);   // int8, per channel
//     // report.quantized: the weights; report.bytes_before / bytes_after

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/quantize.hpp"

namespace quench::pipeline {

struct weight_quant_options {
  dtype type = dtype::int8;  ///< int8, uint8, int16, uint16 (int4 needs blocked layouts: not here)
  bool per_channel = true;
  bool symmetric = true;  ///< ORT's WeightSymmetric (its default for signed types)
  std::set<std::string> op_types{"Conv", "ConvTranspose", "Gemm", "MatMul"};
  std::set<std::string> exclude_nodes;  ///< node names left in float
};

struct weight_quant_report {
  std::vector<std::string> quantized;  ///< weight initializers replaced, in graph order
  std::size_t bytes_before = 0, bytes_after = 0;
};

namespace detail {

/// The channel axis of `n`'s weight (input 1), or -1 when per-tensor is the only choice.
inline std::int64_t weight_axis(const node& n, std::size_t rank) {
  const std::string& op = n.op_type();
  if (op == "Conv") return 0;
  if (op == "ConvTranspose") return 1;
  if (op == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  if (op == "MatMul") return rank == 2 ? 1 : -1;  // batched B: one range per tensor
  return -1;
}

/// A 1-D tensor of the qparams' scales (or a scalar per tensor).
inline tensor scale_tensor(const qparams& p, const std::string& name, bool per_axis) {
  tensor s = per_axis ? tensor(dtype::float32, {static_cast<std::int64_t>(p.scales.size())}, name) : tensor(dtype::float32, {}, name);
  auto v = s.view<float>();
  for (std::size_t i = 0; i < p.scales.size(); ++i) v[i] = p.scales[i];
  return s;
}

/// The zero points in the quantized type, shaped like the scales.
inline tensor zero_point_tensor(const qparams& p, const std::string& name, bool per_axis) {
  const std::int64_t n = static_cast<std::int64_t>(p.scales.size());
  tensor z = per_axis ? tensor(p.type, {n}, name) : tensor(p.type, {}, name);
  auto fill = [&](auto tag) {
    using Q = decltype(tag);
    auto v = z.view<Q>();
    for (std::size_t i = 0; i < p.scales.size(); ++i) v[i] = static_cast<Q>(p.zero_point(i));
  };
  switch (p.type) {
    case dtype::int8: fill(std::int8_t{}); break;
    case dtype::uint8: fill(std::uint8_t{}); break;
    case dtype::int16: fill(std::int16_t{}); break;
    case dtype::uint16: fill(std::uint16_t{}); break;
    default: throw_error(errc::unsupported_dtype, "quantize_weights", "weights of type " + to_string(p.type) + " are not supported here");
  }
  return z;
}

}  // namespace detail

/// Replaces the float weights of the model's matrix ops by integer initializers + DequantizeLinear
/// (see the header comment); returns what changed. The model stays valid: nodes are re-sorted
/// topologically and float weights no longer used are removed.
inline weight_quant_report quantize_weights(model& m, const weight_quant_options& opt = {}) {
  if (opt.type != dtype::int8 && opt.type != dtype::uint8 && opt.type != dtype::int16 && opt.type != dtype::uint16)
    throw_error(errc::unsupported_dtype, "quantize_weights", "expected int8, uint8, int16 or uint16 weights, found " + to_string(opt.type));
  if ((opt.type == dtype::int16 || opt.type == dtype::uint16) && m.opset() < 21)
    throw_error(errc::invalid_model, "quantize_weights", "16-bit DequantizeLinear needs opset 21, the model imports " + std::to_string(m.opset()));
  if (m.opset() < 10) throw_error(errc::invalid_model, "quantize_weights", "DequantizeLinear needs opset 10, the model imports " + std::to_string(m.opset()));
  graph& g = m.main_graph();
  weight_quant_report report;
  std::map<std::pair<std::string, std::int64_t>, value*> done;  // (weight, axis) -> DQ output
  std::set<value*> replaced;
  std::set<std::string> seen;
  for (node* n : g.nodes()) {
    if (!opt.op_types.count(n->op_type()) || opt.exclude_nodes.count(n->name())) continue;
    if (!n->domain().empty() || n->inputs().size() < 2) continue;
    value* w = n->input(1);
    if (!w || !w->is_initializer() || w->is_graph_input() || w->initializer()->dtype() != dtype::float32 || w->initializer()->size() == 0)
      continue;
    const tensor& wt = *w->initializer();
    std::int64_t axis = opt.per_channel && m.opset() >= 13 ? detail::weight_axis(*n, wt.rank()) : -1;
    if (axis >= static_cast<std::int64_t>(wt.rank())) axis = -1;
    auto key = std::make_pair(w->name(), axis);
    auto it = done.find(key);
    if (it == done.end()) {
      range_options ro;
      ro.symmetric = opt.symmetric;
      qparams p;
      try {
        p = axis >= 0 ? qparams_from_data(wt.view<float>(), opt.type, axis, ro) : qparams_from_data(wt.view<float>(), opt.type, ro);
      } catch (const error& e) {
        throw error(e.code(), tensor_context(w->name()), e.what());  // name the weight
      }
      // A weight quantized again along another axis gets names of its own.
      const std::string base = seen.insert(w->name()).second ? w->name() : w->name() + "_axis" + std::to_string(axis);
      auto fresh = [&](const std::string& want) { return g.find_value(want) ? g.unique_name(want) : want; };
      tensor q = quantize(wt, p);
      q.set_name(fresh(base + "_quantized"));
      report.bytes_before += wt.nbytes();
      report.bytes_after += q.nbytes() + p.scales.size() * (4 + storage_bytes(p.type, 1));
      value& qv = g.add_initializer(std::move(q));
      value& sv = g.add_initializer(detail::scale_tensor(p, fresh(base + "_scale"), axis >= 0));
      value& zv = g.add_initializer(detail::zero_point_tensor(p, fresh(base + "_zero_point"), axis >= 0));
      node& dq = g.add_node("DequantizeLinear", {&qv, &sv, &zv}, {fresh(base + "_DequantizeLinear_Output")},
                            fresh(base + "_DequantizeLinear"));
      if (axis >= 0) dq.set_attribute(attribute::make_int("axis", axis));
      it = done.emplace(key, dq.output(0)).first;
      report.quantized.push_back(w->name());
    }
    g.set_input(*n, 1, it->second);
    replaced.insert(w);
  }
  for (value* w : replaced)
    if (!w->has_uses() && !w->is_graph_output()) g.remove_value(*w);
  g.topological_sort();
  return report;
}

}  // namespace quench::pipeline
