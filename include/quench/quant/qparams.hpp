#pragma once
// qparams: the scale and zero point of one ONNX QuantizeLinear / DequantizeLinear, with the three
// layouts the operators define (onnx/defs/quantization/defs.cc, opsets 10/13/19/21):
//
//   per_tensor  one scale and zero point (a scalar, or a 1-D tensor of one element)
//   per_axis    a 1-D scale of length D[axis] (opset 13; axis may be negative, default 1)
//   blocked     scale of the input's rank with dim[axis] = ceil(D[axis] / block_size) and every
//               other dim equal to the input's (opset 21); element i along `axis` uses block
//               i / block_size, the last block may be short
//
// Zero points are held as int32 for every integer type. For the float8 types they are the bit
// pattern, and must be 0: the ONNX reference implementation ignores a float8 zero point and
// ONNX Runtime 1.30 rejects a non-zero one in DequantizeLinear, so no meaning is portable.

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/int4.hpp"

namespace quench {

/// How scales map to the elements of the input.
enum class quant_granularity : std::uint8_t { per_tensor, per_axis, blocked };

constexpr std::string_view granularity_name(quant_granularity g) noexcept {
  switch (g) {
    case quant_granularity::per_tensor: return "per_tensor";
    case quant_granularity::per_axis: return "per_axis";
    case quant_granularity::blocked: return "blocked";
  }
  return "unknown";
}

/// An inclusive range of quantized integer values.
struct integer_range {
  std::int32_t min = 0;
  std::int32_t max = 0;
};

/// Element types that QuantizeLinear produces or DequantizeLinear consumes (int32 only the latter).
constexpr bool is_quantized_type(dtype t) noexcept {
  switch (t) {
    case dtype::int8:
    case dtype::uint8:
    case dtype::int16:
    case dtype::uint16:
    case dtype::int32:
    case dtype::int4:
    case dtype::uint4: return true;
    default: return is_float8(t);
  }
}

/// The whole range of an integer quantized type: the bounds QuantizeLinear saturates to.
/// {0, 0} for the float8 types, which saturate to their largest finite value instead.
constexpr integer_range full_range(dtype t) noexcept {
  switch (t) {
    case dtype::int8: return {-128, 127};
    case dtype::uint8: return {0, 255};
    case dtype::int16: return {-32768, 32767};
    case dtype::uint16: return {0, 65535};
    case dtype::int32: return {-2147483647 - 1, 2147483647};
    case dtype::int4: return {-8, 7};
    case dtype::uint4: return {0, 15};
    default: return {0, 0};
  }
}

/// Quantization parameters. Plain data: build one with the factories, or fill the fields and call
/// `validate`. Every quench function that takes a qparams validates it against its input first.
///
///     auto p = quench::qparams::per_axis(quench::dtype::int8, 0, {0.02f, 0.01f});   // 2 channels
///     quench::validate(p, quench::shape{2, 64});
struct qparams {
  dtype type = dtype::uint8;  ///< quantized element type (the zero point's type in ONNX)
  quant_granularity granularity = quant_granularity::per_tensor;
  std::int64_t axis = 1;        ///< per_axis and blocked; negative counts from the back
  std::int64_t block_size = 0;  ///< blocked only, > 0
  /// Shape of the scale and zero-point tensors: {} (or {1}) per tensor, {D[axis]} per axis, the
  /// input's shape with dim[axis] = ceil(D[axis] / block_size) when blocked.
  quench::shape param_shape;
  std::vector<float> scales;  ///< row-major over param_shape
  /// Empty means all zero (ONNX: zero point omitted). Otherwise one per scale.
  std::vector<std::int32_t> zero_points;
  /// float8 only (QuantizeLinear-19 `saturate`): out-of-range values become +-max instead of
  /// NaN/Inf. Ignored for integer types, which always saturate.
  bool saturate = true;

  /// One scale and zero point for the whole tensor.
  static qparams per_tensor(dtype type, float scale, std::int32_t zero_point = 0) {
    qparams p;
    p.type = type;
    p.scales = {scale};
    if (zero_point != 0) p.zero_points = {zero_point};
    return p;
  }

  /// One scale (and zero point) per index of `axis`.
  static qparams per_axis(dtype type, std::int64_t axis, std::vector<float> scales,
                          std::vector<std::int32_t> zero_points = {}) {
    qparams p;
    p.type = type;
    p.granularity = quant_granularity::per_axis;
    p.axis = axis;
    p.param_shape = quench::shape{static_cast<std::int64_t>(scales.size())};
    p.scales = std::move(scales);
    p.zero_points = std::move(zero_points);
    return p;
  }

