#pragma once
// convert_float16 / convert_bfloat16: a whole model in half precision, valid by the ONNX schemas
// and loadable by ONNX Runtime, with Casts wherever a node stays float32.
//
//     quench::model m = quench::onnx::load_model("net.onnx");
//     quench::pipeline::float16_options opt;
//     opt.keep_io_types = true;                        // float32 inputs and outputs
//     auto report = quench::pipeline::convert_float16(m, opt);
//     quench::onnx::save_model(m, "net.fp16.onnx");    // report.blocked says what stayed float32
//
// What changes (main graph and, recursively, If/Loop/Scan bodies): float32 initializers, Constant
// and ConstantOfShape values and other float attribute tensors become the half type (converted with
// the bulk SIMD converters of quench/numeric/convert.hpp); so do the graph inputs and outputs
// (unless keep_io_types), value_info entries and every float32 value a converted node produces.
// A converted Cast from an integer or bool to float32 casts to the half type instead. Integer, bool
// and shape paths, float64, sequences and existing float16 parts are left as they are; a Cast
// between float types is a precision boundary the model chose and stays.
//
// ONNX Runtime's x86 CPU provider computes most float16 ops in float32 behind Casts it inserts
// itself (its float16 kernels are data movement and Cast), so there the model is half the size,
// not faster; GPU and ARM providers compute in float16. bfloat16 defaults to weights only
// (half_compute::weights_only): that CPU provider has no bfloat16 compute kernels at all.
//
// A node stays float32 (options in detail/float16_options.hpp; every such node is listed in
// report.blocked with its reason) when it is
//   - in node_block_list, or its op in op_block_list (default_op_block_list(): Range, CumSum,
//     TopK, Q/DQ, random generators, ...), of another domain than ai.onnx, or a sequence op;
//   - without any position its ONNX schema lets hold the half type at the model's opset (Range,
//     Conv in bfloat16, DequantizeLinear's float output below opset 19; detail/float16_schema.hpp);
//     positions that must stay float (Resize's roi and scales) stay float32 on converted nodes;
//   - float arithmetic on shapes (block_shape_computations), a reader of a DequantizeLinear
//     (keep_qdq_float32), already float32 behind a Cast from the half type (so converting twice
//     changes nothing), or a reader of a constant beyond the half range (half_overflow::keep_float32);
//   - found by automatic blocking (options.auto_block, see detail/float16_evaluate.hpp).
// A value crossing between float32 and half gets one Cast per target type, shared by its readers;
// a Cast to half followed by a Cast back is removed, and so is a Cast left converting a type to
// itself. Constants read in both precisions stay float32 (their half readers share a Cast).
//
// The names of the nodes kept float32 are recorded in metadata_props ("quench.half.float32_nodes",
// one a line) and kept float32 when the model is converted again, so converting a converted model
// changes nothing.
//
// Errors: the plan is made and every input checked before the model is touched, so a thrown
// quench::error leaves the model unchanged. Deterministic: the same model and options give the
// same result.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/detail/float16_evaluate.hpp"
#include "quench/pipeline/detail/float16_options.hpp"
#include "quench/pipeline/detail/float16_plan.hpp"

namespace quench::pipeline {

namespace detail {

/// Bytes of every initializer and attribute tensor of `g` and its sub-graphs.
inline std::size_t constant_bytes(const graph& g) {
  std::size_t total = 0;
  for (const value* v : g.initializers()) total += v->initializer()->nbytes();
  for (const node* n : g.nodes())
    for (const attribute& a : n->attributes()) {
      if (a.t) total += a.t->nbytes();
      for (const auto& t : a.tensors) total += t->nbytes();
      if (a.g) total += constant_bytes(*a.g);
      for (const auto& sg : a.graphs) total += constant_bytes(*sg);
    }
  return total;
}

/// Renames `v` and the stand-ins through which sub-graphs read it, so they keep reading it.
inline void rename_with_stand_ins(graph& g, value& v, const std::string& name) {
  const std::string old = v.name();
  g.rename_value(v, name);
  for (const use& u : v.uses()) {
    if (u.index != use::implicit_use) continue;
    for (graph* sub : u.user->subgraphs())
      if (value* s = sub->find_value(old); s && s->outer() == &v) rename_with_stand_ins(*sub, *s, name);
  }
}

/// Carries out a plan.
class half_rewriter {
 public:
  half_rewriter(half_plan& plan, float16_report& report) : plan_(plan), report_(report) {}

