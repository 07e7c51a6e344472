#pragma once
// qat_export: a float model and the trained parameters of a QAT run in, an ONNX QDQ model out,
// with exactly those parameters (no calibration):
//
//     quench::model m = quench::onnx::load_model("float.onnx");
//     auto params = quench::pipeline::qat_params_from_json(read_text("qat.json"), "qat.json");
//     quench::pipeline::export_options opt;            // profile "ort"; or profile_by_name("tensorrt")
//     auto report = quench::pipeline::export_qat(m, params, opt);
//     quench::onnx::save_model(m, "model.qdq.onnx");
//
// The JSON format (every number reads back to the same float32/int32):
//   {"format": "quench.qat_params", "version": 1,            (both optional when reading)
//    "activations": {"x": {"scale": 0.02, "zero_point": 128, "dtype": "uint8"}, ...},
//    "weights": {"W1": {"axis": 0, "scales": [0.01, ...], "zero_points": [0, ...], "dtype": "int4",
//                       "quant_min": -8, "quant_max": 7}, ...}}
// Each entry gives "dtype", or "quant_min"/"quant_max" (PyTorch's fake-quant range), or both;
// "scale"/"zero_point" per tensor or "axis" with "scales"/"zero_points" per channel. A range
// without a dtype is stored in the smallest type that holds it: (0,255) uint8, (-128,127) int8,
// (-127,127) int8 with values clamped to the narrow range, (-8,7) int4, (0,15) uint4, (0,127)
// (reduce_range) uint8 clamped to 127. Activations take at least 8 bits (no runtime has 4-bit
// activation kernels).
//
// How the trained parameters reach the model:
//   * activations: each tensor the profile's placement quantizes (qdq_plan.hpp) takes the entry of
//     its own name, else of the tensor whose range it takes (an absorbed Relu's output: torch
//     fake-quantizes after ConvBnReLU), else of a tensor it equals through value-preserving ops
//     (MaxPool, Flatten, Reshape, ... in either direction: their values are on the same grid).
//     Anything still missing is an error naming it. A range narrower than the type gets a Clip
//     before its QuantizeLinear so that the model clamps exactly as the fake quant did.
//   * weights: integer initializers + DequantizeLinear, the integers computed as PyTorch's fake
//     quant computes them (round half to even of w * (1/scale), zero point after rounding, clamp to
//     [quant_min, quant_max]); 4-bit weights as int4/uint4 initializers (opset 21, upgraded).
//   * the model's metadata gets "quench.qat_params" (this JSON), so that a model re-targeted to a
//     placement that quantizes fewer tensors (tensorrt) can go back to one that quantizes more.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/graph/passes/upgrade_opset.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/pipeline/qdq_plan.hpp"
#include "quench/pipeline/quant_profile.hpp"
#include "quench/pipeline/quantize_static.hpp"
#include "quench/quant/qparams.hpp"

namespace quench::pipeline {

/// One trained fake quantizer: the storage type, PyTorch's [quant_min, quant_max], and one scale
/// and zero point per tensor (axis -1) or per channel of `axis`.
struct qat_tensor_params {
  dtype type = dtype::uint8;
  integer_range range{0, 255};
  std::int64_t axis = -1;
  std::vector<float> scales;
  std::vector<std::int32_t> zero_points;  ///< one per scale

