#pragma once
// QuantizeLinear, DequantizeLinear (opsets 10, 13, 19, 21) and DynamicQuantizeLinear (11) as
// executor kernels over the exact kernels of the quant layer (quench/quant/). What each opset adds:
//
//   10  per-tensor scale and zero point; int8/uint8 (and int32 for DequantizeLinear)
//   13  per-axis scale (`axis`, default 1)
//   19  float8 types and `saturate`; float16/bfloat16 inputs and scales; DequantizeLinear's
//       output takes the scale's type
//   21  blocked scales (`block_size`), int16/uint16/int4/uint4, QuantizeLinear's `output_dtype`
//
// The quant layer names the tensor in its errors; the kernels add the node.

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/dynamic_quantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

namespace detail::quant_ops {

/// The message of `e` without its "[quench.code] context: " prefix.
inline std::string bare_message(const error& e) {
  std::string s = e.what();
  const std::string prefix =
      "[quench." + std::string(errc_name(e.code())) + "] " + (e.context().empty() ? "" : e.context() + ": ");
  return s.compare(0, prefix.size(), prefix) == 0 ? s.substr(prefix.size()) : s;
}

/// Runs `f`, rethrowing a quant-layer error with the node in its context.
template <class F>
decltype(auto) in_node(const op_context& ctx, F&& f) {
  try {
    return f();
  } catch (const error& e) {
    if (e.context().rfind(ctx.node().context(), 0) == 0) throw;
    ctx.fail(e.code(), (e.context().empty() ? "" : e.context() + ": ") + bare_message(e));
  }
}

/// First opset whose QuantizeLinear/DequantizeLinear accepts element type `t`.
inline std::int64_t first_opset_for(dtype t) noexcept {
  switch (t) {
    case dtype::int8:
    case dtype::uint8:
    case dtype::int32:
      return 10;
    case dtype::int16:
    case dtype::uint16:
    case dtype::int4:
    case dtype::uint4:
      return 21;
    default:
      return is_float8(t) ? 19 : 1000;
  }
}

inline void check_type_at_opset(const op_context& ctx, dtype t, const char* what) {
  const std::int64_t since = first_opset_for(t);
  if (since >= 1000)
    ctx.fail(errc::unsupported_dtype,
             std::string(what) + " has element type " + to_string(t) + ", which is not a quantized type");
  if (ctx.opset() < since)
    ctx.fail(errc::invalid_model, std::string(what) + " has element type " + to_string(t) +
                                      ", which needs opset " + std::to_string(since) +
                                      " (the model imports " + std::to_string(ctx.opset()) + ")");
}

/// axis (13+) and block_size (21+) as the opset defines them.
inline std::int64_t axis_attr(const op_context& ctx) {
  return ctx.opset() >= 13 ? ctx.node().attr_int("axis", 1) : 1;
}
inline std::int64_t block_size_attr(const op_context& ctx) {
  return ctx.opset() >= 21 ? ctx.node().attr_int("block_size", 0) : 0;
}

inline void check_per_tensor_before_13(const op_context& ctx, const tensor& scale) {
  if (ctx.opset() < 13 && (scale.size() != 1 || scale.rank() > 1))
    ctx.fail(errc::invalid_model, "per-axis scales (shape " + to_string(scale.shape()) + ") need opset 13");
}

inline void run_quantize_linear(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& scale = ctx.required_input(1);
  const tensor* zp = ctx.input(2);
  const std::int64_t out_attr = ctx.opset() >= 21 ? ctx.node().attr_int("output_dtype", 0) : 0;
  dtype out = dtype::uint8;
  if (zp) {
    out = zp->dtype();
    if (out_attr != 0 && out_attr != static_cast<std::int64_t>(out))
      ctx.fail(errc::invalid_model, "output_dtype " + std::to_string(out_attr) +
                                        " disagrees with the zero point's type " + to_string(out));
  } else if (out_attr != 0) {
    out = dtype_from_onnx(static_cast<std::int32_t>(out_attr), ctx.node().context());
  }
  check_type_at_opset(ctx, out, "the output");
  if (out == dtype::int32) ctx.fail(errc::unsupported_dtype, "QuantizeLinear cannot produce int32");
  if ((x.dtype() == dtype::float16 || x.dtype() == dtype::bfloat16) && ctx.opset() < 19)
    ctx.fail(errc::invalid_model, "a " + to_string(x.dtype()) + " input needs opset 19");
  check_per_tensor_before_13(ctx, scale);
  const bool saturate = ctx.opset() >= 19 ? ctx.node().attr_int("saturate", 1) != 0 : true;
  ctx.set_output(0, in_node(ctx, [&] {
                   const qparams p =
                       qparams_from_tensors(scale, zp, out, axis_attr(ctx), block_size_attr(ctx), saturate);
                   return quantize(x, p);
                 }));
}

inline void run_dequantize_linear(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& scale = ctx.required_input(1);
  const tensor* zp = ctx.input(2);
  check_type_at_opset(ctx, x.dtype(), "the input");
  check_per_tensor_before_13(ctx, scale);
  // DequantizeLinear-19 and later produce the scale's type; earlier opsets only float.
  dtype out = dtype::float32;
  if (ctx.opset() >= 19)
    out = scale.dtype();
  else if (scale.dtype() != dtype::float32)
    ctx.fail(errc::invalid_model, "a " + to_string(scale.dtype()) + " scale needs opset 19");
  ctx.set_output(0, in_node(ctx, [&] {
                   const qparams p =
                       qparams_from_tensors(scale, zp, x.dtype(), axis_attr(ctx), block_size_attr(ctx));
                   return dequantize(x, p, out);
                 }));
}

inline void run_dynamic_quantize_linear(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  dynamic_quantized r = in_node(ctx, [&] { return dynamic_quantize_linear(x); });
  ctx.set_output(0, std::move(r.y));
  if (ctx.output_wanted(1)) ctx.set_output(1, tensor::from<float>(shape{}, {r.scale}));
  if (ctx.output_wanted(2)) ctx.set_output(2, tensor::from<std::uint8_t>(shape{}, {r.zero_point}));
}

/// Attribute values the kernels cannot honour, rejected before running.
inline void check_quant_attrs(const node& n, std::int64_t opset) {
  if (opset >= 21) {
    const std::int64_t b = n.attr_int("block_size", 0);
    if (b < 0)
      throw_error(errc::invalid_model, n.context(), "block_size must be >= 0, found " + std::to_string(b));
    const std::int64_t t = n.attr_int("output_dtype", 0);
    if (t != 0 && (t < 0 || t > 1000 || !is_known_dtype(static_cast<std::int32_t>(t)) ||
                   first_opset_for(static_cast<dtype>(t)) > 21 || static_cast<dtype>(t) == dtype::int32))
      throw_error(errc::unsupported_op, n.context(),
                  "output_dtype " + std::to_string(t) + " is not a QuantizeLinear output type");
  }
  if (opset >= 19) {
    const std::int64_t s = n.attr_int("saturate", 1);
    if (s != 0 && s != 1)
      throw_error(errc::invalid_model, n.context(), "saturate must be 0 or 1, found " + std::to_string(s));
  }
}

}  // namespace detail::quant_ops