  void apply(graph& g) {
    const std::vector<node*> nodes = g.nodes();
    std::map<std::pair<const value*, std::int32_t>, value*> casts;  // one Cast per value and target type

    // Constants first: their half form replaces the float32 data.
    for (value* v : g.initializers()) {
      if (plan_.type(v) != elem_float || plan_.final_type(v) != plan_.half) continue;
      const tensor* old = v->initializer();
      tensor half = take_half(*old, v->name());
      g.set_initializer(*v, std::move(half));
      // A typed float16 tensor would be written as one int32_data varint per element: raw is
      // half the size of that, and what every tool writes for float16.
      if (v->initializer_encoding() == tensor_encoding::typed) v->set_initializer_encoding(tensor_encoding::raw);
      ++report_.initializers_converted;
    }
    for (node* n : nodes) {
      if (n->is("Constant")) {
        if (n->output(0) && plan_.final_type(n->output(0)) == plan_.half && plan_.type(n->output(0)) == elem_float)
          convert_constant_node(*n);
        continue;
      }
      if (!plan_.converted.count(n)) continue;
      ++report_.nodes_converted;
      convert_attributes(*n);
      if (n->is("Cast") && n->attr_int("to", 0) == elem_float) {
        n->set_attribute(attribute::make_int("to", plan_.half));
        ours_.insert(n);
      }
      // Ops whose output type is an attribute (EyeLike's dtype, the window functions'
      // output_datatype, which defaults to float32) produce the half type when converted.
      for (const char* name : {"dtype", "output_datatype"}) {
        const attribute* a = n->find_attribute(name);
        const bool window = n->is("BlackmanWindow") || n->is("HammingWindow") || n->is("HannWindow") || n->is("MelWeightMatrix");
        if ((a && a->type == attribute_type::int_ && a->i == elem_float) || (!a && window && std::string(name) == "output_datatype"))
          n->set_attribute(attribute::make_int(name, plan_.half));
      }
    }

    // Types of the values (declared ones are written back; the others keep the graph consistent).
    std::unordered_set<const value*> declared(g.value_infos().begin(), g.value_infos().end());
    for (const value* v : g.inputs()) declared.insert(v);
    for (const value* v : g.outputs()) declared.insert(v);
    auto retype = [&](value* v) {
      if (!v || plan_.type(v) != elem_float) return;
      const std::int32_t t = plan_.final_type(v);
      if (v->elem_type() == t) return;
      v->set_elem_type(t);
      if (t == plan_.half && declared.count(v) && !v->is_outer_ref()) ++report_.values_retyped;
    };
    for (value* v : g.inputs()) retype(v);
    for (value* v : g.initializers()) retype(v);
    for (node* n : nodes) {
      for (value* v : n->inputs())
        if (v && v->is_outer_ref()) retype(v);
      for (value* v : n->outputs()) retype(v);
    }
    for (value* v : g.outputs()) retype(v);
    for (value* v : g.value_infos()) retype(v);

    // Readers that want another type than the value is stored in read it through a Cast.
    for (node* n : nodes) {
      for (std::size_t i = 0; i < n->inputs().size(); ++i) {
        value* v = n->input(i);
        if (!v || plan_.type(v) != elem_float) continue;
        const std::int32_t want = plan_.want(*n, i);
        if (want != plan_.final_type(v)) g.set_input(*n, i, &cast(g, *v, want, casts));
      }
    }
    for (std::size_t k = 0; k < g.outputs().size(); ++k) {
      value* v = g.outputs()[k];
      if (plan_.type(v) != elem_float) continue;
      const std::int32_t want = plan_.output_want(g, *v);
      if (want == plan_.final_type(v)) continue;
      if (!g.parent() && (v->producer() || v->is_initializer()) && !v->is_graph_input()) {
        // The main graph's outputs keep their names: the stored value is renamed and the Cast
        // produces the name the users of the model know.
        const std::string name = v->name();
        rename_with_stand_ins(g, *v, g.unique_name(name + "_" + elem_name(plan_.final_type(v))));
        node& c = g.add_node("Cast", {v}, {name}, g.unique_name(name + "_cast"));
        c.set_attribute(attribute::make_int("to", want));
        value& out = *c.output(0);
        forget(&out);
        out.set_elem_type(want);
        out.set_dims(v->dims());
        out.set_info_residual(v->info_residual());
        ours_.insert(&c);
        ++report_.casts_inserted;
        g.set_output(k, out);
      } else {
        g.set_output(k, cast(g, *v, want, casts));
      }
    }

    for (node* n : nodes)
      for (graph* sub : n->subgraphs()) apply(*sub);
    simplify_casts(g);
    g.topological_sort();
  }