  /// Blocks of `block_size` consecutive elements along `axis` share a scale (ONNX opset 21).
  static qparams blocked(dtype type, std::int64_t axis, std::int64_t block_size, quench::shape param_shape,
                         std::vector<float> scales, std::vector<std::int32_t> zero_points = {}) {
    qparams p;
    p.type = type;
    p.granularity = quant_granularity::blocked;
    p.axis = axis;
    p.block_size = block_size;
    p.param_shape = std::move(param_shape);
    p.scales = std::move(scales);
    p.zero_points = std::move(zero_points);
    return p;
  }

  std::size_t count() const noexcept { return scales.size(); }
  std::int32_t zero_point(std::size_t i) const noexcept { return zero_points.empty() ? 0 : zero_points[i]; }
};

namespace detail {

inline std::string in_context(std::string_view context, const std::string& what) {
  if (context.empty()) return what;
  return std::string(context) + ' ' + what;
}

inline std::string float_repr(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

/// ceil(d / b) for d >= 0, b > 0.
constexpr std::int64_t ceil_div(std::int64_t d, std::int64_t b) noexcept { return (d + b - 1) / b; }

}  // namespace detail

/// Checks `p` on its own: a supported type, positive finite scales, zero points in range, and
/// scale/zero-point counts that agree with `param_shape`. Throws quench::error naming the
/// offending entry, e.g. `[quench.invalid_value] scale[3]: expected a finite value > 0, found 0`.
inline void validate(const qparams& p, std::string_view context = {}) {
  using detail::in_context;
  if (!is_quantized_type(p.type))
    throw_error(errc::unsupported_dtype, std::string(context),
                "expected a quantized element type (int8, uint8, int16, uint16, int32, int4, uint4 or "
                "float8), found " +
                    to_string(p.type));
  if (p.granularity == quant_granularity::blocked && p.block_size <= 0)
    throw_error(errc::invalid_argument, in_context(context, "block_size"),
                "expected a value > 0 for blocked quantization, found " + std::to_string(p.block_size));
  if (p.granularity != quant_granularity::blocked && p.block_size != 0)
    throw_error(errc::invalid_argument, in_context(context, "block_size"),
                "expected 0 for " + std::string(granularity_name(p.granularity)) + " quantization, found " +
                    std::to_string(p.block_size));

  const std::size_t want = p.param_shape.numel();
  switch (p.granularity) {
    case quant_granularity::per_tensor:
      if (p.param_shape.rank() > 1 || want != 1)
        throw_shape_mismatch(in_context(context, "scale"), "shape [] or [1] for per-tensor quantization",
                             to_string(p.param_shape));
      break;
    case quant_granularity::per_axis:
      if (p.param_shape.rank() != 1)
        throw_shape_mismatch(in_context(context, "scale"), "a 1-D shape for per-axis quantization",
                             to_string(p.param_shape));
      break;
    case quant_granularity::blocked:
      if (p.param_shape.rank() == 0)
        throw_shape_mismatch(in_context(context, "scale"), "the input's rank for blocked quantization",
                             "rank 0");
      break;
  }
  if (p.scales.size() != want)
    throw_shape_mismatch(in_context(context, "scale"),
                         std::to_string(want) + " values for shape " + to_string(p.param_shape),
                         std::to_string(p.scales.size()));
  if (!p.zero_points.empty() && p.zero_points.size() != p.scales.size())
    throw_shape_mismatch(in_context(context, "zero_point"),
                         std::to_string(p.scales.size()) + " values (one per scale)",
                         std::to_string(p.zero_points.size()));

  for (std::size_t i = 0; i < p.scales.size(); ++i) {
    const float s = p.scales[i];
    if (!(s > 0.f) || std::isinf(s))
      throw_error(errc::invalid_value, in_context(context, "scale[" + std::to_string(i) + "]"),
                  "expected a finite value > 0, found " + detail::float_repr(s));
  }
  if (is_float8(p.type)) {
    for (std::size_t i = 0; i < p.zero_points.size(); ++i)
      if (p.zero_points[i] != 0)
        throw_error(errc::invalid_value, in_context(context, "zero_point[" + std::to_string(i) + "]"),
                    "expected 0 for " + to_string(p.type) + " (a float8 zero point has no portable meaning), "
                    "found bit pattern " + std::to_string(p.zero_points[i]));
  } else {
    // ONNX: "In the case of dequantizing int32, there's no zero point (zero point is supposed to be 0)".
    const integer_range r = p.type == dtype::int32 ? integer_range{0, 0} : full_range(p.type);
    for (std::size_t i = 0; i < p.zero_points.size(); ++i) {
      const std::int32_t z = p.zero_points[i];
      if (z < r.min || z > r.max)
        throw_error(errc::invalid_value, in_context(context, "zero_point[" + std::to_string(i) + "]"),
                    "expected a value in [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "] for " +
                        to_string(p.type) + ", found " + std::to_string(z));
    }
  }
}

/// Checks `p` and that it fits an input of shape `input`: axis in [-rank, rank-1], per-axis scale
/// count = D[axis], blocked scale shape = input shape with dim[axis] = ceil(D[axis] / block_size).
inline void validate(const qparams& p, const shape& input, std::string_view context = {}) {
  validate(p, context);
  if (p.granularity == quant_granularity::per_tensor) return;
  const std::size_t axis = normalize_axis(p.axis, input.rank(), detail::in_context(context, "axis"));
  const std::int64_t d = input[axis];
  if (p.granularity == quant_granularity::per_axis) {
    if (p.param_shape[0] != d)
      throw_shape_mismatch(detail::in_context(context, "scale"),
                           "shape [" + std::to_string(d) + "] (dim " + std::to_string(axis) + " of input " +
                               to_string(input) + ")",
                           to_string(p.param_shape));
    return;
  }
  std::vector<std::int64_t> want(input.begin(), input.end());
  want[axis] = detail::ceil_div(d, p.block_size);
  if (p.param_shape.dims() != want)
    throw_shape_mismatch(detail::in_context(context, "scale"),
                         "shape " + to_string(shape(want)) + " (input " + to_string(input) + " with block_size " +
                             std::to_string(p.block_size) + " on axis " + std::to_string(axis) + ")",
                         to_string(p.param_shape));
}

namespace detail {

inline float scale_value(const tensor& t, std::size_t i) {
  switch (t.dtype()) {
    case dtype::float32: return t.view<float>()[i];
    case dtype::float16: return static_cast<float>(t.view<float16>()[i]);
    case dtype::bfloat16: return static_cast<float>(t.view<bfloat16>()[i]);
    default: break;
  }
  throw_error(errc::dtype_mismatch, tensor_context(t.name()),
              "expected a float, float16 or bfloat16 scale, found " + to_string(t.dtype()));
}

inline std::int32_t zero_point_value(const tensor& t, std::size_t i) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(t.bytes());
  switch (t.dtype()) {
    case dtype::int8: return t.view<std::int8_t>()[i];
    case dtype::uint8: return t.view<std::uint8_t>()[i];
    case dtype::int16: return t.view<std::int16_t>()[i];
    case dtype::uint16: return t.view<std::uint16_t>()[i];
    case dtype::int32: return t.view<std::int32_t>()[i];
    case dtype::int4: return get_int4(b, i);
    case dtype::uint4: return get_uint4(b, i);
    default:
      if (is_float8(t.dtype())) return b[i];
      break;
  }
  throw_error(errc::unsupported_dtype, tensor_context(t.name()),
              "expected a quantized zero-point type, found " + to_string(t.dtype()));
}

}  // namespace detail

