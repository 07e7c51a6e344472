#pragma once
// fold_qdq: a QAT model exported with its fake quants (torch.onnx.export of torch.ao.quantization
// FakeQuantize modules or fake_quantize_per_* calls, pytorch-quantization's QuantDescriptors):
// QuantizeLinear -> DequantizeLinear pairs on activations and on float weight initializers, made
// deployable:
//
//     quench::model m = quench::onnx::load_model("qat.onnx");
//     auto r = quench::pipeline::fold_qdq(m);                         // same placement, folded
//     quench::pipeline::fold_options o;
//     o.profile = quench::pipeline::profile_by_name("tensorrt");      // or re-targeted
//     quench::pipeline::fold_qdq(m, o);
//
// fold_qdq without a profile changes nothing the runtime computes:
//   * Q -> DQ on a constant float weight becomes an integer initializer -> DQ, the integers those
//     ONNX Runtime's QuantizeLinear computes (round half to even of w / scale, + zero point,
//     saturate: quench::quantize is exact to it);
//   * a Q -> DQ pair whose input already lies on its grid is removed: the input is the output of a
//     DQ with the same type, scale and zero point, directly or through value-preserving ops
//     (MaxPool, Reshape, Flatten, ...). Q(DQ(q)) = q exactly: (q - zp) * s / s is within a few
//     ulps of the integer q - zp, far from a rounding boundary. This covers two identical
//     Q->DQ->Q->DQ in a row;
//   * Constant nodes become initializers and Identity nodes go (torch routes zero points through
//     them), so that the scales and zero points are readable.
// With a profile the model is re-targeted: extract_qat_params reads the trained parameters back,
// strip_qdq removes every Q/DQ (the float model), and export_qat (qat_export.hpp) writes it again
// with the profile's placement and those parameters.
// A pattern fold cannot read (a scale that is not a constant, a QuantizeLinear read by anything
// but DequantizeLinear, a DequantizeLinear of a computed integer tensor) is an error naming the node.

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/pipeline/qat_export.hpp"
#include "quench/pipeline/qdq_plan.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

namespace quench::pipeline {

namespace detail {

/// The qparams of a QuantizeLinear or DequantizeLinear node from its constant inputs.
inline qparams node_qparams(const node& n, std::int64_t opset) {
  const value* s = n.input(1);
  const value* z = n.input(2);
  if (!s || !s->is_initializer() || s->initializer()->dtype() != dtype::float32)
    throw_error(errc::unsupported_op, n.context(), "unsupported QDQ pattern: the scale is not a float32 constant");
  if (z && !z->is_initializer())
    throw_error(errc::unsupported_op, n.context(), "unsupported QDQ pattern: the zero point is not a constant");
  if (n.find_attribute("block_size")) throw_error(errc::unsupported_op, n.context(), "unsupported QDQ pattern: blocked quantization");
  const tensor& st = *s->initializer();
  qparams p;
  p.type = z ? z->initializer()->dtype() : dtype::uint8;
  if (!is_quantized_type(p.type) || is_float8(p.type))
    throw_error(errc::unsupported_op, n.context(), "unsupported QDQ pattern: zero point of type " + to_string(p.type));
  const auto sv = st.view<float>();
  p.scales.assign(sv.begin(), sv.end());
  if (st.rank() == 1 && st.size() > 1) {
    if (opset < 13) throw_error(errc::invalid_model, n.context(), "per-axis scales need opset 13");
    p.granularity = quant_granularity::per_axis;
    p.axis = n.attr_int("axis", 1);
    p.param_shape = st.shape();
  } else if (st.size() != 1) {
    throw_error(errc::unsupported_op, n.context(), "unsupported QDQ pattern: scale of shape " + to_string(st.shape()));
  }
  if (z) {
    const tensor& zt = *z->initializer();
    if (zt.size() != st.size()) throw_error(errc::shape_mismatch, n.context(), "zero point and scale differ in size");
    tensor wide = dequantize(zt, qparams::per_tensor(zt.dtype(), 1.f, 0));  // the integers, exactly, as float
    for (float v : wide.view<float>()) p.zero_points.push_back(static_cast<std::int32_t>(v));
    bool any = false;
    for (std::int32_t v : p.zero_points) any = any || v != 0;
    if (!any) p.zero_points.clear();
  }
  return p;
}

inline bool same_qparams(const qparams& a, const qparams& b) {
  if (a.type != b.type || a.granularity != b.granularity || a.scales.size() != b.scales.size()) return false;
  if (a.granularity == quant_granularity::per_axis && a.axis != b.axis) return false;
  if (std::memcmp(a.scales.data(), b.scales.data(), a.scales.size() * sizeof(float)) != 0) return false;
  for (std::size_t i = 0; i < a.scales.size(); ++i)
    if (a.zero_point(i) != b.zero_point(i)) return false;
  return true;
}

inline qat_tensor_params to_qat(const qparams& p, std::int64_t rank) {
  qat_tensor_params q;
  q.type = p.type;
  q.range = full_range(p.type);
  q.scales = p.scales;
  for (std::size_t i = 0; i < p.scales.size(); ++i) q.zero_points.push_back(p.zero_point(i));
  if (p.granularity == quant_granularity::per_axis) q.axis = p.axis < 0 ? p.axis + rank : p.axis;
  return q;
}

/// The float name of a folded weight: quench names its integers "<weight>_quantized".
inline std::string float_weight_name(const value& integers) {
  const std::string& n = integers.name();
  const std::string suffix = "_quantized";
  if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) return n.substr(0, n.size() - suffix.size());
  return n;
}

inline bool is_integer_constant(const value* v) {
  return v && v->is_initializer() && is_quantized_type(v->initializer()->dtype()) && !is_float8(v->initializer()->dtype());
}

/// Only the clean-up that makes scales and zero points readable; nothing that changes numbers.
inline void readable_constants(model& m) {
  passes::standard_options o;
  o.fold_constants = false;
  o.fold_batch_norm = false;
  o.fold_conv_mul_add = false;
  o.remove_dead_code = false;
  passes::standard_passes(m.main_graph(), m.opset(), o);
}

}  // namespace detail