 private:
  /// Drops stale plan entries for an address a new value now occupies.
  void forget(const value* v) {
    plan_.types.erase(v);
    plan_.storage.erase(v);
  }

  value& cast(graph& g, value& v, std::int32_t to, std::map<std::pair<const value*, std::int32_t>, value*>& casts) {
    auto key = std::make_pair(static_cast<const value*>(&v), to);
    if (auto it = casts.find(key); it != casts.end()) return *it->second;
    const std::string out_name = g.unique_name(v.name() + "_" + elem_name(to));
    node& c = g.add_node("Cast", {&v}, {out_name}, g.unique_name(out_name + "_cast"));
    c.set_attribute(attribute::make_int("to", to));
    value& out = *c.output(0);
    forget(&out);
    out.set_elem_type(to);
    out.set_dims(v.dims());
    ours_.insert(&c);
    ++report_.casts_inserted;
    casts.emplace(key, &out);
    return out;
  }

  /// The half form of constant `t` (moved out of the plan's cache: each is used once).
  tensor take_half(const tensor& t, const std::string& name) {
    plan_.constant(t);
    auto it = plan_.cache->constants.find(&t);
    half_constant& c = *it->second;
    note_range(name, c, false);
    tensor h = c.half ? std::move(*c.half) : plan_.half_of(t);  // a large constant: converted now
    h.set_name(name);
    // The float32 tensor goes away: its address may come back for another tensor.
    plan_.cache->constants.erase(it);
    return h;
  }

  void note_range(const std::string& name, const half_constant& c, bool kept) {
    if (c.overflow == 0 && c.underflow == 0) return;
    report_.out_of_range.push_back({name, c.overflow, c.underflow, c.max_abs, kept});
    if (!kept && plan_.opt->overflow == half_overflow::clamp) report_.values_clamped += c.overflow;
    if (!kept) report_.values_underflow += c.underflow;
  }

  void convert_constant_node(node& n) {
    const value* out = n.output(0);
    const tensor* data = plan_.constant_tensor(out);
    if (!data) return;
    tensor half = take_half(*data, "node '" + n.name() + "' value");
    for (std::size_t i = 0; i < n.attributes().size(); ++i) {
      attribute& a = n.attributes()[i];
      if (a.name == "value" && a.t) {
        // In place, so the tensor's other fields (doc string, name) and the attribute's stay.
        half.set_name(a.t->name());
        *a.t = std::move(half);
        if (!a.tensor_encodings.empty() && a.tensor_encodings[0] == tensor_encoding::typed) a.tensor_encodings[0] = tensor_encoding::raw;
        break;
      }
      if (a.name != "value_float" && a.name != "value_floats") continue;
      half.set_name({});
      n.attributes()[i] = attribute::make_tensor("value", std::move(half));  // same position
      break;
    }
    ++report_.constants_converted;
  }

