#pragma once
// The planner of the float16 / bfloat16 conversion (quench/pipeline/float16.hpp): element types
// of every value, which nodes compute in the half type and which stay float32 (and why), and the
// type every originally-float32 value is stored in afterwards. Planning never modifies the model,
// so automatic blocking can plan, evaluate and plan again before anything is rewritten.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/pipeline/detail/float16_options.hpp"
#include "quench/pipeline/detail/float16_schema.hpp"

namespace quench::pipeline {

/// Ops kept in float32 by default (convert_float16's `op_block_list`), each for a reason:
///   Range                ONNX has no float16/bfloat16 Range, and a length computed in half rounds
///   CumSum, TopK         running sums overflow / lose low bits; TopK's indices change with ties
///   NonMaxSuppression, RoiAlign   box coordinates lose pixels beyond 2048
///   Upsample             deprecated; ONNX Runtime's CPU provider has no float16 kernel
///   RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike, Multinomial, Bernoulli
///                        the output type comes from a dtype attribute, not from the inputs
///   QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
///                        scales must stay float32 below opset 19; QDQ groups fuse in float32
///   MeanVarianceNormalization   its ONNX function body adds a float32 epsilon: invalid in half
///   EyeLike, MelWeightMatrix     no float16 kernel in ONNX Runtime's CPU provider, and its own
///                        Cast insertion fails on them (they take the output type from an attribute)
/// onnxconverter-common also blocks Resize (here its scales and roi inputs stay float32 instead,
/// as ONNX Runtime's own float16 tool does) and Min/Max (exact in any precision).
///
///     auto opt = quench::pipeline::float16_options{};
///     opt.op_block_list = quench::pipeline::default_op_block_list();
///     opt.op_block_list->insert("Softmax");
inline std::set<std::string> default_op_block_list() {
  return {"Range",         "CumSum",       "TopK",           "NonMaxSuppression", "RoiAlign",
          "Upsample",      "RandomNormal", "RandomUniform",  "RandomNormalLike",  "RandomUniformLike",
          "Multinomial",   "Bernoulli",    "QuantizeLinear", "DequantizeLinear",  "DynamicQuantizeLinear",
          "MeanVarianceNormalization", "EyeLike", "MelWeightMatrix"};
}

namespace detail {

/// The metadata_props key under which a conversion records the nodes it kept float32 (names, one
/// a line). Converting the model again keeps them float32 too, so a second conversion changes
/// nothing even where the first one's blocks came from options or samples it does not see.
inline constexpr const char* blocked_nodes_key = "quench.half.float32_nodes";

inline constexpr std::int32_t elem_float = 1, elem_uint8 = 2, elem_int32 = 6, elem_int64 = 7, elem_bool = 9,
                              elem_float16 = 10, elem_double = 11, elem_bfloat16 = 16;

inline bool is_float_elem(std::int32_t t) noexcept {
  return t == elem_float || t == elem_float16 || t == elem_double || t == elem_bfloat16;
}
inline bool is_half_elem(std::int32_t t) noexcept { return t == elem_float16 || t == elem_bfloat16; }
inline const char* elem_name(std::int32_t t) noexcept { return t == elem_bfloat16 ? "bfloat16" : t == elem_float16 ? "float16" : "float32"; }

/// Nodes of `g` in dependency order (producers first, file order where it is valid), without
/// modifying `g`. Throws invalid_model naming a node on a cycle.
inline std::vector<node*> dependency_order(const graph& g) {
  const auto nodes = g.nodes();
  std::unordered_map<const node*, std::size_t> index;
  for (std::size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i], i);
  std::vector<int> state(nodes.size(), 0);  // 0 new, 1 on the stack, 2 done
  std::vector<node*> order;
  order.reserve(nodes.size());
  for (std::size_t root = 0; root < nodes.size(); ++root) {
    if (state[root]) continue;
    std::vector<std::pair<std::size_t, std::size_t>> stack{{root, 0}};
    state[root] = 1;
    while (!stack.empty()) {
      auto& [i, next] = stack.back();
      const auto deps = g.dependencies(*nodes[i]);
      if (next < deps.size()) {
        const value* v = deps[next++];
        if (!v->producer() || v->producer()->owner() != &g) continue;
        const std::size_t p = index.at(v->producer());
        if (state[p] == 1) throw_error(errc::invalid_model, nodes[p]->context(), "is part of a cycle");
        if (state[p] == 0) {
          state[p] = 1;
          stack.emplace_back(p, 0);
        }
        continue;
      }
      state[i] = 2;
      order.push_back(nodes[i]);
      stack.pop_back();
    }
  }
  return order;
}

/// The stand-in of `outer` inside sub-graph `sub` (the value through which `sub` reads it), or null.
inline value* stand_in_for(const graph& sub, const value& outer) {
  value* s = sub.find_value(outer.name());
  return s && s->outer() == &outer ? s : nullptr;
}

/// The element type the value of a Constant node has, from its attribute.
inline std::int32_t constant_type(const node& n) {
  for (const attribute& a : n.attributes()) {
    if (a.name == "value" && a.t) return static_cast<std::int32_t>(a.t->dtype());
    if (a.name == "value_float" || a.name == "value_floats") return elem_float;
    if (a.name == "value_int" || a.name == "value_ints") return elem_int64;
    if (a.name == "value_string" || a.name == "value_strings") return static_cast<std::int32_t>(dtype::string);
  }
  return 0;
}

/// Sequence and optional operators: their element types live in sequence / optional types that
/// quench does not convert, so they keep float32 elements.
inline bool is_sequence_op(const node& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
  const std::string& op = n.op_type();
  return op.rfind("Sequence", 0) == 0 || op.rfind("Optional", 0) == 0 || op == "SplitToSequence" || op == "ConcatFromSequence";
}

/// If, Loop and Scan: the nodes whose outputs are their sub-graphs' outputs.
inline bool is_control_flow(const node& n) { return n.is("If") || n.is("Loop") || n.is("Scan"); }

/// The element type of output `k` of `n` by the operator's type rules, from the types of its
/// inputs (`in(i)`, 0 = unknown or omitted); 0 when the rules do not say. Control-flow outputs
/// come from their sub-graphs and are handled by the caller.
inline std::int32_t output_type_rule(const node& n, std::size_t k, const std::function<std::int32_t(std::size_t)>& in) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return 0;
  const std::string& op = n.op_type();
  auto dtype_attr = [&](std::int32_t fallback) { return static_cast<std::int32_t>(n.attr_int("dtype", fallback)); };
  if (op == "Shape" || op == "Size" || op == "NonZero" || op == "ArgMax" || op == "ArgMin" || op == "NonMaxSuppression")
    return elem_int64;
  if (op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" || op == "GreaterOrEqual" || op == "Not" ||
      op == "And" || op == "Or" || op == "Xor" || op == "IsNaN" || op == "IsInf")
    return elem_bool;
  if (op == "Cast") return static_cast<std::int32_t>(n.attr_int("to", 0));
  if (op == "CastLike") return in(1);
  if (op == "Constant") return constant_type(n);
  if (op == "ConstantOfShape") {
    const attribute* a = n.find_attribute("value");
    return a && a->t ? static_cast<std::int32_t>(a->t->dtype()) : elem_float;
  }
  if (op == "Where") return in(1) ? in(1) : in(2);
  if (op == "OneHot") return in(2);
  if (op == "QuantizeLinear") return in(2) ? in(2) : static_cast<std::int32_t>(n.attr_int("output_dtype", elem_uint8));
  if (op == "DequantizeLinear") return in(1);
  if (op == "DynamicQuantizeLinear") return k == 1 ? elem_float : elem_uint8;
  if (op == "MatMulInteger" || op == "ConvInteger") return elem_int32;
  if (op == "QLinearConv" || op == "QLinearMatMul") return in(7);
  if (op == "RandomNormal" || op == "RandomUniform") return dtype_attr(elem_float);
  if (op == "RandomNormalLike" || op == "RandomUniformLike" || op == "EyeLike" || op == "Bernoulli")
    return dtype_attr(in(0));
  if (op == "Multinomial") return dtype_attr(elem_int32);
  if ((op == "TopK" || op == "MaxPool") && k == 1) return elem_int64;
  if (op == "Dropout" && k == 1) return elem_bool;
  if (op == "Unique" && k >= 1) return elem_int64;
  if (op == "LayerNormalization" && k >= 1) return static_cast<std::int32_t>(n.attr_int("stash_type", elem_float));
  if (op.rfind("Sequence", 0) == 0 || op.rfind("Optional", 0) == 0 || op == "SplitToSequence" || op == "ConcatFromSequence")
    return 0;
  if (op == "StringNormalizer") return static_cast<std::int32_t>(dtype::string);
  if (op == "TfIdfVectorizer") return elem_float;
  if (op == "BlackmanWindow" || op == "HammingWindow" || op == "HannWindow" || op == "MelWeightMatrix")
    return static_cast<std::int32_t>(n.attr_int("output_datatype", elem_float));
  return in(0);
}