  static qat_tensor_params per_tensor(float scale, std::int32_t zero_point, integer_range range);
  static qat_tensor_params per_channel(std::int64_t axis, std::vector<float> scales, std::vector<std::int32_t> zero_points,
                                       integer_range range);
  /// The ONNX qparams (type, per_tensor or per_axis).
  qparams onnx_qparams() const {
    qparams p = axis < 0 ? qparams::per_tensor(type, scales.at(0), zero_points.empty() ? 0 : zero_points[0])
                         : qparams::per_axis(type, axis, scales, zero_points);
    bool any = false;
    for (std::int32_t z : p.zero_points) any = any || z != 0;
    if (!any) p.zero_points.clear();
    return p;
  }
};

/// The trained parameters of a whole model, by tensor name (activations) and float weight
/// initializer name (weights). `values`: integer weights to use as they are (a QDQ model's
/// folded weights, see fold_qdq.hpp); not part of the JSON.
struct qat_params {
  std::map<std::string, qat_tensor_params> activations;
  std::map<std::string, qat_tensor_params> weights;
  std::map<std::string, std::shared_ptr<const tensor>> values;
};

/// The smallest ONNX type holding [lo, hi] (see the header comment); at least 8 bits for
/// activations. Throws invalid_argument for a range no 16-bit type holds.
inline dtype storage_type(integer_range r, bool activation, std::string_view context = {}) {
  if (r.min > r.max)
    throw_error(errc::invalid_argument, std::string(context),
                "expected quant_min <= quant_max, found " + std::to_string(r.min) + " > " + std::to_string(r.max));
  if (r.min >= 0) {
    if (r.max <= 15 && !activation) return dtype::uint4;
    if (r.max <= 255) return dtype::uint8;
    if (r.max <= 65535) return dtype::uint16;
  } else {
    if (r.min >= -8 && r.max <= 7 && !activation) return dtype::int4;
    if (r.min >= -128 && r.max <= 127) return dtype::int8;
    if (r.min >= -32768 && r.max <= 32767) return dtype::int16;
  }
  throw_error(errc::invalid_argument, std::string(context),
              "quant range [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "] fits no 4, 8 or 16-bit type");
}

inline qat_tensor_params qat_tensor_params::per_tensor(float scale, std::int32_t zero_point, integer_range range) {
  qat_tensor_params p;
  p.range = range;
  p.type = storage_type(range, true);
  p.scales = {scale};
  p.zero_points = {zero_point};
  return p;
}

inline qat_tensor_params qat_tensor_params::per_channel(std::int64_t axis, std::vector<float> scales,
                                                        std::vector<std::int32_t> zero_points, integer_range range) {
  qat_tensor_params p;
  p.range = range;
  p.type = storage_type(range, false);
  p.axis = axis;
  p.scales = std::move(scales);
  p.zero_points = std::move(zero_points);
  if (p.zero_points.empty()) p.zero_points.assign(p.scales.size(), 0);
  return p;
}

/// Checks one entry on its own: a 4/8/16-bit integer type holding the range, positive finite
/// scales, one zero point per scale inside the range, per tensor for activations.
inline void validate(const qat_tensor_params& p, bool activation, const std::string& context) {
  const bool ok_type = p.type == dtype::int8 || p.type == dtype::uint8 || p.type == dtype::int16 || p.type == dtype::uint16 ||
                       (!activation && (p.type == dtype::int4 || p.type == dtype::uint4));
  if (!ok_type)
    throw_error(errc::unsupported_dtype, context,
                std::string("expected ") + (activation ? "int8, uint8, int16 or uint16" : "int4, uint4, int8, uint8, int16 or uint16") +
                    ", found " + to_string(p.type));
  const integer_range full = full_range(p.type);
  if (p.range.min > p.range.max || p.range.min < full.min || p.range.max > full.max)
    throw_error(errc::invalid_argument, context,
                "quant range [" + std::to_string(p.range.min) + ", " + std::to_string(p.range.max) + "] does not fit " + to_string(p.type));
  if (p.scales.empty()) throw_error(errc::invalid_argument, context, "has no scale");
  if (activation && (p.axis >= 0 || p.scales.size() != 1))
    throw_error(errc::invalid_argument, context, "activation parameters must be per tensor (one scale), found " +
                                                     std::to_string(p.scales.size()) + " scales");
  if (p.axis < 0 && p.scales.size() != 1)
    throw_error(errc::invalid_argument, context, "expected one scale per tensor (no axis), found " + std::to_string(p.scales.size()));
  if (p.zero_points.size() != p.scales.size())
    throw_error(errc::invalid_argument, context,
                "expected " + std::to_string(p.scales.size()) + " zero points (one per scale), found " + std::to_string(p.zero_points.size()));
  for (std::size_t i = 0; i < p.scales.size(); ++i) {
    if (!(p.scales[i] > 0.f) || !std::isfinite(p.scales[i]))
      throw_error(errc::invalid_value, context + " scale[" + std::to_string(i) + "]",
                  "expected a finite value > 0, found " + quench::detail::float_repr(p.scales[i]));
    if (p.zero_points[i] < p.range.min || p.zero_points[i] > p.range.max)
      throw_error(errc::invalid_value, context + " zero_point[" + std::to_string(i) + "]",
                  "expected a value in [" + std::to_string(p.range.min) + ", " + std::to_string(p.range.max) + "], found " +
                      std::to_string(p.zero_points[i]));
  }
}

namespace detail {

inline dtype qat_dtype_by_name(const std::string& s, const std::string& ctx) {
  static const std::pair<const char*, dtype> names[] = {{"int8", dtype::int8},   {"uint8", dtype::uint8}, {"int16", dtype::int16},
                                                        {"uint16", dtype::uint16}, {"int4", dtype::int4},   {"uint4", dtype::uint4}};
  for (const auto& [n, t] : names)
    if (s == n) return t;
  throw_error(errc::parse_error, ctx, "expected dtype int8, uint8, int16, uint16, int4 or uint4, found \"" + s + "\"");
}

inline std::int32_t json_int32(const quench::detail::json_value& v, const std::string& ctx) {
  const std::int64_t x = v.as_int64(ctx);
  if (x < -2147483648LL || x > 2147483647LL) throw_error(errc::parse_error, ctx, "expected a 32-bit integer, found " + std::to_string(x));
  return static_cast<std::int32_t>(x);
}

inline float json_scale(const quench::detail::json_value& v, const std::string& ctx) {
  const double d = v.as_double(ctx);  // refuses text that is not a finite number
  const float f = static_cast<float>(d);
  if (!std::isfinite(f) || !(f > 0.f)) throw_error(errc::invalid_value, ctx, "expected a finite scale > 0, found " + quench::detail::python_float_repr(d));
  return f;
}

inline qat_tensor_params qat_entry_from_json(const quench::detail::json_value& v, bool activation, const std::string& ctx) {
  qat_tensor_params p;
  const quench::detail::json_value* dt = v.find("dtype");
  const quench::detail::json_value* lo = v.find("quant_min");
  const quench::detail::json_value* hi = v.find("quant_max");
  if ((lo == nullptr) != (hi == nullptr)) throw_error(errc::parse_error, ctx, "needs both quant_min and quant_max, or neither");
  if (!dt && !lo) throw_error(errc::parse_error, ctx, "needs \"dtype\" or \"quant_min\"/\"quant_max\"");
  if (lo) p.range = {json_int32(*lo, ctx + " quant_min"), json_int32(*hi, ctx + " quant_max")};
  if (dt) {
    p.type = qat_dtype_by_name(dt->as_string(ctx + " dtype"), ctx + " dtype");
    if (!lo) p.range = full_range(p.type);
  } else {
    p.type = storage_type(p.range, activation, ctx);
  }
  if (const quench::detail::json_value* axis = v.find("axis"); axis && !axis->is_null()) {
    p.axis = axis->as_int64(ctx + " axis");
    if (p.axis < 0) throw_error(errc::parse_error, ctx + " axis", "expected a non-negative axis, found " + std::to_string(p.axis));
    for (const auto& s : v.at("scales", ctx).as_array(ctx + " scales")) p.scales.push_back(json_scale(s, ctx + " scales"));
    if (const quench::detail::json_value* z = v.find("zero_points"))
      for (const auto& x : z->as_array(ctx + " zero_points")) p.zero_points.push_back(json_int32(x, ctx + " zero_points"));
    else
      p.zero_points.assign(p.scales.size(), 0);
  } else {
    p.scales = {json_scale(v.at("scale", ctx), ctx + " scale")};
    const quench::detail::json_value* z = v.find("zero_point");
    p.zero_points = {z ? json_int32(*z, ctx + " zero_point") : 0};
  }
  validate(p, activation, ctx);
  return p;
}

inline std::string qat_entry_json(const qat_tensor_params& p) {
  std::string j = "{\"dtype\": " + quench::detail::json_quote(to_string(p.type)) + ", \"quant_min\": " + std::to_string(p.range.min) +
                  ", \"quant_max\": " + std::to_string(p.range.max);
  if (p.axis < 0) {
    j += ", \"scale\": " + quench::detail::python_float_repr(p.scales.at(0)) + ", \"zero_point\": " + std::to_string(p.zero_points.empty() ? 0 : p.zero_points[0]);
  } else {
    j += ", \"axis\": " + std::to_string(p.axis) + ", \"scales\": [";
    for (std::size_t i = 0; i < p.scales.size(); ++i) j += (i ? ", " : "") + quench::detail::python_float_repr(p.scales[i]);
    j += "], \"zero_points\": [";
    for (std::size_t i = 0; i < p.zero_points.size(); ++i) j += (i ? ", " : "") + std::to_string(p.zero_points[i]);
    j += "]";
  }
  return j + "}";
}

}  // namespace detail

/// Reads the JSON format of the header comment; errors name `context` and the entry.
inline qat_params qat_params_from_json(std::string_view text, const std::string& context = "QAT parameters") {
  const quench::detail::json_value root = quench::detail::parse_json(text, context);
  if (!root.is_object()) throw_error(errc::parse_error, context, "expected a JSON object");
  if (root.find("format")) quench::detail::check_json_format(root, context, "quench.qat_params");
  qat_params out;
  for (const auto& [name, v] : root.at("activations", context).as_object(context + " activations"))
    out.activations[name] = detail::qat_entry_from_json(v, true, context + " activation '" + name + "'");
  if (const quench::detail::json_value* w = root.find("weights"))
    for (const auto& [name, v] : w->as_object(context + " weights"))
      out.weights[name] = detail::qat_entry_from_json(v, false, context + " weight '" + name + "'");
  return out;
}

/// The JSON text of `p` (names sorted, floats in their shortest exact decimal form).
inline std::string to_json(const qat_params& p) {
  std::string j = "{\"format\": \"quench.qat_params\", \"version\": 1,\n \"activations\": {";
  bool first = true;
  for (const auto& [name, e] : p.activations) {
    j += (first ? "\n  " : ",\n  ") + quench::detail::json_quote(name) + ": " + detail::qat_entry_json(e);
    first = false;
  }
  j += "},\n \"weights\": {";
  first = true;
  for (const auto& [name, e] : p.weights) {
    j += (first ? "\n  " : ",\n  ") + quench::detail::json_quote(name) + ": " + detail::qat_entry_json(e);
    first = false;
  }
  return j + "}}\n";
}

/// The integer weight as PyTorch's fake quant computes it (float32 reciprocal, multiply, round
/// half to even, zero point after rounding, clamp to [quant_min, quant_max]); 4-bit types packed.
inline tensor qat_weight_values(const tensor& w, const qat_tensor_params& p, const std::string& context) {
  if (w.dtype() != dtype::float32) throw_error(errc::unsupported_dtype, context, "expected a float32 weight, found " + to_string(w.dtype()));
  std::size_t dim = 1, inner = w.size();
  if (p.axis >= 0) {
    if (p.axis >= static_cast<std::int64_t>(w.rank()))
      throw_error(errc::invalid_argument, context + " axis",
                  "expected an axis below the weight's rank " + std::to_string(w.rank()) + ", found " + std::to_string(p.axis));
    const std::size_t a = static_cast<std::size_t>(p.axis);
    dim = static_cast<std::size_t>(w.shape()[a]);
    inner = w.shape().inner(a);
    if (p.scales.size() != dim)
      throw_error(errc::shape_mismatch, context,
                  "expected " + std::to_string(dim) + " scales (dim " + std::to_string(p.axis) + " of " + to_string(w.shape()) + "), found " +
                      std::to_string(p.scales.size()));
  }
  const float* x = w.view<float>().data();
  std::vector<std::int32_t> q(w.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    const std::size_t c = p.axis < 0 ? 0 : (i / inner) % dim;
    const float inv = 1.0f / p.scales[c];
    if (!std::isfinite(x[i])) throw_error(errc::not_finite, context + " element " + std::to_string(i), "weights must be finite");
    const double r = static_cast<double>(std::nearbyint(x[i] * inv)) + p.zero_points[c];
    q[i] = static_cast<std::int32_t>(std::min<double>(std::max<double>(r, p.range.min), p.range.max));
  }
  tensor t(p.type, w.shape(), w.name() + "_quantized");
  switch (p.type) {
    case dtype::int8: std::copy(q.begin(), q.end(), t.view<std::int8_t>().begin()); break;
    case dtype::uint8: std::copy(q.begin(), q.end(), t.view<std::uint8_t>().begin()); break;
    case dtype::int16: std::copy(q.begin(), q.end(), t.view<std::int16_t>().begin()); break;
    case dtype::uint16: std::copy(q.begin(), q.end(), t.view<std::uint16_t>().begin()); break;
    case dtype::int4:
    case dtype::uint4: pack_4bit(q.data(), q.size(), reinterpret_cast<std::uint8_t*>(t.bytes())); break;
    default: throw_error(errc::unsupported_dtype, context, "cannot store weights as " + to_string(p.type));
  }
  return t;
}

struct export_options {
  quant_profile profile = profile_by_name("ort");
  plan_options placement;
  /// Upgrade the opset when the parameters need a newer one (4-bit and 16-bit weights: 21).
  bool upgrade_opset = true;
  /// Samples to learn which tensors are float (only the first is run). Null: one sample of zeros
  /// built from the graph inputs' static shapes (symbolic dimensions 1). Not owned.
  data::sample_source* samples = nullptr;
};

struct export_report {
  quantize_report quantize;
  /// Planned activations whose parameters came from another tensor: (tensor, entry used).
  std::vector<std::pair<std::string, std::string>> borrowed;
  /// Entries of the parameters no quantized tensor used (a graph output the profile leaves float, ...).
  std::vector<std::string> unused;
  /// Activations with a range narrower than their type: a Clip keeps the fake quant's clamp.
  std::vector<std::string> clipped;
};

namespace detail {

/// A zero sample per graph input from its static shape (symbolic dimensions 1): enough for the
/// executor run that tells float tensors apart, when the caller has no data.
inline data::tensor_source zero_sample(const model& m) {
  std::vector<std::pair<std::string, tensor>> in;
  for (const value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    if (!v->dims()) throw_error(errc::invalid_model, tensor_context(v->name()), "graph input has no shape: pass samples to export_qat");
    std::vector<std::int64_t> dims;
    for (const dim& d : *v->dims()) dims.push_back(d.is_known() && *d.value > 0 ? *d.value : 1);
    if (dims.empty()) dims.push_back(1);  // a scalar input: the source needs a sample axis
    const dtype t = v->dtype();
    if (t == dtype::undefined) throw_error(errc::invalid_model, tensor_context(v->name()), "graph input has no element type");
    tensor z(t, shape(dims), v->name());
    std::fill(z.bytes(), z.bytes() + z.nbytes(), std::byte{0});
    in.emplace_back(v->name(), std::move(z));
  }
  return data::tensor_source(std::move(in));
}

/// The tensors equal to `name` up to value-preserving ops, nearest first: inputs of their
/// producers (walking up) and outputs of single-input consumers (walking down).
inline std::vector<std::string> grid_neighbours(const graph& g, const std::string& name) {
  std::vector<std::string> out;
  std::set<std::string> seen{name};
  std::vector<const value*> frontier{g.find_value(name)};
  while (!frontier.empty()) {
    std::vector<const value*> next;
    for (const value* v : frontier) {
      if (!v) continue;
      if (const node* p = v->producer(); p && is_value_preserving_op(p->op_type()) && p->input(0))
        if (seen.insert(p->input(0)->name()).second) next.push_back(p->input(0));
      for (const use& u : v->uses())
        if (u.index == 0 && is_value_preserving_op(u.user->op_type()) && u.user->output(0))
          if (seen.insert(u.user->output(0)->name()).second) next.push_back(u.user->output(0));
    }
    for (const value* v : next) out.push_back(v->name());
    frontier = std::move(next);
  }
  return out;
}

}  // namespace detail

/// Writes `m` (a float model) as a QDQ model with the trained parameters `params` (see the header
/// comment); throws invalid_argument naming each quantized tensor the parameters lack.
inline export_report export_qat(model& m, const qat_params& params, const export_options& opt = {}) {
  if (opt.profile.placement == qdq_placement::weights)
    throw_error(errc::invalid_argument, "profile '" + opt.profile.name + "'", "export_qat needs the ort or tensorrt profile");
  for (const auto& [n, p] : params.activations) validate(p, true, "activation '" + n + "'");
  for (const auto& [n, p] : params.weights) validate(p, false, "weight '" + n + "'");
  export_report report;
  std::int64_t needed = 13;
  for (const auto& kv : params.weights)
    if (kv.second.type != dtype::int8 && kv.second.type != dtype::uint8) needed = 21;
  for (const auto& kv : params.activations)
    if (kv.second.type != dtype::int8 && kv.second.type != dtype::uint8) needed = 21;
  if (m.opset() < needed) {
    if (!opt.upgrade_opset)
      throw_error(errc::invalid_model, "QAT parameters", "4-bit and 16-bit types need opset 21, the model imports " + std::to_string(m.opset()));
    passes::upgrade_opset(m, needed);
  }
  graph& g = m.main_graph();
  passes::standard_passes(g, m.opset());
  detail::name_all_nodes(g);
  g.topological_sort();

  std::optional<data::tensor_source> zeros;
  if (!opt.samples) zeros.emplace(detail::zero_sample(m));
  data::sample_source& source = opt.samples ? *opt.samples : static_cast<data::sample_source&>(*zeros);
  const auto floats = detail::float_activations(m, source, {});
  // A trained fake quant on a graph output (torch's last activation_post_process) clamps the
  // output: the exported model quantizes it too, where the placement alone would leave it float.
  plan_options placement = opt.placement;
  for (const value* v : g.outputs())
    if (params.activations.count(v->name())) placement.quantize_outputs.insert(v->name());
  const qdq_plan plan = plan_qdq(m, opt.profile, floats, placement);

  quantize_options qo;
  qo.profile = opt.profile;
  qo.placement = placement;
  qo.preprocess = false;  // done above: the plan must be the one quantize_static makes
  qo.upgrade_opset = false;
  qo.select_ranges = false;
  std::set<std::string> used;
  std::vector<std::string> missing;
  std::map<std::string, const qat_tensor_params*> chosen;
  for (const planned_activation& a : plan.activations) {
    if (!a.share_with.empty()) continue;
    std::vector<std::string> names{a.name, a.range_of};
    for (const std::string& n : detail::grid_neighbours(g, a.name)) names.push_back(n);
    const qat_tensor_params* found = nullptr;
    for (const std::string& n : names) {
      auto it = params.activations.find(n);
      if (it == params.activations.end()) continue;
      found = &it->second;
      used.insert(n);
      if (n != a.name && n != a.range_of) report.borrowed.emplace_back(a.name, n);
      break;
    }
    if (!found && a.fixed_unit_range) continue;  // Softmax output: [0, 1] as the profile fixes it
    if (!found) {
      missing.push_back(a.name == a.range_of ? "'" + a.name + "'" : "'" + a.name + "' (range of '" + a.range_of + "')");
      continue;
    }
    chosen[a.name] = found;
    qo.activation_params[a.name] = found->onnx_qparams();
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& s : missing) list += (list.empty() ? "" : ", ") + s;
    throw_error(errc::invalid_argument, "QAT parameters",
                "the '" + opt.profile.name + "' profile quantizes activation" + (missing.size() > 1 ? "s " : " ") + list +
                    ", which the parameters lack");
  }
  std::unordered_map<std::string, const node*> by_name;
  for (const node* n : g.nodes()) by_name.emplace(n->name(), n);
  for (const planned_weight& pw : plan.weights) {
    const value* w = by_name.at(pw.node)->input(pw.input);
    auto it = params.weights.find(w->name());
    if (it == params.weights.end())
      throw_error(errc::invalid_argument, tensor_context(w->name()),
                  "is the weight of node '" + pw.node + "', which the '" + opt.profile.name + "' profile quantizes, but the parameters lack it");
    const qat_tensor_params& p = it->second;
    const std::string ctx = "weight '" + w->name() + "'";
    if (p.axis >= 0 && p.axis != pw.axis)
      throw_error(errc::invalid_argument, ctx,
                  "parameters are per channel on axis " + std::to_string(p.axis) + ", node '" + pw.node + "' needs axis " +
                      (pw.axis < 0 ? std::string("none (per tensor)") : std::to_string(pw.axis)));
    used.insert(w->name());
    qo.weight_params[w->name()] = p.onnx_qparams();
    if (auto v = params.values.find(w->name()); v != params.values.end())
      qo.weight_values[w->name()] = v->second;
    else
      qo.weight_values[w->name()] = std::make_shared<const tensor>(qat_weight_values(*w->initializer(), p, ctx));
  }
  for (const auto& kv : params.activations)
    if (!used.count(kv.first)) report.unused.push_back(kv.first);
  for (const auto& kv : params.weights)
    if (!used.count(kv.first)) report.unused.push_back(kv.first);

