#pragma once
// upgrade_opset: moves a model's ai.onnx opset forward (to 13 for per-channel QuantizeLinear, 19
// for float8, 21 for int4/int16), rewriting every node whose operator changed meaning on the way.

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/detail/opset_table.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"
#include "quench/graph/passes/report.hpp"
#include "quench/numeric/float16.hpp"

namespace quench::passes {

struct upgrade_options {
  /// Non-default domains whose operators do not depend on the ai.onnx version, so their nodes
  /// stay as they are. Any other domain (a model-local function, say, whose body is written in
  /// ai.onnx operators) is refused.
  std::vector<std::string> independent_domains{"ai.onnx.ml", "com.microsoft"};
};

/// What upgrade_opset did. `rewrites` counts rewritten nodes (a node whose definition changed on
/// the way, whatever the number of steps); nodes whose operator only changed version are
/// `moved`. `kept` stays empty: what cannot be upgraded exactly is an error, not a note.
struct upgrade_report : pass_report {
  std::int64_t from = 0, to = 0;
  /// ai.onnx nodes seen, in the main graph and every sub-graph.
  std::size_t nodes = 0;
  /// ai.onnx nodes that needed nothing but the new opset import.
  std::size_t moved = 0;
  /// Rewritten nodes per operator (as the node was before the upgrade).
  std::map<std::string, std::size_t> rewritten;
  /// One line per rewritten node: "node 'sm' (Softmax) 11 -> 13: Flatten(axis=2) + Softmax(axis=1) + Reshape".
  std::vector<std::string> changes;
};

}  // namespace quench::passes

namespace quench::detail {

/// One node on its way through the versions of its operator.
struct upgrade_step {
  graph& g;
  node* n;                  ///< the node; a step that replaces it points this at the replacement
  std::int64_t from = 0;    ///< definition the node has (a since_version)
  std::int64_t to = 0;      ///< definition this step produces
  std::int64_t target = 0;  ///< the opset the whole pass goes to
  std::int64_t origin = 0;  ///< definition the node had before the pass
  bool dry_run = false;     ///< validate only: throw what the real run would, change nothing
  bool from_upsample = false;  ///< a Resize-10 made from Upsample (its scales are >= 1)
  bool replaced_op = false;    ///< the node became another operator; its history continues there
  std::vector<std::string> what;  ///< what the steps changed, for the report