/// A float32 constant (initializer or attribute tensor) in the half type, converted once.
struct half_constant {
  /// The half form, with half_overflow::clamp and half_underflow applied; kept only for
  /// constants below half_keep_bytes (the others are converted again when they are replaced,
  /// so a large model never holds all float32 pages and all half copies at once).
  std::optional<tensor> half;
  std::size_t overflow = 0;   ///< finite values beyond +-max
  std::size_t underflow = 0;  ///< non-zero values rounding to zero
  float max_abs = 0.f;        ///< largest magnitude among the overflowing values
};

/// Whether any of `n` 16-bit floats is +-0 or +-Inf (`inf`: the Inf pattern), four at a time in a
/// 64-bit word (the compiler does not vectorize the plain loop at -O2, where it cost three times
/// the conversion). After masking the signs every lane's top bit is clear, so the classic
/// (v - 0x0001...) & ~v & 0x8000... test finds a zero lane exactly: a borrow that crosses into a
/// lane comes only from a zero lane below it.
inline bool has_zero_or_inf(const std::uint16_t* h, std::size_t n, std::uint16_t inf) noexcept {
  constexpr std::uint64_t ones = 0x0001000100010001ull, tops = 0x8000800080008000ull, mask = 0x7fff7fff7fff7fffull;
  const std::uint64_t infs = ones * inf;
  std::uint64_t hit = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    std::uint64_t w;
    std::memcpy(&w, h + i, sizeof w);
    const std::uint64_t x = w & mask, y = x ^ infs;
    hit |= ((x - ones) & ~x & tops) | ((y - ones) & ~y & tops);
  }
  for (; i < n; ++i) {
    const unsigned mag = h[i] & 0x7fffu;
    hit |= static_cast<std::uint64_t>(mag == 0 || mag == inf);
  }
  return hit != 0;
}