  void convert_attributes(node& n) {
    for (attribute& a : n.attributes()) {
      auto one = [&](std::unique_ptr<tensor>& t, std::size_t index) {
        if (!t || t->dtype() != dtype::float32) return;
        tensor h = take_half(*t, "node '" + n.name() + "' attribute '" + a.name + "'");
        h.set_name(t->name());
        *t = std::move(h);
        if (index < a.tensor_encodings.size() && a.tensor_encodings[index] == tensor_encoding::typed)
          a.tensor_encodings[index] = tensor_encoding::raw;
        ++report_.constants_converted;
      };
      one(a.t, 0);
      for (std::size_t i = 0; i < a.tensors.size(); ++i) one(a.tensors[i], (a.t ? 1 : 0) + i);
    }
    if (n.is("ConstantOfShape") && !n.find_attribute("value")) {
      // The default value is a float32 zero; a half output needs a half zero spelled out.
      tensor zero(plan_.bf16 ? dtype::bfloat16 : dtype::float16, {1});
      n.set_attribute(attribute::make_tensor("value", std::move(zero)));
    }
  }

  std::int32_t type_now(const value* v) const { return plan_.final_type(v); }
  /// A Cast this conversion inserted or retargeted, or whose input it retyped.
  bool touched(const node* c) const {
    return ours_.count(c) || (c->input(0) && plan_.type(c->input(0)) != plan_.final_type(c->input(0)));
  }

  /// Takes out Cast pairs that come back to the type they started from, and Casts from a type to
  /// itself, where one of the Casts is this conversion's doing (a model's own Casts stay).
  void simplify_casts(graph& g) {
    for (bool changed = true; changed;) {
      changed = false;
      for (node* c2 : g.nodes()) {
        if (!c2->is("Cast") || !c2->input(0) || !c2->output(0) || c2->output(0)->is_graph_output()) continue;
        value* mid = c2->input(0);
        node* c1 = mid->producer();
        const bool c1_cast = c1 && c1->is("Cast") && c1->input(0);
        if (!touched(c2) && !(c1_cast && touched(c1))) continue;
        const std::int32_t to = static_cast<std::int32_t>(c2->attr_int("to", 0));
        value* src = nullptr;
        if (is_float_elem(to) && type_now(mid) == to) src = mid;
        else if (c1_cast && is_float_elem(to) && is_float_elem(type_now(mid)) && type_now(c1->input(0)) == to) src = c1->input(0);
        if (!src) continue;
        value* out = c2->output(0);
        g.replace_all_uses(*out, *src);
        forget(out);
        ours_.erase(c2);
        g.remove_node(*c2);
        ++report_.casts_removed;
        if (c1_cast && src != mid && !mid->has_uses() && !mid->is_graph_output()) {
          forget(mid);
          ours_.erase(c1);
          g.remove_node(*c1);
          ++report_.casts_removed;
        }
        changed = true;
        break;
      }
    }
  }