  [[noreturn]] void fail(errc code, const std::string& message) const {
    throw_error(code, n->context(),
                message + " (upgrading " + n->op_type() + "-" + std::to_string(from) + " to " +
                    n->op_type() + "-" + std::to_string(to) + ")");
  }
};

using upgrade_step_fn = void (*)(upgrade_step&);

// ---- small graph helpers ------------------------------------------------------------------------

inline std::string upgrade_base_name(const node& n) {
  if (!n.name().empty()) return n.name();
  for (const value* o : n.outputs())
    if (o) return o->name();
  return n.op_type();
}

inline std::string ints_text(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// A new 1-D int64 initializer of `g` named after `n` and `what`.
inline value& add_int64s(graph& g, const node& n, const std::string& what, const std::vector<std::int64_t>& v) {
  tensor t(dtype::int64, shape{static_cast<std::int64_t>(v.size())}, g.unique_name(upgrade_base_name(n) + "_" + what));
  std::copy(v.begin(), v.end(), t.view<std::int64_t>().begin());
  return g.add_initializer(std::move(t));
}

/// A new scalar initializer of element type `type` (float32, float64 or float16) holding `v`.
inline value& add_float_scalar(graph& g, const node& n, const std::string& what, dtype type, double v) {
  tensor t(type, shape{}, g.unique_name(upgrade_base_name(n) + "_" + what));
  if (type == dtype::float32) t.view<float>()[0] = static_cast<float>(v);
  else if (type == dtype::float64) t.view<double>()[0] = v;
  else t.view<float16>()[0] = float16(static_cast<float>(v));
  return g.add_initializer(std::move(t));
}

/// The data of `v` when it is constant: an initializer (see constant_tensor) or the output of a
/// Constant node holding a tensor.
inline const tensor* upgrade_constant(const value* v) {
  if (const tensor* t = constant_tensor(v)) return t;
  v = resolve_outer(v);
  if (v && v->producer() && v->producer()->is("Constant"))
    if (const attribute* a = v->producer()->find_attribute("value"); a && a->type == attribute_type::tensor && a->t)
      return a->t.get();
  return nullptr;
}

/// Element type of `v`: declared, or followed back through operators whose output has the type of
/// their first input (the type constraint T shared by input 0 and output 0 in their schemas).
/// dtype::undefined when nothing says; run quench::onnx::infer_shapes first for the rest.
inline dtype upgrade_known_dtype(const value* v) {
  for (int depth = 0; v && depth < 64; ++depth) {
    if (v->elem_type() != 0) return v->dtype();
    v = resolve_outer(v);
    if (v->is_initializer()) return v->initializer()->dtype();
    const node* p = v->producer();
    if (!p || (!p->domain().empty() && p->domain() != "ai.onnx")) return dtype::undefined;
    const std::string& op = p->op_type();
    if (op == "Cast") {
      const attribute* to = p->find_attribute("to");
      if (to && to->type == attribute_type::int_ && is_known_dtype(static_cast<std::int32_t>(to->i)))
        return static_cast<dtype>(to->i);
      return dtype::undefined;
    }
    if (op == "Constant") {
      const attribute* a = p->find_attribute("value");
      return a && a->t ? a->t->dtype() : dtype::undefined;
    }
    static const char* const same_type[] = {
        "Abs", "Add", "AveragePool", "BatchNormalization", "Ceil", "Celu", "Clip", "Concat", "Conv",
        "ConvTranspose", "Cos", "DepthToSpace", "Div", "Dropout", "Elu", "Erf", "Exp", "Expand", "Flatten",
        "Floor", "Gather", "GatherElements", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool",
        "GlobalMaxPool", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization", "LRN",
        "LeakyRelu", "Log", "LogSoftmax", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mul", "Neg",
        "PRelu", "Pad", "Pow", "Reciprocal", "Relu", "Reshape", "Resize", "Round", "Selu", "Sigmoid", "Sign",
        "Sin", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub",
        "Sum", "Tanh", "ThresholdedRelu", "Tile", "Transpose", "Unsqueeze", "Upsample"};
    if (std::find(std::begin(same_type), std::end(same_type), op) == std::end(same_type)) return dtype::undefined;
    // Dropout's mask and MaxPool's indices are not of type T; every output of Split is.
    if (v->producer_output() != 0 && op != "Split") return dtype::undefined;
    v = p->input(0);
  }
  return dtype::undefined;
}

inline bool upgrade_is_any_of(const std::string& op, std::initializer_list<const char*> ops) {
  for (const char* o : ops)
    if (op == o) return true;
  return false;
}

/// Number of axes in an `axes` list of `p`: the attribute, or a constant input 1 (the form from
/// opset 13, which an earlier rewrite of this pass may already have produced).
inline std::optional<std::int64_t> upgrade_axes_count(const node& p) {
  if (const attribute* a = p.find_attribute("axes"))
    return a->type == attribute_type::ints ? std::optional<std::int64_t>(static_cast<std::int64_t>(a->ints.size()))
                                           : std::nullopt;
  if (const tensor* t = upgrade_constant(p.input(1)); t && t->rank() == 1) return static_cast<std::int64_t>(t->size());
  return std::nullopt;
}

/// Rank of `v`: declared, or derived from the producer by the output-rank rules of its schema
/// (same rank as input 0; the largest input rank for broadcasting operators; the shape length
/// for Reshape; MatMul's 1-D promotion; Squeeze/Unsqueeze by their axes). ONNX's shape inference
/// leaves a Reshape to a computed shape without a rank, which is what torch exports at opset 9
/// before a Softmax. Nullopt when nothing says; `budget` bounds the walk.
inline std::optional<std::int64_t> upgrade_known_rank(const value* v, int& budget) {
  if (!v || --budget < 0) return std::nullopt;
  if (v->dims()) return static_cast<std::int64_t>(v->dims()->size());
  v = resolve_outer(v);
  if (v->dims()) return static_cast<std::int64_t>(v->dims()->size());
  if (v->is_initializer()) return static_cast<std::int64_t>(v->initializer()->rank());
  const node* p = v->producer();
  if (!p || (!p->domain().empty() && p->domain() != "ai.onnx")) return std::nullopt;
  const std::string& op = p->op_type();
  auto in0 = [&] { return upgrade_known_rank(p->input(0), budget); };
  if (upgrade_is_any_of(op, {"Abs", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Cos", "Elu", "Erf", "Exp", "Floor",
                             "Gelu", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "LeakyRelu", "Log",
                             "LogSoftmax", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign",
                             "Sin", "Softmax", "Softplus", "Softsign", "Sqrt", "Tanh", "ThresholdedRelu",
                             "InstanceNormalization", "LRN", "QuantizeLinear", "DequantizeLinear", "Concat", "Split",
                             "Slice", "Pad", "Tile", "Resize", "Upsample", "Conv", "ConvTranspose", "AveragePool",
                             "GlobalAveragePool", "GlobalMaxPool", "Transpose", "DepthToSpace", "SpaceToDepth"}))
    return in0();
  // Dropout, BatchNormalization, LayerNormalization and MaxPool: output 0 has the input's shape.
  if (upgrade_is_any_of(op, {"Dropout", "BatchNormalization", "LayerNormalization", "MaxPool"}))
    return v->producer_output() == 0 ? in0() : std::nullopt;
  if (upgrade_is_any_of(op, {"Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Max", "Min", "Sum", "Mean", "Equal", "Less",
                             "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where"})) {
    std::int64_t r = 0;
    for (const value* in : p->inputs()) {
      const auto ri = upgrade_known_rank(in, budget);
      if (!in || !ri) return std::nullopt;
      r = std::max(r, *ri);
    }
    return r;
  }
  if (op == "MatMul") {
    const auto a = in0(), b = upgrade_known_rank(p->input(1), budget);
    if (!a || !b || *a < 1 || *b < 1) return std::nullopt;
    if (*a == 1 && *b == 1) return 0;
    if (*a == 1 || *b == 1) return std::max(*a, *b) - 1;
    return std::max(*a, *b);
  }
  if (op == "Reshape") {
    if (const attribute* a = p->find_attribute("shape"); a && a->type == attribute_type::ints)
      return static_cast<std::int64_t>(a->ints.size());  // Reshape-1
    const value* s = p->input(1);
    if (const tensor* t = upgrade_constant(s); t && t->rank() == 1) return static_cast<std::int64_t>(t->size());
    if (s && s->dims() && s->dims()->size() == 1 && (*s->dims())[0].value) return *(*s->dims())[0].value;
    return std::nullopt;
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    const auto r = in0();
    const auto k = upgrade_axes_count(*p);
    // An empty Squeeze list removes every size-1 axis, however many there are.
    if (!r || !k || (*k == 0 && op == "Squeeze")) return std::nullopt;
    return op == "Squeeze" ? *r - *k : *r + *k;
  }
  if (op == "Flatten" || op == "Gemm") return 2;
  if (op == "Shape") return 1;
  return std::nullopt;
}

/// Replaces node `old` by the nodes already built: every use of old's output i (node inputs,
/// sub-graph reads, graph output slots) moves to `repl[i]`, which then takes the old output's
/// name, so consumers and users see the same tensor names. `repl[i]` may be null for an output
/// nothing reads. `old` is removed.
inline void upgrade_replace_outputs(graph& g, node& old, const std::vector<value*>& repl) {
  std::vector<std::pair<value*, std::string>> renames;
  std::vector<bool> listed;
  for (std::size_t i = 0; i < old.outputs().size(); ++i) {
    value* gone = old.output(i);
    if (!gone) continue;
    value* keep = i < repl.size() ? repl[i] : nullptr;
    if (!keep) {
      if (gone->has_uses() || gone->is_graph_output())
        throw_error(errc::invalid_argument, old.context(), "output '" + gone->name() + "' is used but has no replacement");
      continue;
    }
    if (keep->elem_type() == 0) keep->set_elem_type(gone->elem_type());
    if (!keep->dims() && gone->dims()) keep->set_dims(gone->dims());
    keep->set_type_residual(gone->type_residual());
    keep->set_info_residual(gone->info_residual());
    const auto infos = g.value_infos();
    const bool had_info = std::find(infos.begin(), infos.end(), gone) != infos.end();
    g.replace_all_uses(*gone, *keep, /*include_outputs=*/true);
    renames.emplace_back(keep, gone->name());
    listed.push_back(had_info && !keep->is_graph_output());
  }
  g.remove_node(old);
  for (std::size_t i = 0; i < renames.size(); ++i) {
    value& keep = *renames[i].first;
    sync_stand_ins(keep, {renames[i].second});
    rename_value(g, keep, renames[i].second);
    if (listed[i]) g.add_value_info(keep);
  }
}

/// A new node placed just before `before` (so the order stays topological), named after it.
inline node& upgrade_add_before(graph& g, node& before, const std::string& op, const std::vector<value*>& inputs,
                                const std::vector<std::string>& outputs, const std::string& suffix) {
  node& n = g.add_node(op, inputs, outputs, g.unique_name(upgrade_base_name(before) + "_" + suffix));
  g.move_before(n, before);
  return n;
}

/// Throws invalid_model unless `n` has between `lo` and `hi` inputs, the first `lo` present.
inline void upgrade_expect_inputs(const upgrade_step& s, std::size_t lo, std::size_t hi) {
  const auto& ins = s.n->inputs();
  if (ins.size() < lo || ins.size() > hi)
    s.fail(errc::invalid_model, "has " + std::to_string(ins.size()) + " inputs, " + s.n->op_type() + "-" +
                                    std::to_string(s.from) + " takes " +
                                    (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)));
  for (std::size_t i = 0; i < lo; ++i)
    if (!ins[i]) s.fail(errc::invalid_model, "required input " + std::to_string(i) + " is missing");
}

// ---- the rewrites, one per (operator, version) whose definition changed ------------------------

/// Softmax, LogSoftmax, Hardmax 1/11 -> 13. The old definitions coerce the input to 2-D at `axis`
/// ([d0*...*d(axis-1), d(axis)*...]) and normalize each row; from 13 they normalize along `axis`
/// alone (default -1 instead of 1). The same when `axis` is the last axis; otherwise the old
/// meaning is spelled out as Flatten(axis) -> op(axis=1) -> Reshape(Shape(input)).
inline void upgrade_softmax_13(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (n.outputs().size() != 1 || !n.output(0)) s.fail(errc::invalid_model, "expected exactly one output");
  const std::int64_t axis = n.attr_int("axis", 1);
  value& x = *n.input(0);
  int budget = 256;
  const std::optional<std::int64_t> rank = upgrade_known_rank(&x, budget);
  if (rank && (axis < -*rank || axis >= *rank))
    s.fail(errc::invalid_model, "axis " + std::to_string(axis) + " is outside [-r, r-1] for input '" + x.name() +
                                    "' of rank " + std::to_string(*rank));
  const bool last = axis == -1 || (rank && (axis < 0 ? axis + *rank : axis) == *rank - 1);
  if (s.dry_run) return;
  if (last) {
    // The default changed from 1 to -1: an implicit axis is written out.
    if (!n.find_attribute("axis")) {
      n.set_attribute(attribute::make_int("axis", axis));
      s.what.push_back("axis 1 (the last axis) made explicit");
    }
    return;
  }
  graph& g = s.g;
  value& y = *n.output(0);
  const std::string op = n.op_type();
  node& flat = upgrade_add_before(g, n, "Flatten", {&x}, {g.unique_name(y.name() + "_2d")}, "flatten");
  flat.set_attribute(attribute::make_int("axis", axis));
  node& op2 = g.add_node(op, {flat.output(0)}, {g.unique_name(y.name() + "_2d_out")}, n.name());
  g.move_before(op2, n);
  op2.set_attribute(attribute::make_int("axis", 1));
  op2.set_doc_string(n.doc_string());
  node& sh = upgrade_add_before(g, n, "Shape", {&x}, {g.unique_name(y.name() + "_shape")}, "shape");
  node& back = upgrade_add_before(g, n, "Reshape", {op2.output(0), sh.output(0)}, {g.unique_name(y.name() + "_nd")},
                                  "reshape");
  // Reshape-14's allowzero keeps a 0 in the shape literal (an empty input) instead of copying a
  // dimension of the 2-D tensor; Reshape-13 cannot say so.
  if (s.target >= 14) back.set_attribute(attribute::make_int("allowzero", 1));
  const std::int32_t elem = x.elem_type() ? x.elem_type() : y.elem_type();
  flat.output(0)->set_elem_type(elem);
  op2.output(0)->set_elem_type(elem);
  sh.output(0)->set_elem_type(static_cast<std::int32_t>(dtype::int64));
  if (rank) sh.output(0)->set_dims(std::vector<dim>{dim{*rank, {}}});
  upgrade_replace_outputs(g, n, {back.output(0)});
  s.n = &op2;
  s.what.push_back("axis " + std::to_string(axis) + (rank ? " of a rank-" + std::to_string(*rank) + " input" : " (rank unknown)") +
                   ": Flatten(axis=" + std::to_string(axis) + ") + " + op + "(axis=1) + Reshape(Shape)");
}

/// Squeeze/Unsqueeze 13, ReduceSum 13, the other Reduce* 18: the `axes` attribute becomes input 1.
inline void upgrade_axes_to_input(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  const bool required = n.op_type() == "Unsqueeze";
  if (!n.find_attribute("axes")) {
    if (required) s.fail(errc::invalid_model, "has no 'axes' attribute, which Unsqueeze requires");
    return;
  }
  const std::vector<std::int64_t> axes = n.attr_ints("axes", {});
  if (s.dry_run) return;
  n.remove_attribute("axes");
  // For Squeeze and the reductions an empty list and no list both mean "all axes" (every
  // size-1 axis); an absent input says so at any version. Unsqueeze with [] inserts nothing.
  if (axes.empty() && !required) {
    s.what.push_back("empty axes dropped");
    return;
  }
  s.g.append_input(n, &add_int64s(s.g, n, "axes", axes));
  s.what.push_back("axes " + ints_text(axes) + " -> input");
}

/// Split 13: the `split` attribute becomes input 1.
inline void upgrade_split_13(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (!n.find_attribute("split")) return;
  const std::vector<std::int64_t> split = n.attr_ints("split", {});
  if (s.dry_run) return;
  n.remove_attribute("split");
  s.g.append_input(n, &add_int64s(s.g, n, "split", split));
  s.what.push_back("split " + ints_text(split) + " -> input");
}

/// Split 18: without a `split` input the number of parts is the `num_outputs` attribute. Equal
/// parts (what Split-13 required) come out the same.
inline void upgrade_split_18(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 2);
  // In a dry run the split attribute of an older node has not moved to the input yet.
  if (n.input(1) || (s.dry_run && n.find_attribute("split"))) return;
  if (n.find_attribute("num_outputs")) s.fail(errc::invalid_model, "has a 'num_outputs' attribute before opset 18");
  if (s.dry_run) return;
  const auto parts = static_cast<std::int64_t>(n.outputs().size());
  n.set_attribute(attribute::make_int("num_outputs", parts));
  s.what.push_back("num_outputs = " + std::to_string(parts));
}