/// Converts a float32 tensor with the bulk SIMD converters, then repairs what rounding did to
/// out-of-range values: a scan of the 16-bit results finds them (Inf from a finite input, zero
/// from a non-zero one) at half the memory traffic of a range check on the float input.
/// Float32 constants of at least this many bytes are converted twice (statistics while planning,
/// the half data when the tensor is replaced) rather than kept converted: on a 2.5 GB model the
/// float32 pages of each tensor then leave memory as its half form arrives (peak 1.0x the weight
/// bytes instead of 1.5x), for the cost of a second pass at memory speed.
inline constexpr std::size_t half_keep_bytes = std::size_t{1} << 20;

/// The half form of `t` and its range statistics; the half data is kept when `keep` (else only
/// counted, through a buffer of one chunk).
inline half_constant make_half_constant(const tensor& t, bool bf16, const float16_options& opt, bool keep = true) {
  half_constant c;
  const std::size_t n = t.size();
  const float* src = t.view<float>().data();
  constexpr std::size_t chunk = 8192;
  std::vector<std::uint16_t> scratch;
  std::uint16_t* dst = nullptr;
  if (keep) {
    c.half = tensor::uninitialized(bf16 ? dtype::bfloat16 : dtype::float16, t.shape(), t.name());
    dst = reinterpret_cast<std::uint16_t*>(c.half->bytes());
  } else {
    scratch.resize(std::min(chunk, n));
  }
  const std::uint16_t inf = bf16 ? 0x7f80u : 0x7c00u, max_finite = bf16 ? 0x7f7fu : 0x7bffu;
  const std::uint16_t smallest = opt.underflow == half_underflow::smallest_normal ? (bf16 ? 0x0080u : 0x0400u) : 0x0001u;
  // Chunks that stay in L1 between the conversion and the scan; the scan of a chunk is a
  // branch-free OR the compiler vectorizes, and only a chunk with an Inf or a zero is looked at
  // element by element.
  for (std::size_t start = 0; start < n; start += chunk) {
    const std::size_t m = std::min(chunk, n - start);
    std::uint16_t* d = keep ? dst + start : scratch.data();
    if (bf16) convert(src + start, reinterpret_cast<bfloat16*>(d), m);
    else convert(src + start, reinterpret_cast<float16*>(d), m);
    if (!has_zero_or_inf(d, m, inf)) continue;
    for (std::size_t i = 0; i < m; ++i) {
      const std::uint16_t mag = d[i] & 0x7fffu;
      if (mag != inf && mag != 0) continue;
      const float x = src[start + i];
      if (mag == inf && std::isfinite(x)) {
        ++c.overflow;
        c.max_abs = std::max(c.max_abs, std::fabs(x));
        if (opt.overflow == half_overflow::clamp) d[i] = static_cast<std::uint16_t>((d[i] & 0x8000u) | max_finite);
      } else if (mag == 0 && x != 0.f) {
        ++c.underflow;
        if (opt.underflow != half_underflow::zero) d[i] = static_cast<std::uint16_t>((d[i] & 0x8000u) | smallest);
      }
    }
  }
  return c;
}