/// The trained parameters a QDQ model holds (the inverse of export_qat): every Q -> DQ on an
/// activation (by the Q's input), every Q -> DQ on a float weight initializer (by its name), and
/// every DQ of an integer weight (by "<w>" for "<w>_quantized", with its integers in `values`).
/// int32 DQs (biases) are not parameters. The "quench.qat_params" metadata of an export_qat model
/// supplies what the placement left out and the quant ranges (a QDQ graph holds only the types).
inline qat_params extract_qat_params(const model& m) {
  qat_params out;
  for (const auto& [k, v] : m.metadata_props)
    if (k == "quench.qat_params") out = qat_params_from_json(v, "model metadata quench.qat_params");
  auto keep_range = [](std::map<std::string, qat_tensor_params>& map, const std::string& name, qat_tensor_params q) {
    auto it = map.find(name);
    if (it != map.end() && it->second.type == q.type && it->second.scales == q.scales && it->second.zero_points == q.zero_points &&
        it->second.axis == q.axis)
      return;  // the metadata's entry, with its quant range
    map[name] = std::move(q);
  };
  const graph& g = m.main_graph();
  for (const node* n : g.nodes()) {
    if (!n->domain().empty() && n->domain() != "ai.onnx") continue;
    if (n->is("QuantizeLinear")) {
      const value* x = n->input(0);
      if (!x) continue;
      const qparams p = detail::node_qparams(*n, m.opset());
      if (x->is_initializer()) {
        keep_range(out.weights, x->name(), detail::to_qat(p, static_cast<std::int64_t>(x->initializer()->rank())));
        continue;
      }
      if (p.granularity != quant_granularity::per_tensor)
        throw_error(errc::unsupported_op, n->context(), "unsupported QDQ pattern: a per-axis QuantizeLinear on activation '" + x->name() + "'");
      // The tensor the fake quant saw: before a Clip export_qat added for a narrow range.
      const value* src = x;
      if (x->producer() && x->producer()->is("Clip") && x->producer()->name().find("_qat_clip") != std::string::npos) src = x->producer()->input(0);
      keep_range(out.activations, src->name(), detail::to_qat(p, 0));
    } else if (n->is("DequantizeLinear")) {
      const value* x = n->input(0);
      if (!detail::is_integer_constant(x) || x->initializer()->dtype() == dtype::int32) continue;
      const qparams p = detail::node_qparams(*n, m.opset());
      const std::string name = detail::float_weight_name(*x);
      keep_range(out.weights, name, detail::to_qat(p, static_cast<std::int64_t>(x->initializer()->rank())));
      out.values[name] = std::make_shared<const tensor>(x->initializer()->clone());
    }
  }
  return out;
}