/// Clip 11: `min`/`max` attributes become inputs 1 and 2, scalars of the input's type. Clip-6's
/// absent bounds are -FLT_MAX/FLT_MAX; Clip-11's are the type's lowest/max, the same numbers for
/// float, so for float they stay absent and for float16/double they are written out.
inline void upgrade_clip_11(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  const bool has_min = n.find_attribute("min") != nullptr, has_max = n.find_attribute("max") != nullptr;
  const double lo = n.attr_float("min", -FLT_MAX), hi = n.attr_float("max", FLT_MAX);
  const dtype t = upgrade_known_dtype(n.input(0));
  if (t == dtype::undefined && (has_min || has_max))
    s.fail(errc::unsupported_op, "the element type of input '" + n.input(0)->name() +
                                     "' is unknown, so the min/max inputs cannot be typed (run shape inference first)");
  if (t != dtype::undefined && t != dtype::float32 && t != dtype::float64 && t != dtype::float16)
    s.fail(errc::invalid_model, "input '" + n.input(0)->name() + "' is " + to_string(t) + "; Clip-6 takes float types");
  if (s.dry_run) return;
  n.remove_attribute("min");
  n.remove_attribute("max");
  const bool write_min = has_min || (t != dtype::float32 && t != dtype::undefined);
  const bool write_max = has_max || (t != dtype::float32 && t != dtype::undefined);
  if (!write_min && !write_max) {
    if (t == dtype::undefined) s.what.push_back("no bounds (input type unknown: assumed float)");
    return;
  }
  s.g.append_input(n, write_min ? &add_float_scalar(s.g, n, "min", t, lo) : nullptr);
  if (write_max) s.g.append_input(n, &add_float_scalar(s.g, n, "max", t, hi));
  s.what.push_back("min/max -> inputs (" + to_string(t) + ")");
}