/// Half forms of constants, made once and shared by the plans of one conversion (automatic
/// blocking plans twice before the final plan). Keyed by address: valid while the model is not
/// modified.
struct half_cache {
  std::unordered_map<const tensor*, std::shared_ptr<half_constant>> constants;
  /// Constant nodes' value_float / value_floats as tensors, so they are range-checked and
  /// converted like every other constant.
  std::unordered_map<const attribute*, std::unique_ptr<tensor>> literals;
};

/// Everything the conversion decides, before anything changes. Values and nodes are keyed by
/// address: the plan is valid for the model it was made from, until that is modified.
struct half_plan {
  bool bf16 = false;
  std::int32_t half = elem_float16;
  half_compute compute = half_compute::all;
  const float16_options* opt = nullptr;
  const model* m = nullptr;

  std::unordered_map<const value*, std::int32_t> types;  ///< original element types (declared or inferred)
  std::unordered_map<const node*, std::string> blocked;  ///< nodes with float32 positions left in float32
  std::unordered_set<const node*> converted;             ///< nodes computing in the half type
  std::unordered_set<const node*> shape_values;          ///< producers of float shape computations
  std::set<std::string> earlier_blocked;                 ///< names an earlier conversion kept float32
  std::unordered_map<const value*, std::int32_t> storage;  ///< final type of every originally-float32 value
  half_cache* cache = nullptr;

  std::int32_t type(const value* v) const {
    if (!v) return 0;
    auto it = types.find(v);
    return it == types.end() ? v->elem_type() : it->second;
  }
  std::int32_t final_type(const value* v) const {
    auto it = storage.find(v);
    return it == storage.end() ? type(v) : it->second;
  }
  std::int64_t opset_of(const node& n) const { return m->opset(n.domain()); }

  /// Float-only masks of `n` for the target type (or, with `for_float16`, for float16: those
  /// mark genuine float parameters such as Resize's scales, which weights_only leaves alone).
  std::pair<std::uint32_t, std::uint32_t> masks(const node& n, bool for_float16 = false) const {
    std::uint32_t in = 0, out = 0;
    if (n.domain().empty() || n.domain() == "ai.onnx") half_schema_masks(n.op_type(), opset_of(n), bf16 && !for_float16, in, out);
    // Resize's roi stays float32 with its scales: both describe coordinates, not data (ONNX
    // Runtime's float16 tool keeps scales float for the same reason).
    if (n.is("Resize")) in |= 0x6u;
    // LayerNormalization's Mean and InvStdDev have the type stash_type names (float32), not T.
    if (n.is("LayerNormalization")) out |= 0x6u;
    return {in, out};
  }
  bool float_only_input(const node& n, std::size_t i, bool for_float16 = false) const {
    return i < 32 && (masks(n, for_float16).first >> i & 1u);
  }
  bool float_only_output(const node& n, std::size_t k) const { return k < 32 && (masks(n).second >> k & 1u); }

  /// A Cast between float types: it keeps its `to` and its input is never cast; the conversion
  /// leaves the precision boundaries a model already has where they are.
  bool is_precision_cast(const node& n) const { return n.is("Cast") && is_float_elem(type(n.input(0))); }