  report.quantize = quantize_static(m, source, qo);

  // A range narrower than the type (reduce_range, narrow int8): clamp before the Q as the fake quant did.
  for (const auto& [name, p] : chosen) {
    if (p->range.min == full_range(p->type).min && p->range.max == full_range(p->type).max) continue;
    value* x = g.find_value(name);
    if (!x) continue;
    std::vector<node*> qs;
    for (const use& u : x->uses())
      if (u.user->is("QuantizeLinear") && u.index == 0) qs.push_back(u.user);
    if (qs.empty()) continue;
    const float s = p->scales[0];
    const std::int32_t z = p->zero_points[0];
    tensor lo(dtype::float32, shape{}, g.unique_name(name + "_qat_min")), hi(dtype::float32, shape{}, g.unique_name(name + "_qat_max"));
    lo.view<float>()[0] = static_cast<float>(p->range.min - z) * s;
    hi.view<float>()[0] = static_cast<float>(p->range.max - z) * s;
    value& lv = g.add_initializer(std::move(lo));
    value& hv = g.add_initializer(std::move(hi));
    node& clip = g.add_node("Clip", {x, &lv, &hv}, {g.unique_name(name + "_qat_clipped")}, g.unique_name(name + "_qat_clip"));
    for (node* q : qs) g.set_input(*q, 0, clip.output(0));
    report.clipped.push_back(name);
  }
  if (!report.clipped.empty()) g.topological_sort();

  qat_params stored = params;
  stored.values.clear();
  for (auto it = m.metadata_props.begin(); it != m.metadata_props.end();)
    it = it->first == "quench.qat_params" ? m.metadata_props.erase(it) : it + 1;
  m.metadata_props.emplace_back("quench.qat_params", to_json(stored));
  return report;
}

}  // namespace quench::pipeline