/// Slice 10: `starts`, `ends` and `axes` become inputs 1 to 3 (int64).
inline void upgrade_slice_10(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (!n.find_attribute("starts") || !n.find_attribute("ends"))
    s.fail(errc::invalid_model, "needs the 'starts' and 'ends' attributes");
  const auto starts = n.attr_ints("starts", {}), ends = n.attr_ints("ends", {});
  const bool has_axes = n.find_attribute("axes") != nullptr;
  const auto axes = n.attr_ints("axes", {});
  if (starts.size() != ends.size() || (has_axes && axes.size() != starts.size()))
    s.fail(errc::invalid_model, "starts, ends and axes have " + std::to_string(starts.size()) + ", " +
                                    std::to_string(ends.size()) + " and " + std::to_string(axes.size()) + " entries");
  if (s.dry_run) return;
  for (const char* a : {"starts", "ends", "axes"}) n.remove_attribute(a);
  s.g.append_input(n, &add_int64s(s.g, n, "starts", starts));
  s.g.append_input(n, &add_int64s(s.g, n, "ends", ends));
  if (has_axes) s.g.append_input(n, &add_int64s(s.g, n, "axes", axes));
  s.what.push_back("starts/ends" + std::string(has_axes ? "/axes" : "") + " -> inputs");
}

/// Pad 11: `pads` becomes input 1 (int64), a non-zero constant `value` input 2 (a scalar of the
/// input's type).
inline void upgrade_pad_11(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (!n.find_attribute("pads")) s.fail(errc::invalid_model, "has no 'pads' attribute");
  const auto pads = n.attr_ints("pads", {});
  if (pads.size() % 2) s.fail(errc::invalid_model, "pads has an odd number of entries (" + std::to_string(pads.size()) + ")");
  const std::string mode = n.attr_string("mode", "constant");
  const double v = n.attr_float("value", 0.f);
  const bool write_value = mode == "constant" && v != 0.0;
  const dtype t = write_value ? upgrade_known_dtype(n.input(0)) : dtype::undefined;
  if (write_value && t == dtype::undefined)
    s.fail(errc::unsupported_op, "the element type of input '" + n.input(0)->name() +
                                     "' is unknown, so the constant_value input cannot be typed (run shape inference first)");
  if (write_value && t != dtype::float32 && t != dtype::float64 && t != dtype::float16)
    s.fail(errc::invalid_model, "input '" + n.input(0)->name() + "' is " + to_string(t) + "; Pad-2 takes float types");
  if (s.dry_run) return;
  n.remove_attribute("pads");
  n.remove_attribute("value");
  s.g.append_input(n, &add_int64s(s.g, n, "pads", pads));
  if (write_value) s.g.append_input(n, &add_float_scalar(s.g, n, "value", t, v));
  s.what.push_back(std::string("pads") + (write_value ? "/value" : "") + " -> inputs");
}