  /// The type node `n` wants for input `i` after conversion.
  std::int32_t want(const node& n, std::size_t i) const {
    const value* v = n.input(i);
    if (type(v) != elem_float) return final_type(v);
    if (is_precision_cast(n)) return final_type(v);
    if (converted.count(&n) && !float_only_input(n, i)) return half;
    return elem_float;
  }
  /// The type graph output `v` of `g` must have after conversion.
  std::int32_t output_want(const graph& g, const value& v) const {
    if (type(&v) != elem_float) return final_type(&v);
    if (!g.parent()) return opt->keep_io_types || compute == half_compute::weights_only ? elem_float : half;
    return converted.count(g.owner()) ? half : elem_float;
  }

  /// The half form of a float32 constant (converted on first use, shared between plans).
  const half_constant& constant(const tensor& t) const {
    auto& slot = cache->constants[&t];
    if (!slot) slot = std::make_shared<half_constant>(make_half_constant(t, bf16, *opt, t.nbytes() < half_keep_bytes));
    return *slot;
  }
  /// The half data of float32 constant `t`: the kept copy, shared, or converted now.
  tensor half_of(const tensor& t) const {
    const half_constant& c = constant(t);
    if (c.half) return c.half->share();
    return std::move(*make_half_constant(t, bf16, *opt).half);
  }
  /// The float32 tensor behind value `v` when it is a constant (an initializer or a Constant
  /// node's `value`, through sub-graph stand-ins), else null.
  const tensor* constant_tensor(const value* v) const {
    while (v && v->is_outer_ref()) v = v->outer();
    if (!v || type(v) != elem_float) return nullptr;
    if (v->is_initializer() && !v->is_graph_input()) return v->initializer();
    if (const node* p = v->producer(); p && p->is("Constant")) {
      for (const attribute& a : p->attributes()) {
        if (a.name == "value" && a.t && a.t->dtype() == dtype::float32) return a.t.get();
        if (a.name == "value_float" || a.name == "value_floats") {
          auto& slot = cache->literals[&a];
          if (!slot) {
            const bool scalar = a.name == "value_float";
            slot = std::make_unique<tensor>(dtype::float32, scalar ? shape{} : shape{static_cast<std::int64_t>(a.floats.size())});
            auto dst = slot->view<float>();
            if (scalar) dst[0] = a.f;
            else std::copy(a.floats.begin(), a.floats.end(), dst.data());
          }
          return slot.get();
        }
      }
    }
    return nullptr;
  }
};

/// Fills `plan.types` for `g` and its sub-graphs: declared types where the file gives them,
/// else the operators' type rules.
inline void infer_types(const graph& g, half_plan& plan) {
  auto set_if_unknown = [&](const value* v, std::int32_t t) {
    if (!v) return;
    auto [it, inserted] = plan.types.try_emplace(v, v->elem_type());
    if (it->second == 0) it->second = t;
    (void)inserted;
  };
  for (const value* v : g.inputs()) set_if_unknown(v, 0);
  for (const value* v : g.initializers()) set_if_unknown(v, static_cast<std::int32_t>(v->initializer()->dtype()));
  for (const node* n : dependency_order(g)) {
    for (const value* v : n->inputs())
      if (v && v->is_outer_ref()) set_if_unknown(v, plan.type(v->outer()));
    auto in = [&](std::size_t i) { return plan.type(n->input(i)); };
    const auto subs = n->subgraphs();
    if (!subs.empty() && is_control_flow(*n)) {
      // Formal inputs of Loop and Scan bodies mirror the node's inputs (Loop: iteration count,
      // condition, then the carried values; Scan-8 has sequence_lens first, outside the body).
      const std::size_t skip = n->is("Scan") && plan.opset_of(*n) < 9 ? 1 : 0;
      for (const graph* sub : subs) {
        for (std::size_t i = 0; i < sub->inputs().size(); ++i) {
          std::int32_t t = 0;
          if (n->is("Loop")) t = i == 0 ? elem_int64 : i == 1 ? elem_bool : in(i);
          else if (n->is("Scan")) t = in(i + skip);
          set_if_unknown(sub->inputs()[i], t);
        }
        for (const value* v : sub->outputs())
          if (v->is_outer_ref()) set_if_unknown(v, plan.type(v->outer()));
        infer_types(*sub, plan);
      }
      const graph* body = subs.front();
      const std::size_t shift = n->is("Loop") ? 1 : 0;
      for (std::size_t k = 0; k < n->outputs().size(); ++k) {
        const std::size_t j = k + shift;
        set_if_unknown(n->output(k), j < body->outputs().size() ? plan.type(body->outputs()[j]) : 0);
      }
      continue;
    }
    for (const graph* sub : subs) infer_types(*sub, plan);  // SequenceMap and other bodies
    for (std::size_t k = 0; k < n->outputs().size(); ++k)
      if (n->output(k)) set_if_unknown(n->output(k), output_type_rule(*n, k, in));
  }
}