  half_plan& plan_;
  float16_report& report_;
  std::unordered_set<const node*> ours_;  ///< Casts inserted or retargeted by this conversion
};

/// Adds the names of the nodes kept float32 to the model's metadata (blocked_nodes_key), after
/// those an earlier conversion recorded, each once.
inline void record_blocked(model& m, const std::set<std::string>& earlier, const std::vector<half_blocked_node>& blocked) {
  std::string* list = nullptr;
  for (auto& kv : m.metadata_props)
    if (kv.first == blocked_nodes_key) list = &kv.second;
  std::set<std::string> seen = earlier;
  std::string added;
  for (const auto& b : blocked)
    if (!b.node.empty() && seen.insert(b.node).second) added += (added.empty() ? "" : "\n") + b.node;
  if (added.empty()) return;
  if (!list) {
    m.metadata_props.emplace_back(blocked_nodes_key, added);
  } else {
    if (!list->empty() && list->back() != '\n') *list += '\n';
    *list += added;
  }
}

inline float16_report convert_half(model& m, bool bf16, const float16_options& opt) {
  const char* what = bf16 ? "convert_bfloat16" : "convert_float16";
  // Cast to bfloat16 exists from opset 13; to float16 from opset 6 (Cast-1 spells `to` as a string).
  const std::int64_t opset = m.opset();
  if (bf16 && opset < 13)
    throw_error(errc::invalid_model, what, "bfloat16 needs opset 13 (Cast to bfloat16), the model imports " + std::to_string(opset));
  if (!bf16 && opset < 6)
    throw_error(errc::invalid_model, what, "float16 Casts need opset 6, the model imports " + std::to_string(opset));
  if (opt.auto_block.max_relative_error <= 0 || !std::isfinite(opt.auto_block.max_relative_error))
    throw_error(errc::invalid_argument, what, "auto_block.max_relative_error must be positive and finite");
  m.main_graph().check_invariants();

  float16_report report;
  report.type = bf16 ? dtype::bfloat16 : dtype::float16;
  half_cache cache;
  std::unordered_map<const node*, std::string> extra;
  if (!opt.auto_block.samples.empty()) {
    half_evaluator eval(m, opt.auto_block);
    const half_plan first = make_plan(m, bf16, opt, cache);
    eval.run(first, &extra, report.simulated_before);
    const half_plan second = make_plan(m, bf16, opt, cache, extra);
    eval.run(second, nullptr, report.simulated_after);
  }
  half_plan plan = make_plan(m, bf16, opt, cache, extra);
  report.compute = plan.compute;
  // Report in graph order, so the same model always gives the same report.
  std::function<void(const graph&)> list_blocked = [&](const graph& g) {
    for (const node* n : dependency_order(g)) {
      if (auto it = plan.blocked.find(n); it != plan.blocked.end()) {
        report.blocked.push_back({n->name(), n->op_type(), it->second});
        if (extra.count(n)) report.auto_blocked.push_back(report.blocked.back());
      }
      for (const graph* sub : n->subgraphs()) list_blocked(*sub);
    }
  };
  list_blocked(m.main_graph());
  // Constants that stay float32 because they do not fit are reported as such.
  std::function<void(const graph&)> list_kept = [&](const graph& g) {
    for (const value* v : g.initializers()) {
      if (plan.type(v) != elem_float || plan.final_type(v) != elem_float) continue;
      auto it = cache.constants.find(v->initializer());
      if (it != cache.constants.end() && it->second->overflow > 0)
        report.out_of_range.push_back({v->name(), it->second->overflow, it->second->underflow, it->second->max_abs, true});
    }
    for (const node* n : g.nodes())
      for (const graph* sub : n->subgraphs()) list_kept(*sub);
  };
  list_kept(m.main_graph());

  report.bytes_before = constant_bytes(m.main_graph());
  half_rewriter(plan, report).apply(m.main_graph());
  report.bytes_after = constant_bytes(m.main_graph());
  record_blocked(m, plan.earlier_blocked, report.blocked);
  return report;
}

}  // namespace detail

/// Converts `m` to float16 in place (see the header comment); returns what changed and what stayed
/// float32. Throws quench::error, leaving `m` unchanged, for a model below opset 6, bad options,
/// or (automatic blocking) a model the executor cannot run or samples that do not fit it.
///
///     auto report = quench::pipeline::convert_float16(m);
///     for (const auto& b : report.blocked) std::printf("%s: %s\n", b.node.c_str(), b.reason.c_str());
inline float16_report convert_float16(model& m, const float16_options& opt = {}) { return detail::convert_half(m, false, opt); }

/// Converts `m` to bfloat16 in place. By default (half_compute::weights_only) only the weights
/// are stored in bfloat16, each with a Cast to float32, because ONNX Runtime's CPU provider has
/// no bfloat16 kernels for compute ops; set `opt.compute = half_compute::all` for runtimes that
/// compute in bfloat16 (the model is then valid by the schemas, which keep Conv, pooling and a few
/// other ops float32 until opset 22). Needs opset 13.
///
///     quench::pipeline::float16_options opt;
///     opt.compute = quench::pipeline::half_compute::all;
///     auto report = quench::pipeline::convert_bfloat16(m, opt);
inline float16_report convert_bfloat16(model& m, const float16_options& opt = {}) { return detail::convert_half(m, true, opt); }

}  // namespace quench::pipeline