/// TopK 10: `k` becomes input 1 (int64 [1]).
inline void upgrade_topk_10(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (!n.find_attribute("k")) s.fail(errc::invalid_model, "has no 'k' attribute");
  const std::int64_t k = n.attr_int("k", 0);
  if (s.dry_run) return;
  n.remove_attribute("k");
  s.g.append_input(n, &add_int64s(s.g, n, "k", {k}));
  s.what.push_back("k = " + std::to_string(k) + " -> input");
}

/// Upsample 9: the `scales` attribute becomes input 1 (float).
inline void upgrade_upsample_9(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  const attribute* a = n.find_attribute("scales");
  if (!a) s.fail(errc::invalid_model, "has no 'scales' attribute, which Upsample-7 requires");
  if (a->type != attribute_type::floats) s.fail(errc::invalid_model, "attribute 'scales' is not a list of floats");
  if (s.dry_run) return;
  tensor t(dtype::float32, shape{static_cast<std::int64_t>(a->floats.size())},
           s.g.unique_name(upgrade_base_name(n) + "_scales"));
  std::copy(a->floats.begin(), a->floats.end(), t.view<float>().begin());
  n.remove_attribute("scales");
  s.g.append_input(n, &s.g.add_initializer(std::move(t)));
  s.what.push_back("scales -> input");
}

/// Upsample 10: deprecated; the same computation is Resize-10 (X, scales, mode). The Resize
/// steps that follow write out what Resize-10 implied.
inline void upgrade_upsample_to_resize(upgrade_step& s) {
  node& n = *s.n;
  // In a dry run an Upsample-7's scales attribute has not moved to the input yet.
  const bool pending = s.dry_run && s.origin < 9;
  upgrade_expect_inputs(s, pending ? 1 : 2, pending ? 1 : 2);
  std::string mode = n.attr_string("mode", "nearest");
  if (mode == "bilinear") mode = "linear";  // Upsample-1's spelling, which runtimes still accept
  if (mode != "nearest" && mode != "linear") s.fail(errc::invalid_model, "mode '" + mode + "' is not an Upsample mode");
  for (const attribute& a : n.attributes())
    if (a.name != "mode" && !(pending && a.name == "scales"))
      s.fail(errc::invalid_model, "has attribute '" + a.name + "', which Upsample-9 does not define");
  value* y = n.output(0);
  if (n.outputs().size() != 1 || !y) s.fail(errc::invalid_model, "expected exactly one output");
  s.replaced_op = true;
  if (s.dry_run) return;
  graph& g = s.g;
  node& r = g.add_node("Resize", {n.input(0), n.input(1)}, {g.unique_name(y->name() + "_resized")}, n.name());
  g.move_before(r, n);
  r.set_attribute(attribute::make_string("mode", mode));
  r.set_doc_string(n.doc_string());
  upgrade_replace_outputs(g, n, {r.output(0)});
  s.n = &r;
  s.from_upsample = true;
  s.what.push_back("Upsample -> Resize-10 (mode " + mode + ")");
}

/// Resize 11. Resize-10 maps output coordinates as x / scale ("asymmetric") and rounds nearest
/// neighbours down when upsampling and up when downsampling (ONNX Runtime's and quench's
/// executor's reading, quench/runtime/ops/resize.hpp), per axis. Resize-11 takes an roi input
/// before scales, coordinate_transformation_mode (default half_pixel) and one nearest_mode for
/// all axes: asymmetric, with floor when every scale is >= 1 and ceil when every scale is <= 1.
inline void upgrade_resize_11(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 2, 2);
  const std::string mode = n.attr_string("mode", "nearest");
  if (mode != "nearest" && mode != "linear") s.fail(errc::invalid_model, "mode '" + mode + "' is not a Resize-10 mode");
  std::string rounding;
  if (mode == "nearest") {
    if (s.from_upsample) {
      rounding = "floor";  // Upsample scales are >= 1
    } else {
      const tensor* sc = upgrade_constant(n.input(1));
      if (!sc || sc->dtype() != dtype::float32)
        s.fail(errc::unsupported_op, "scales '" + n.input(1)->name() +
                                         "' is not a float constant, so Resize-10's nearest rounding (down when "
                                         "upsampling, up when downsampling, per axis) cannot be written as one "
                                         "nearest_mode");
      bool up = true, down = true;
      for (float f : sc->view<float>()) {
        up = up && f >= 1.f;
        down = down && f <= 1.f;
      }
      if (!up && !down)
        s.fail(errc::unsupported_op, "scales '" + n.input(1)->name() +
                                         "' upsample some axes and downsample others; Resize-10 rounds those "
                                         "differently, one nearest_mode cannot");
      rounding = up ? "floor" : "ceil";
    }
  }
  if (s.dry_run) return;
  value* scales = n.input(1);
  value* roi = nullptr;
  // roi is optional from 13 on; Resize-11/12 need an input there, which asymmetric ignores.
  if (s.target < 13) {
    tensor empty(dtype::float32, shape{0}, s.g.unique_name(upgrade_base_name(n) + "_roi"));
    roi = &s.g.add_initializer(std::move(empty));
  }
  s.g.set_input(n, 1, roi);
  s.g.append_input(n, scales);
  n.set_attribute(attribute::make_string("coordinate_transformation_mode", "asymmetric"));
  if (!rounding.empty()) n.set_attribute(attribute::make_string("nearest_mode", rounding));
  s.what.push_back("roi input, coordinate_transformation_mode asymmetric" +
                   (rounding.empty() ? std::string() : ", nearest_mode " + rounding));
}