/// Phase 1: which nodes of `g` (and, recursively, of its sub-graphs) compute in the half type.
/// `converting` is false inside the sub-graphs of a node that stays float32.
inline void classify(const graph& g, bool converting, half_plan& plan,
                     const std::unordered_map<const node*, std::string>& extra_blocked) {
  const float16_options& opt = *plan.opt;
  const std::set<std::string> default_ops = opt.op_block_list ? std::set<std::string>{} : default_op_block_list();
  const std::set<std::string>& block_ops = opt.op_block_list ? *opt.op_block_list : default_ops;
  const char* half_name = elem_name(plan.half);
  // Values that are shape computations: integers from Shape/Size, and everything computed only
  // from those and constants (generators such as ConstantOfShape make data, not shapes).
  std::unordered_set<const value*> shape_derived, constant_like;
  std::unordered_set<const node*> island;  // float32 nodes fed through Casts from half
  for (const value* v : g.initializers()) constant_like.insert(v);
  auto is_const = [&](const value* v) {
    while (v && v->is_outer_ref()) v = v->outer();
    return v && (constant_like.count(v) || v->is_initializer());
  };
  for (node* n : dependency_order(g)) {
    const std::string& op = n->op_type();
    const bool default_domain = n->domain().empty() || n->domain() == "ai.onnx";
    // Shape and constant propagation first: they are facts about the graph, not decisions.
    bool any_shape = false, all_const_or_shape = true;
    for (const value* v : n->inputs()) {
      if (!v) continue;
      const bool s = shape_derived.count(v) > 0;
      any_shape = any_shape || s;
      all_const_or_shape = all_const_or_shape && (s || is_const(v));
    }
    const bool generator = op == "ConstantOfShape" || op == "Expand" || op == "Tile" || op == "EyeLike";
    if (default_domain && (op == "Shape" || op == "Size")) {
      for (const value* v : n->outputs())
        if (v) shape_derived.insert(v);
    } else if (default_domain && any_shape && all_const_or_shape && !generator && n->subgraphs().empty()) {
      for (const value* v : n->outputs())
        if (v) shape_derived.insert(v);
    } else if (op == "Constant" || (all_const_or_shape && !n->inputs().empty() && n->subgraphs().empty())) {
      for (const value* v : n->outputs())
        if (v) constant_like.insert(v);
    }

    if (!converting || n->is("Constant") || plan.is_precision_cast(*n)) {
      for (graph* sub : n->subgraphs()) classify(*sub, false, plan, extra_blocked);
      continue;
    }
    // Does the node have float32 positions, and is any of them able to hold the half type?
    const auto masks = plan.masks(*n);
    bool has_float = false, has_half_slot = false, unknown = false;
    std::string unknown_name;
    for (std::size_t i = 0; i < n->inputs().size(); ++i) {
      const value* v = n->input(i);
      if (!v) continue;
      const std::int32_t t = plan.type(v);
      if (t == 0 && !unknown) {
        unknown = true;
        unknown_name = v->name();
      }
      // A position already in the half type counts as one: the node computes in half already
      // (a converted model converted again), its float32 positions are float-only ones.
      if (t != elem_float && t != plan.half) continue;
      has_float = has_float || t == elem_float;
      if (!(i < 32 && (masks.first >> i & 1u))) has_half_slot = true;
    }
    for (std::size_t k = 0; k < n->outputs().size(); ++k) {
      const value* v = n->output(k);
      const std::int32_t t = v ? plan.type(v) : 0;
      if (t != elem_float && t != plan.half) continue;
      has_float = has_float || t == elem_float;
      if (!(k < 32 && (masks.second >> k & 1u))) has_half_slot = true;
    }
    const bool subgraph_owner = !n->subgraphs().empty();
    if (!has_float && !subgraph_owner) continue;  // integer and half nodes are not touched

    std::string reason;
    auto it = extra_blocked.find(n);
    if (opt.node_block_list.count(n->name())) reason = "in the node block list";
    else if (!n->name().empty() && plan.earlier_blocked.count(n->name()))
      reason = "kept float32 by the conversion that made this model";
    else if (it != extra_blocked.end()) reason = it->second;
    else if (plan.compute == half_compute::weights_only) reason = "-";  // not converted, not reported
    else if (!default_domain && !opt.convert_other_domains) reason = "domain '" + n->domain() + "' is left in float32";
    else if (default_domain && block_ops.count(op)) reason = op + " is in the op block list";
    else if (is_sequence_op(*n)) reason = op + " works on sequences or optionals, whose element types stay float32";
    else if (has_float && !has_half_slot)
      reason = "the ONNX schema of " + op + " (opset " + std::to_string(plan.opset_of(*n)) + ") has no " + half_name;
    else if (unknown) reason = "input '" + unknown_name + "' has an unknown element type";
    if (reason.empty() && opt.block_shape_computations) {
      for (const value* v : n->outputs())
        if (v && plan.type(v) == elem_float && shape_derived.count(v)) {
          reason = "computes a shape in floating point ('" + v->name() + "')";
          plan.shape_values.insert(n);
          break;
        }
    }
    if (reason.empty() && opt.keep_qdq_float32) {
      for (const value* v : n->inputs())
        if (v && plan.type(v) == elem_float && v->producer() && v->producer()->is("DequantizeLinear")) {
          reason = "reads DequantizeLinear output '" + v->name() + "' (QDQ groups stay float32)";
          break;
        }
    }
    if (reason.empty()) {
      // An existing float32 island: every non-constant float32 input arrives through a Cast from
      // the half type or from another such node. The model (or an earlier conversion with
      // automatic blocking) chose float32 here; converting again must not undo that.
      bool fed = false, all = true;
      for (const value* v : n->inputs()) {
        if (!v || plan.type(v) != elem_float || is_const(v)) continue;
        const node* p = v->producer();
        const bool from_half = p && p->is("Cast") && is_half_elem(plan.type(p->input(0)));
        const bool from_island = p && island.count(p);
        if (from_half || from_island) fed = true;
        else all = false;
      }
      if (fed && all) {
        reason = "already float32 behind a Cast from the half type";
        island.insert(n);
      }
    }
    if (reason.empty() && opt.overflow == half_overflow::keep_float32) {
      for (std::size_t i = 0; i < n->inputs().size(); ++i) {
        const tensor* t = plan.constant_tensor(n->input(i));
        if (!t || plan.float_only_input(*n, i)) continue;
        const half_constant& c = plan.constant(*t);
        if (c.overflow == 0) continue;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(c.max_abs));
        reason = "reads '" + n->input(i)->name() + "' whose values reach " + buf + ", beyond the " + half_name + " range";
        break;
      }
      for (const attribute& a : n->attributes()) {
        if (!reason.empty()) break;
        std::vector<const tensor*> ts;
        if (a.t) ts.push_back(a.t.get());
        for (const auto& t : a.tensors) ts.push_back(t.get());
        for (const tensor* t : ts)
          if (t->dtype() == dtype::float32 && plan.constant(*t).overflow > 0) {
            reason = "attribute '" + a.name + "' holds values beyond the " + std::string(half_name) + " range";
            break;
          }
      }
    }
    if (reason.empty()) {
      plan.converted.insert(n);
      for (graph* sub : n->subgraphs()) classify(*sub, true, plan, extra_blocked);
    } else {
      if (reason != "-") plan.blocked.emplace(n, reason);
      for (graph* sub : n->subgraphs()) classify(*sub, false, plan, extra_blocked);
    }
  }
}