/// Builds qparams from the scale and zero-point tensors of an ONNX node, deciding the layout as
/// ONNX does: block_size > 0 is blocked, a scale of one element and rank <= 1 is per tensor, any
/// other 1-D scale is per axis. `zero_point` may be null (ONNX: omitted); otherwise its dtype must
/// be `type` and its shape the scale's.
///
///     auto p = quench::qparams_from_tensors(scale, &zp, zp.dtype(), /*axis*/ 1, /*block_size*/ 0);
inline qparams qparams_from_tensors(const tensor& scale, const tensor* zero_point, dtype type, std::int64_t axis,
                                    std::int64_t block_size, bool saturate = true) {
  qparams p;
  p.type = type;
  p.axis = axis;
  p.block_size = block_size;
  p.saturate = saturate;
  p.param_shape = scale.shape();
  if (block_size < 0)
    throw_error(errc::invalid_argument, "block_size", "expected a value >= 0, found " + std::to_string(block_size));
  if (block_size > 0)
    p.granularity = quant_granularity::blocked;
  else if (scale.size() == 1 && scale.rank() <= 1)
    p.granularity = quant_granularity::per_tensor;
  else if (scale.rank() == 1)
    p.granularity = quant_granularity::per_axis;
  else
    throw_shape_mismatch(tensor_context(scale.name()), "a scalar or 1-D scale (or block_size > 0)",
                         "shape " + to_string(scale.shape()));
  if (p.granularity == quant_granularity::per_tensor) p.param_shape = shape{};
  p.scales.resize(scale.size());
  for (std::size_t i = 0; i < scale.size(); ++i) p.scales[i] = detail::scale_value(scale, i);
  if (zero_point) {
    if (zero_point->dtype() != type)
      throw_error(errc::dtype_mismatch, tensor_context(zero_point->name()),
                  "expected zero point of type " + to_string(type) + ", found " + to_string(zero_point->dtype()));
    if (zero_point->shape() != scale.shape())
      throw_shape_mismatch(tensor_context(zero_point->name()), "shape " + to_string(scale.shape()) + " (the scale's)",
                           to_string(zero_point->shape()));
    p.zero_points.resize(zero_point->size());
    for (std::size_t i = 0; i < zero_point->size(); ++i) p.zero_points[i] = detail::zero_point_value(*zero_point, i);
  }
  validate(p, tensor_context(scale.name()));
  return p;
}

}  // namespace quench