/// Resize 13 drops coordinate_transformation_mode tf_half_pixel_for_nn, which no later mode
/// expresses.
inline void upgrade_resize_13(upgrade_step& s) {
  const std::string ct = s.n->attr_string("coordinate_transformation_mode", "half_pixel");
  if (ct == "tf_half_pixel_for_nn")
    s.fail(errc::unsupported_op, "coordinate_transformation_mode tf_half_pixel_for_nn was removed at opset 13 "
                                 "and no other mode computes (x + 0.5) / scale");
}

/// Attributes of opset <= 6 that a sloppy exporter may still write at 7 or 8: consumed_inputs
/// (an optimization hint, meaningless) and is_test (nonzero = inference, what these
/// definitions mean; zero asks for training).
inline void upgrade_legacy_test_attributes(upgrade_step& s) {
  node& n = *s.n;
  if (n.find_attribute("is_test") && n.attr_int("is_test", 0) == 0)
    s.fail(errc::unsupported_op, "is_test = 0 asks for training mode, which opset 7 and later express by outputs");
  if (s.dry_run) return;
  for (const char* a : {"is_test", "consumed_inputs"})
    if (n.remove_attribute(a)) s.what.push_back(std::string("legacy '") + a + "' dropped");
}

/// BatchNormalization 9: `spatial` is gone; 1 (per-channel statistics) is what 9 does, 0 (per
/// activation) has no counterpart.
inline void upgrade_batch_norm_9(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 5, 5);
  upgrade_legacy_test_attributes(s);
  if (n.find_attribute("spatial") && n.attr_int("spatial", 1) == 0)
    s.fail(errc::unsupported_op, "spatial = 0 (statistics per activation) has no counterpart from opset 9");
  if (s.dry_run || !n.remove_attribute("spatial")) return;
  s.what.push_back("spatial = 1 dropped");
}

/// BatchNormalization 14: outputs 4 and 5 (saved mean and variance) are gone and training mode
/// becomes the `training_mode` attribute instead of the presence of the extra outputs.
inline void upgrade_batch_norm_14(upgrade_step& s) {
  node& n = *s.n;
  bool extra = false;
  for (std::size_t i = 1; i < n.outputs().size(); ++i) extra = extra || n.output(i);
  if (!extra) return;
  for (std::size_t i = 3; i < n.outputs().size(); ++i)
    if (const value* o = n.output(i); o && (o->has_uses() || o->is_graph_output()))
      s.fail(errc::unsupported_op, "output " + std::to_string(i) + " ('" + o->name() +
                                       "', the saved mean or variance) is used; BatchNormalization-14 has no such output");
  if (n.outputs().size() > 5) s.fail(errc::invalid_model, "has more than 5 outputs");
  if (s.dry_run) return;
  graph& g = s.g;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < 3; ++i) {
    const value* o = n.output(i);
    names.push_back(o ? g.unique_name(o->name() + "_bn14") : std::string());
  }
  node& bn = g.add_node("BatchNormalization", n.inputs(), names, n.name());
  g.move_before(bn, n);
  bn.attributes() = std::move(n.attributes());
  bn.set_attribute(attribute::make_int("training_mode", 1));
  bn.set_doc_string(n.doc_string());
  upgrade_replace_outputs(g, n, {bn.output(0), bn.output(1), bn.output(2)});
  s.n = &bn;
  s.what.push_back("training-mode outputs: training_mode = 1, saved mean/variance outputs dropped");
}

/// Dropout 10: the mask output becomes bool (it had the input's type). A mask something reads
/// gets a Cast back to that type.
inline void upgrade_dropout_10(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  upgrade_legacy_test_attributes(s);
  if (!n.output(0)) s.fail(errc::invalid_model, "has no output 0, which Dropout requires");
  value* mask = n.output(1);
  const bool used = mask && (mask->has_uses() || mask->is_graph_output());
  const dtype t = used ? upgrade_known_dtype(n.input(0)) : dtype::undefined;
  if (used && t == dtype::undefined)
    s.fail(errc::unsupported_op, "mask '" + mask->name() + "' is used and the element type of input '" +
                                     n.input(0)->name() + "' is unknown, so the mask cannot be cast back to it");
  if (s.dry_run || !mask) return;
  if (!used) {
    mask->set_elem_type(static_cast<std::int32_t>(dtype::bool_));
    return;
  }
  graph& g = s.g;
  value& y = *n.output(0);
  node& d = g.add_node("Dropout", n.inputs(), {g.unique_name(y.name() + "_d10"), g.unique_name(mask->name() + "_bool")},
                       n.name());
  g.move_before(d, n);
  d.attributes() = std::move(n.attributes());
  d.set_doc_string(n.doc_string());
  d.output(1)->set_elem_type(static_cast<std::int32_t>(dtype::bool_));
  node& cast = upgrade_add_before(g, n, "Cast", {d.output(1)}, {g.unique_name(mask->name() + "_cast")}, "mask_cast");
  cast.set_attribute(attribute::make_int("to", static_cast<std::int64_t>(t)));
  cast.output(0)->set_elem_type(static_cast<std::int32_t>(t));
  upgrade_replace_outputs(g, n, {d.output(0), cast.output(0)});
  s.n = &d;
  s.what.push_back("bool mask cast back to " + to_string(t));
}

/// Dropout 12: the `ratio` attribute becomes input 1 (float scalar). Without a training_mode
/// input the node is in inference mode, as a Dropout-10 at inference.
inline void upgrade_dropout_12(upgrade_step& s) {
  node& n = *s.n;
  upgrade_expect_inputs(s, 1, 1);
  if (!n.find_attribute("ratio")) return;
  const double ratio = n.attr_float("ratio", 0.5f);
  if (s.dry_run) return;
  n.remove_attribute("ratio");
  s.g.append_input(n, &add_float_scalar(s.g, n, "ratio", dtype::float32, ratio));
  s.what.push_back("ratio -> input");
}