/// The types the uses of float32 value `v` want, through sub-graph stand-ins.
inline void collect_wants(const graph& g, const value& v, const half_plan& plan, std::set<std::int32_t>& wants,
                          bool& parameter_use) {
  for (const use& u : v.uses()) {
    if (u.index == use::implicit_use) {
      for (const graph* sub : u.user->subgraphs())
        if (const value* s = stand_in_for(*sub, v)) collect_wants(*sub, *s, plan, wants, parameter_use);
      continue;
    }
    const node& n = *u.user;
    const auto i = static_cast<std::size_t>(u.index);
    wants.insert(plan.want(n, i));
    // weights_only converts only weights: not parameters (scales, Q/DQ), not shape arithmetic.
    if (plan.float_only_input(n, i, true) || n.is("QuantizeLinear") || n.is("DequantizeLinear") ||
        n.is("DynamicQuantizeLinear") || plan.shape_values.count(&n) || plan.is_precision_cast(n))
      parameter_use = true;
  }
  if (v.is_graph_output()) {
    wants.insert(plan.output_want(g, v));
    parameter_use = true;
  }
}

/// The storage type of a float32 constant value (initializer or Constant output) from its uses.
inline std::int32_t constant_storage(const graph& g, const value& v, const tensor* data, half_plan& plan) {
  std::set<std::int32_t> wants;
  bool parameter_use = false;
  collect_wants(g, v, plan, wants, parameter_use);
  const bool unrepresentable = data && plan.opt->overflow == half_overflow::keep_float32 && plan.constant(*data).overflow > 0;
  if (unrepresentable) return elem_float;
  if (plan.compute == half_compute::weights_only)
    return data && v.is_initializer() && !parameter_use && !wants.empty() && data->size() >= plan.opt->weights_only_min_elements
               ? plan.half
               : elem_float;
  // Unused constants follow the rest of the model; a constant read in both precisions stays
  // float32 so its float32 readers stay exact, and the half readers share one Cast.
  return wants.empty() || (wants.size() == 1 && *wants.begin() == plan.half) ? plan.half : elem_float;
}