/// Removes every QuantizeLinear/DequantizeLinear from `m`: activations read the Q's input again,
/// integer initializers behind a DQ become float initializers with the dequantized values (named
/// as the weight was before quantization), int32 biases float again. The float model's tensors
/// keep the names extract_qat_params uses. Returns the number of Q/DQ nodes removed.
inline std::size_t strip_qdq(model& m) {
  detail::readable_constants(m);
  graph& g = m.main_graph();
  std::size_t removed = 0;
  std::vector<node*> dqs;
  for (node* n : g.nodes())
    if (n->is("DequantizeLinear") && (n->domain().empty() || n->domain() == "ai.onnx")) dqs.push_back(n);
  std::map<std::string, value*> dequantized;  // integer initializer -> its float version
  for (node* dq : dqs) {
    value* x = dq->input(0);
    value* src = nullptr;
    if (x && x->producer() && x->producer()->is("QuantizeLinear")) {
      src = x->producer()->input(0);
      for (const use& u : x->uses())
        if (!u.user->is("DequantizeLinear"))
          throw_error(errc::unsupported_op, u.user->context(), "unsupported QDQ pattern: reads QuantizeLinear output '" + x->name() + "' directly");
      // Undo export_qat's Clip for a narrow range.
      if (src->producer() && src->producer()->is("Clip") && src->producer()->name().find("_qat_clip") != std::string::npos)
        src = src->producer()->input(0);
    } else if (detail::is_integer_constant(x)) {
      auto it = dequantized.find(x->name());
      if (it == dequantized.end()) {
        tensor f = dequantize(*x->initializer(), detail::node_qparams(*dq, m.opset()));
        f.set_name(g.unique_name(detail::float_weight_name(*x)));
        it = dequantized.emplace(x->name(), &g.add_initializer(std::move(f))).first;
      }
      src = it->second;
    } else {
      throw_error(errc::unsupported_op, dq->context(),
                  "unsupported QDQ pattern: DequantizeLinear of '" + (x ? x->name() : std::string("<none>")) +
                      "', which is neither a QuantizeLinear output nor an integer constant");
    }
    value* out = dq->output(0);
    const bool graph_output = out->is_graph_output();
    const std::string out_name = out->name();
    g.replace_all_uses(*out, *src, true);
    g.remove_node(*dq);
    ++removed;
    if (graph_output && !src->is_initializer() && !src->is_graph_input() && !g.find_value(out_name)) g.rename_value(*src, out_name);
  }
  for (node* n : g.nodes())
    if (n->is("QuantizeLinear") && n->output(0) && !n->output(0)->has_uses() && !n->output(0)->is_graph_output()) {
      g.remove_node(*n);
      ++removed;
    }
  for (node* n : g.nodes())
    if (n->is("Clip") && n->name().find("_qat_clip") != std::string::npos && n->output(0) && !n->output(0)->has_uses()) g.remove_node(*n);
  g.remove_dead_code();
  for (auto it = m.metadata_props.begin(); it != m.metadata_props.end();)
    it = it->first == "quench.quantize" ? m.metadata_props.erase(it) : it + 1;
  return removed;
}

struct fold_options {
  /// Re-target to this profile's placement (ort, tensorrt); empty: keep the model's placement.
  std::optional<quant_profile> profile;
  /// For a re-target: samples for export_qat's float-tensor probe (null: zeros). Not owned.
  data::sample_source* samples = nullptr;
};