/// ConvTranspose 11: the definitions' texts split odd SAME_UPPER/SAME_LOWER padding in opposite
/// ways (onnx/onnx#1609) and runtimes have changed their reading since, so an auto_pad model
/// has no one meaning to keep.
inline void upgrade_conv_transpose_11(upgrade_step& s) {
  const std::string pad = s.n->attr_string("auto_pad", "NOTSET");
  if (pad == "SAME_UPPER" || pad == "SAME_LOWER")
    s.fail(errc::unsupported_op, "auto_pad " + pad +
                                     " splits odd padding one way in ConvTranspose-1 and the other in "
                                     "ConvTranspose-11; give explicit pads");
}

/// Scan 9 removed the batch axis and sequence_lens of Scan-8.
inline void upgrade_scan_9(upgrade_step& s) {
  s.fail(errc::unsupported_op, "Scan-8's batch axis and sequence_lens have no counterpart in Scan-9");
}

struct upgrade_rewrite {
  std::string_view op;
  std::int64_t to;
  upgrade_step_fn fn;
};

/// Every (operator, version) whose definition changed in a way a node must be rewritten for;
/// every other version change in opset_histories only moves the version.
inline constexpr upgrade_rewrite upgrade_rewrites[] = {
    {"BatchNormalization", 9, upgrade_batch_norm_9},
    {"BatchNormalization", 14, upgrade_batch_norm_14},
    {"Clip", 11, upgrade_clip_11},
    {"ConvTranspose", 11, upgrade_conv_transpose_11},
    {"Dropout", 10, upgrade_dropout_10},
    {"Dropout", 12, upgrade_dropout_12},
    {"Hardmax", 13, upgrade_softmax_13},
    {"LogSoftmax", 13, upgrade_softmax_13},
    {"Pad", 11, upgrade_pad_11},
    {"ReduceL1", 18, upgrade_axes_to_input},
    {"ReduceL2", 18, upgrade_axes_to_input},
    {"ReduceLogSum", 18, upgrade_axes_to_input},
    {"ReduceLogSumExp", 18, upgrade_axes_to_input},
    {"ReduceMax", 18, upgrade_axes_to_input},
    {"ReduceMean", 18, upgrade_axes_to_input},
    {"ReduceMin", 18, upgrade_axes_to_input},
    {"ReduceProd", 18, upgrade_axes_to_input},
    {"ReduceSum", 13, upgrade_axes_to_input},
    {"ReduceSumSquare", 18, upgrade_axes_to_input},
    {"Resize", 11, upgrade_resize_11},
    {"Resize", 13, upgrade_resize_13},
    {"Scan", 9, upgrade_scan_9},
    {"Slice", 10, upgrade_slice_10},
    {"Softmax", 13, upgrade_softmax_13},
    {"Split", 13, upgrade_split_13},
    {"Split", 18, upgrade_split_18},
    {"Squeeze", 13, upgrade_axes_to_input},
    {"TopK", 10, upgrade_topk_10},
    {"Unsqueeze", 13, upgrade_axes_to_input},
    {"Upsample", 9, upgrade_upsample_9},
    {"Upsample", 10, upgrade_upsample_to_resize},
};

inline upgrade_step_fn find_upgrade_rewrite(std::string_view op, std::int64_t to) noexcept {
  for (const upgrade_rewrite& r : upgrade_rewrites)
    if (r.op == op && r.to == to) return r.fn;
  return nullptr;
}

// ---- the driver ---------------------------------------------------------------------------------

inline void upgrade_node(graph& g, node& start, std::int64_t from, std::int64_t target, bool dry_run,
                         passes::upgrade_report& r) {
  const std::string op = start.op_type(), context = start.context();
  const opset_history* h = find_opset_history(op);
  if (!h)
    throw_error(errc::unsupported_op, context,
                "upgrade_opset's table does not know " + op +
                    ", so it cannot tell whether its definition changed between opset " + std::to_string(from) +
                    " and " + std::to_string(target));
  std::int64_t v = op_version_at(*h, from);
  if (v == 0)
    throw_error(errc::invalid_model, context,
                op + " does not exist at opset " + std::to_string(from) + " (its first definition is " + op + "-" +
                    std::to_string(h->since[0]) + ")");
  upgrade_step s{g, &start, v, v, target, v, dry_run, false, false, {}};
  for (;;) {
    for (std::int8_t since : h->since) {
      if (since == 0 || since <= v || since > target) continue;
      s.from = v;
      s.to = since;
      if (upgrade_step_fn fn = find_upgrade_rewrite(h->op, since)) fn(s);
      v = since;
      if (s.replaced_op) break;
    }
    // A dry run stops where the node would turn into another operator: the steps after it are
    // checked on that operator's real nodes, and for a replacement they cannot fail (see
    // upgrade_resize_11's from_upsample).
    if (!s.replaced_op || dry_run) break;
    s.replaced_op = false;
    h = find_opset_history(s.n->op_type());
  }
  if (dry_run) return;
  ++r.nodes;
  if (s.what.empty()) {
    ++r.moved;
    return;
  }
  ++r.rewrites;
  ++r.rewritten[op];
  std::string line = context + " " + std::to_string(s.origin) + " -> " + std::to_string(v) + ":";
  for (std::size_t i = 0; i < s.what.size(); ++i) line += (i ? "; " : " ") + s.what[i];
  r.changes.push_back(std::move(line));
}

inline void upgrade_graph(graph& g, std::int64_t from, std::int64_t target, const passes::upgrade_options& o,
                          bool dry_run, passes::upgrade_report& r) {
  // A snapshot: the nodes the rewrites add are already of the target opset.
  for (node* n : g.nodes()) {
    for (graph* sub : n->subgraphs()) upgrade_graph(*sub, from, target, o, dry_run, r);
    if (n->domain().empty() || n->domain() == "ai.onnx") {
      upgrade_node(g, *n, from, target, dry_run, r);
    } else if (std::find(o.independent_domains.begin(), o.independent_domains.end(), n->domain()) ==
               o.independent_domains.end()) {
      throw_error(errc::unsupported_op, n->context(),
                  "domain '" + n->domain() + "' may depend on the ai.onnx opset (a model-local function is " +
                      "written in ai.onnx operators), so the node cannot follow ai.onnx " + std::to_string(from) +
                      " -> " + std::to_string(target) + "; list the domain in upgrade_options::independent_domains " +
                      "if it does not");
    }
  }
}