/// Phase 2: storage types of the originally-float32 values of `g`, top-down into sub-graphs.
inline void assign_storage(const graph& g, half_plan& plan) {
  const bool main = !g.parent();
  const bool io_half = main ? !plan.opt->keep_io_types && plan.compute == half_compute::all : plan.converted.count(g.owner()) > 0;
  auto set = [&](const value* v, std::int32_t t) {
    if (v && plan.type(v) == elem_float) plan.storage[v] = t;
  };
  for (const value* v : g.inputs()) set(v, io_half ? plan.half : elem_float);
  for (const value* v : g.initializers())
    if (!v->is_graph_input() && plan.type(v) == elem_float) set(v, constant_storage(g, *v, plan.constant_tensor(v), plan));
  for (const node* n : dependency_order(g)) {
    for (const value* v : n->inputs())
      if (v && v->is_outer_ref()) set(v, plan.final_type(v->outer()));
    if (n->is("Constant")) {
      if (const value* out = n->output(0); out && plan.type(out) == elem_float)
        set(out, constant_storage(g, *out, plan.constant_tensor(out), plan));
    } else if (!plan.is_precision_cast(*n)) {
      const bool conv = plan.converted.count(n) > 0;
      for (std::size_t k = 0; k < n->outputs().size(); ++k)
        set(n->output(k), conv && !plan.float_only_output(*n, k) ? plan.half : elem_float);
    } else {
      set(n->output(0), elem_float);
    }
    for (const graph* sub : n->subgraphs()) assign_storage(*sub, plan);
  }
  for (const value* v : g.outputs())
    if (v->is_outer_ref()) set(v, plan.final_type(v->outer()));
}

/// The whole plan for `m`. `extra_blocked` maps node names to reasons (automatic blocking).
inline half_plan make_plan(const model& m, bool bf16, const float16_options& opt, half_cache& cache,
                           const std::unordered_map<const node*, std::string>& extra_blocked = {}) {
  half_plan plan;
  plan.bf16 = bf16;
  plan.half = bf16 ? elem_bfloat16 : elem_float16;
  plan.compute = opt.compute ? *opt.compute : bf16 ? half_compute::weights_only : half_compute::all;
  plan.opt = &opt;
  plan.m = &m;
  plan.cache = &cache;
  for (const auto& kv : m.metadata_props) {
    if (kv.first != blocked_nodes_key) continue;
    for (std::size_t start = 0; start < kv.second.size();) {
      std::size_t end = kv.second.find('\n', start);
      if (end == std::string::npos) end = kv.second.size();
      if (end > start) plan.earlier_blocked.insert(kv.second.substr(start, end - start));
      start = end + 1;
    }
  }
  infer_types(m.main_graph(), plan);
  classify(m.main_graph(), true, plan, extra_blocked);
  assign_storage(m.main_graph(), plan);
  return plan;
}

}  // namespace detail
}  // namespace quench::pipeline