/// Registers QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.
inline void register_quantize_ops(op_registry& r) {
  using namespace detail::quant_ops;
  const std::uint32_t float_inputs =
      types::bit(dtype::float32) | types::bit(dtype::float16) | types::bit(dtype::bfloat16);
  const std::uint32_t quantized =
      types::bit(dtype::int8) | types::bit(dtype::uint8) | types::bit(dtype::int16) |
      types::bit(dtype::uint16) | types::bit(dtype::int32) | types::bit(dtype::int4) |
      types::bit(dtype::uint4) | types::bit(dtype::float8e4m3fn) | types::bit(dtype::float8e4m3fnuz) |
      types::bit(dtype::float8e5m2) | types::bit(dtype::float8e5m2fnuz);
  // One kernel per signature change: axis (13), saturate and float8 (19), block_size (21).
  for (auto [since, until] :
       {std::pair<std::int64_t, std::int64_t>{10, 12}, {13, 18}, {19, 20}, {21, 1000}}) {
    r.add("QuantizeLinear", run_quantize_linear, float_inputs, check_quant_attrs, since, until);
    r.add("DequantizeLinear", run_dequantize_linear, quantized, check_quant_attrs, since, until);
  }
  r.add("DynamicQuantizeLinear", run_dynamic_quantize_linear, types::bit(dtype::float32), nullptr, 11);
}

}  // namespace quench::runtime