/// Whether a serialized message has top-level field `number` (protobuf wire format: varint
/// keys, then a varint, fixed64, length-delimited or fixed32 payload). False when malformed.
inline bool proto_has_field(const std::string& bytes, std::uint32_t number) noexcept {
  std::size_t i = 0;
  auto varint = [&](std::uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && i < bytes.size(); shift += 7) {
      const auto b = static_cast<unsigned char>(bytes[i++]);
      out |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    std::uint64_t key = 0, len = 0;
    if (!varint(key)) return false;
    if ((key >> 3) == number) return true;
    switch (key & 7) {
      case 0:
        if (!varint(len)) return false;
        break;
      case 1: i += 8; break;
      case 2:
        if (!varint(len) || len > bytes.size() - i) return false;
        i += static_cast<std::size_t>(len);
        break;
      case 5: i += 4; break;
      default: return false;
    }
  }
  return false;
}

}  // namespace quench::detail

namespace quench::passes {

/// Upgrades the ai.onnx opset of `m` to `target` (at most 21), in the main graph and every
/// sub-graph: each node walks through the definitions of its operator between the model's
/// opset and `target` (quench/graph/passes/detail/opset_table.hpp), and where a definition
/// changed the node is rewritten to mean what it meant before:
///
/// * Softmax, LogSoftmax, Hardmax (13): unchanged when `axis` is the last axis (rank known, or
///   axis -1); otherwise Flatten(axis) -> op(axis=1) -> Reshape(Shape(x)), the old 2-D coercion;
/// * attributes that became inputs: Squeeze/Unsqueeze/ReduceSum axes (13), other Reduce* axes
///   (18), Split split (13), Clip min/max (11), Slice starts/ends/axes (10), Pad pads/value
///   (11), TopK k (10), Upsample scales (9), Dropout ratio (12); Split gets num_outputs (18);
/// * Upsample becomes Resize (10); Resize-10 gets an roi, coordinate_transformation_mode
///   asymmetric and the nearest_mode that rounds as Resize-10 did (11);
/// * BatchNormalization drops spatial = 1 (9) and turns training-mode outputs into
///   training_mode = 1 (14); Dropout's bool mask is cast back to the old type where it is used (10).
///
/// Refused with a quench::error naming the node: operators the table does not know, nodes of
/// domains not listed in `o.independent_domains`, model-local functions or training info,
/// source opsets before 7, and what has no exact counterpart (BatchNormalization spatial = 0,
/// used saved mean/variance, ConvTranspose auto_pad SAME_*, Scan-8, Resize tf_half_pixel_for_nn,
/// Resize-10 nearest with non-constant or mixed up/down scales, typed constants for an input of
/// unknown type). Everything is checked before the first change, so a refused model is left as
/// it was. New initializers get fresh names, rewritten nodes keep their output names and stay in
/// topological order; the opset import is set to `target` and ir_version raised to what
/// `target` requires. Run quench::onnx::infer_shapes first: known ranks and types let more
/// Softmax nodes stay single nodes and type the Clip/Pad constants.
///
///     quench::model m = quench::onnx::load_model("exported_op9.onnx");
///     quench::onnx::infer_shapes(m);
///     auto r = quench::passes::upgrade_opset(m, 13);
///     for (const auto& line : r.changes) std::cout << line << '\n';
///     quench::onnx::save_model(m, "exported_op13.onnx");
inline upgrade_report upgrade_opset(model& m, std::int64_t target, const upgrade_options& o = {}) {
  m.check_opset_imports();
  const std::int64_t from = m.opset("");
  upgrade_report r;
  r.from = from;
  r.to = target;
  if (from == 0) throw_error(errc::invalid_argument, "upgrade_opset", "the model imports no ai.onnx opset");
  if (target > detail::upgrade_max_opset)
    throw_error(errc::invalid_argument, "upgrade_opset",
                "target opset " + std::to_string(target) + " is newer than " +
                    std::to_string(detail::upgrade_max_opset) + ", the last this table describes");
  if (target < from)
    throw_error(errc::invalid_argument, "upgrade_opset",
                "target opset " + std::to_string(target) + " is older than the model's opset " +
                    std::to_string(from) + "; downgrading is not supported");
  if (from < detail::upgrade_min_opset)
    throw_error(errc::unsupported_op, "upgrade_opset",
                "the model's opset " + std::to_string(from) + " is older than " +
                    std::to_string(detail::upgrade_min_opset) + ", the oldest upgrade_opset starts from");
  if (target == from) return r;
  // ModelProto.functions (25) and training_info (20) hold graphs with their own ai.onnx nodes,
  // kept opaque by quench, so they cannot follow the upgrade.
  if (detail::proto_has_field(m.residual, 25))
    throw_error(errc::unsupported_op, "upgrade_opset",
                "the model defines local functions, whose bodies quench keeps opaque and cannot upgrade");
  if (detail::proto_has_field(m.residual, 20))
    throw_error(errc::unsupported_op, "upgrade_opset",
                "the model carries training_info, whose graphs quench keeps opaque and cannot upgrade");
  detail::upgrade_graph(m.main_graph(), from, target, o, /*dry_run=*/true, r);
  detail::upgrade_graph(m.main_graph(), from, target, o, /*dry_run=*/false, r);
  // Both spellings of the default domain, should a model import it twice.
  for (opset_import& o : m.opset_imports)
    if (model::same_domain(o.domain, "")) o.version = target;
  // Opsets 7 and 8 run on IR 3, where every initializer must also be a graph input; the first
  // rewrite that adds one is Upsample's at 9 (IR 4), so raising to the target's minimum suffices.
  m.ir_version = std::max(m.ir_version, detail::min_ir_version(target));
  return r;
}

}  // namespace quench::passes