struct fold_report {
  std::size_t weights_folded = 0;   ///< Q -> DQ on float weights that became integer initializers
  std::size_t pairs_removed = 0;    ///< redundant Q -> DQ pairs
  std::size_t initializer_bytes_before = 0, initializer_bytes_after = 0;
  std::vector<std::string> folded;  ///< the weights, by name
  std::optional<export_report> retarget;
};

/// Folds `m` in place (see the header comment).
inline fold_report fold_qdq(model& m, const fold_options& opt = {}) {
  fold_report r;
  graph& g = m.main_graph();
  auto bytes = [&] {
    std::size_t b = 0;
    for (const value* v : g.initializers()) b += v->initializer()->nbytes();
    return b;
  };
  r.initializer_bytes_before = bytes();
  detail::readable_constants(m);  // torch's zero points behind Identity nodes, Constant scales
  if (opt.profile) {
    qat_params p = extract_qat_params(m);
    strip_qdq(m);
    export_options eo;
    eo.profile = *opt.profile;
    eo.samples = opt.samples;
    r.retarget = export_qat(m, p, eo);
    r.initializer_bytes_after = bytes();
    return r;
  }
  const std::int64_t opset = m.opset();
  // Weights: Q on a constant float tensor computed once, as ONNX Runtime would.
  for (node* q : g.nodes()) {
    if (!q->is("QuantizeLinear") || !(q->domain().empty() || q->domain() == "ai.onnx")) continue;
    value* w = q->input(0);
    if (!w || !w->is_initializer() || w->is_graph_input() || w->initializer()->dtype() != dtype::float32) continue;
    const qparams p = detail::node_qparams(*q, opset);
    value* qo = q->output(0);
    if (qo->is_graph_output())
      throw_error(errc::unsupported_op, q->context(), "unsupported QDQ pattern: a QuantizeLinear output is a graph output");
    for (const use& u : qo->uses())
      if (!u.user->is("DequantizeLinear"))
        throw_error(errc::unsupported_op, u.user->context(), "unsupported QDQ pattern: reads QuantizeLinear output '" + qo->name() + "' directly");
    tensor ints = quantize(*w->initializer(), p);
    ints.set_name(g.unique_name(w->name() + "_quantized"));
    value& iv = g.add_initializer(std::move(ints));
    const std::vector<use> uses = qo->uses();
    for (const use& u : uses) g.set_input(*u.user, static_cast<std::size_t>(u.index), &iv);
    g.remove_node(*q);
    ++r.weights_folded;
    r.folded.push_back(w->name());
  }
  // Redundant pairs: a Q whose input is already on its grid.
  for (bool changed = true; changed;) {
    changed = false;
    for (node* q : g.nodes()) {
      if (!q->is("QuantizeLinear") || !q->input(0) || q->input(0)->is_initializer()) continue;
      const qparams p = detail::node_qparams(*q, opset);
      if (p.granularity != quant_granularity::per_tensor) continue;
      const value* x = q->input(0);
      while (x->producer() && detail::is_value_preserving_op(x->producer()->op_type()) && x->producer()->input(0) &&
             x->producer()->outputs().size() == 1)
        x = x->producer()->input(0);
      const node* dq1 = x->producer();
      if (!dq1 || !dq1->is("DequantizeLinear") || !detail::same_qparams(detail::node_qparams(*dq1, opset), p)) continue;
      value* qo = q->output(0);
      bool all_same = !qo->is_graph_output();
      for (const use& u : qo->uses())
        all_same = all_same && u.user->is("DequantizeLinear") && detail::same_qparams(detail::node_qparams(*u.user, opset), p);
      if (!all_same) continue;
      value* in = q->input(0);
      const std::vector<use> uses = qo->uses();
      for (const use& u : uses) {
        node* dq2 = u.user;
        value* out = dq2->output(0);
        const bool graph_output = out->is_graph_output();
        const std::string name = out->name();
        g.replace_all_uses(*out, *in, true);
        g.remove_node(*dq2);
        if (graph_output && !in->is_graph_input() && !in->is_graph_output()) g.rename_value(*in, name);
      }
      g.remove_node(*q);
      ++r.pairs_removed;
      changed = true;
      break;
    }
  }
  g.remove_dead_code();
  r.initializer_bytes_after = bytes();
  return r;
}

}  // namespace quench::pipeline
