#pragma once
// Choosing scale and zero point from a real range [rmin, rmax], per tensor or per channel.
//
// Integer types reproduce ONNX Runtime's `compute_scale_zp` (onnxruntime/python/tools/
// quantization/quant_utils.py, ORT >= 1.17) including its mixed float32/float64 arithmetic:
//
//   1. rmin = min(rmin, 0), rmax = max(rmax, 0)              float32: 0 is always representable
//   2. optionally rmax = max(rmax, rmin + min_real_range)    float32 add (ORT's MinimumRealRange)
//   3. symmetric: absmax = max(|rmin|, |rmax|), [rmin, rmax] = [-absmax, absmax]
//   4. scale = double(float(rmax - rmin)) / (double(qmax) - double(qmin))
//                                           the difference is a float32 subtraction, the quotient
//                                           a float64 division
//   5. scale < FLT_MIN (2^-126, numpy's finfo(float32).tiny): scale = 1, zero point = 0
//      otherwise zero point = round_half_even((qmin + qmax) / 2.0)    if symmetric
//                          = round_half_even(qmin - rmin / scale)     if not (float64)
//      and scale is cast to float32 last.
//
// [qmin, qmax] is ORT's `get_qmin_qmax_for_qType`: reduce_range first (7-bit style: int8
// [-64, 64], uint8 [0, 127], int16 [-16384, 16384], uint16 [0, 32767], int4 [-4, 3], uint4
// [0, 7]); else, when symmetric, the narrow ranges int8 [-127, 127], uint8 [0, 254],
// int16 [-32767, 32767], uint16 [0, 65534] (int4/uint4 keep their full range: ORT has no narrow
// table for them); else the full range.
// `narrow_range` overrides the narrow choice either way (true: drop the lowest signed code, or the
// highest unsigned one, for every integer type). So a symmetric zero point is 0 for int8/int16,
// 127 for uint8 [0, 254] and 32767 for uint16 [0, 65534] (ORT's source comment says 128/32768,
// but its table and formula give 127/32767), 8 for uint4 and 0 for int4 ((-8 + 7) / 2 = -0.5
// rounds to even).
//
// Power-of-two scales (option, as TensorRT/QNN-style fixed-point targets want): after step 5 the
// float32 scale is rounded UP to the next power of two (kept if it already is one), so the range
// [rmin, rmax] still fits and nothing new clips; the asymmetric zero point is then recomputed
// from the new scale with the same float64 formula. ORT has no such option.
//
// float8 types: symmetric by nature, zero point 0, scale = absmax / max_finite(type), computed as
// double(absmax) / double(max_finite) and cast to float32, with the same FLT_MIN rule. This is the
// "amax" recipe of NVIDIA TensorRT / Transformer Engine FP8, not ORT's (ORT fits a standard
// deviation for float8e4m3fn only).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

/// How a real range maps onto the quantized one. Defaults reproduce ORT's asymmetric
/// quantization; `symmetric = true` reproduces its symmetric (weight) quantization.
struct range_options {
  bool symmetric = false;     ///< ORT WeightSymmetric / ActivationSymmetric
  bool reduce_range = false;  ///< ORT reduce_range: one bit less (for non-VNNI x86 int8 kernels)
  /// Unset: ORT's rule (narrow for symmetric 8/16-bit). true/false: force narrow / full range.
  std::optional<bool> narrow_range;
  bool power_of_two_scale = false;  ///< round the scale up to a power of two
  float min_real_range = 0.f;       ///< ORT MinimumRealRange; 0 = off
};

/// One scale and zero point.
struct scale_zero_point {
  float scale = 1.f;
  std::int32_t zero_point = 0;
};

namespace detail {

/// Round half to even in double, independent of the floating-point environment (see the float
/// version in quantize_kernels.hpp; 2^52 plays the role of 2^23).
inline double round_half_even_double(double v) noexcept {
  const double a = std::fabs(v);
  if (a < 4503599627370496.0) return std::copysign((a + 4503599627370496.0) - 4503599627370496.0, v);
  return v;
}

/// Largest finite value of a float8 type.
inline float float8_max(dtype t) noexcept {
  switch (t) {
    case dtype::float8e4m3fn: return float8_bits_to_float<e4m3fn_format>(e4m3fn_format::max_code);
    case dtype::float8e4m3fnuz: return float8_bits_to_float<e4m3fnuz_format>(e4m3fnuz_format::max_code);
    case dtype::float8e5m2: return float8_bits_to_float<e5m2_format>(e5m2_format::max_code);
    case dtype::float8e5m2fnuz: return float8_bits_to_float<e5m2fnuz_format>(e5m2fnuz_format::max_code);
    default: return 0.f;
  }
}

/// Rounds a positive finite float up to a power of two.
inline float pow2_ceil(float s) noexcept {
  int e = 0;
  const float m = std::frexp(s, &e);  // s = m * 2^e, m in [0.5, 1)
  return m == 0.5f ? s : std::ldexp(1.f, e);
}

inline void check_range(float rmin, float rmax, const std::string& what) {
  if (!std::isfinite(rmin) || !std::isfinite(rmax))
    throw_error(errc::not_finite, what,
                "expected a finite range, found [" + float_repr(rmin) + ", " + float_repr(rmax) + "]");
  if (rmin > rmax)
    throw_error(errc::invalid_argument, what,
                "expected rmin <= rmax, found [" + float_repr(rmin) + ", " + float_repr(rmax) + "]");
}

}  // namespace detail

/// The [qmin, qmax] an integer type is quantized to under `opt` (ORT's get_qmin_qmax_for_qType).
///
///     quench::target_range(quench::dtype::int8, {/*symmetric*/ true});   // {-127, 127}
inline integer_range target_range(dtype t, const range_options& opt = {}) {
  if (!is_integral(t) || !is_quantized_type(t) || t == dtype::int32)
    throw_error(errc::unsupported_dtype, {},
                "expected int8, uint8, int16, uint16, int4 or uint4, found " + to_string(t));
  if (opt.reduce_range) {
    switch (t) {
      case dtype::int8: return {-64, 64};
      case dtype::uint8: return {0, 127};
      case dtype::int16: return {-16384, 16384};
      case dtype::uint16: return {0, 32767};
      case dtype::int4: return {-4, 3};
      default: return {0, 7};  // uint4
    }
  }
  integer_range r = full_range(t);
  const bool ort_narrow = opt.symmetric && t != dtype::int4 && t != dtype::uint4;
  if (opt.narrow_range.value_or(ort_narrow)) {
    if (is_signed(t))
      ++r.min;
    else
      --r.max;
  }
  return r;
}

/// Scale and zero point for the real range [rmin, rmax] (see the header comment for the exact
/// formulas). Throws not_finite for NaN/Inf bounds, invalid_argument for rmin > rmax.
///
///     auto sz = quench::choose_scale_zero_point(-1.f, 3.f, quench::dtype::uint8);
///     // sz.scale == 4/255, sz.zero_point == 64
inline scale_zero_point choose_scale_zero_point(float rmin, float rmax, dtype t, const range_options& opt = {}) {
  detail::check_range(rmin, rmax, "range");
  if (!(opt.min_real_range >= 0.f) || std::isinf(opt.min_real_range))
    throw_error(errc::invalid_argument, "min_real_range",
                "expected a finite value >= 0, found " + detail::float_repr(opt.min_real_range));
  rmin = std::fmin(rmin, 0.f);
  rmax = std::fmax(rmax, 0.f);
  if (opt.min_real_range > 0.f) rmax = std::fmax(rmax, rmin + opt.min_real_range);

  constexpr double tiny = static_cast<double>(std::numeric_limits<float>::min());
  scale_zero_point out;
  if (is_float8(t)) {
    if (opt.reduce_range || opt.narrow_range.value_or(false))
      throw_error(errc::invalid_argument, {}, "reduce_range and narrow_range apply to integer types, found " + to_string(t));
    const float absmax = std::fmax(std::fabs(rmin), std::fabs(rmax));
    const double s = static_cast<double>(absmax) / static_cast<double>(detail::float8_max(t));
    if (s < tiny) return out;
    out.scale = static_cast<float>(s);
    if (opt.power_of_two_scale) out.scale = detail::pow2_ceil(out.scale);
    return out;
  }

  const integer_range q = target_range(t, opt);
  if (opt.symmetric) {
    const float absmax = std::fmax(std::fabs(rmin), std::fabs(rmax));
    rmin = -absmax;
    rmax = absmax;
  }
  const float dr32 = rmax - rmin;  // float32 subtraction, as numpy does on float32 scalars
  if (std::isinf(dr32))
    throw_error(errc::invalid_value, "range",
                "expected rmax - rmin to be finite in float32, found [" + detail::float_repr(rmin) + ", " +
                    detail::float_repr(rmax) + "]");
  const double scale = static_cast<double>(dr32) / (static_cast<double>(q.max) - static_cast<double>(q.min));
  if (scale < tiny) return out;  // ORT: scale 1, zero point 0

  out.scale = static_cast<float>(scale);
  double used_scale = scale;
  if (opt.power_of_two_scale) {
    out.scale = detail::pow2_ceil(out.scale);
    used_scale = static_cast<double>(out.scale);
  }
  double zp;
  if (opt.symmetric)
    zp = detail::round_half_even_double((static_cast<double>(q.min) + static_cast<double>(q.max)) / 2.0);
  else
    zp = detail::round_half_even_double(static_cast<double>(q.min) - static_cast<double>(rmin) / used_scale);
  // ORT does not clamp; the zero point is provably within [qmin, qmax] (rmin <= 0 <= rmax and the
  // float32 difference rounds monotonically), so this only guards the cast.
  if (zp < q.min) zp = q.min;
  if (zp > q.max) zp = q.max;
  out.zero_point = static_cast<std::int32_t>(zp);
  return out;
}

/// Per-tensor qparams for the real range [rmin, rmax].
///
///     auto p = quench::choose_qparams(-0.9f, 1.2f, quench::dtype::int8, {/*symmetric*/ true});
inline qparams choose_qparams(float rmin, float rmax, dtype t, const range_options& opt = {}) {
  const scale_zero_point sz = choose_scale_zero_point(rmin, rmax, t, opt);
  return qparams::per_tensor(t, sz.scale, sz.zero_point);
}

/// Per-axis qparams from one range per channel (`rmin[c]`, `rmax[c]`), as ORT's per-channel
/// weight quantization: each channel independently.
///
///     auto p = quench::choose_qparams_per_axis(mins, maxs, quench::dtype::int8, /*axis*/ 0, {true});
inline qparams choose_qparams_per_axis(const std::vector<float>& rmin, const std::vector<float>& rmax, dtype t,
                                       std::int64_t axis, const range_options& opt = {}) {
  if (rmin.size() != rmax.size())
    throw_shape_mismatch("rmax", std::to_string(rmin.size()) + " values (one per rmin)", std::to_string(rmax.size()));
  std::vector<float> scales(rmin.size());
  std::vector<std::int32_t> zps(rmin.size());
  bool any_zp = false;
  for (std::size_t c = 0; c < rmin.size(); ++c) {
    detail::check_range(rmin[c], rmax[c], "channel " + std::to_string(c));
    const scale_zero_point sz = choose_scale_zero_point(rmin[c], rmax[c], t, opt);
    scales[c] = sz.scale;
    zps[c] = sz.zero_point;
    any_zp = any_zp || sz.zero_point != 0;
  }
  if (!any_zp) zps.clear();
  return qparams::per_axis(t, axis, std::move(scales), std::move(zps));
}

namespace detail {

inline void throw_not_finite_element(std::size_t i, float v) {
  throw_error(errc::not_finite, "element " + std::to_string(i),
              "expected finite data to choose a range from, found " + float_repr(v));
}

}  // namespace detail

/// Per-tensor qparams from the min and max of `x` (ORT's weight path: data.min(), data.max()).
/// Throws not_finite on NaN or Inf data.
///
///     auto p = quench::qparams_from_data(w.view<float>(), quench::dtype::int8, {/*symmetric*/ true});
inline qparams qparams_from_data(const_tensor_view<float> x, dtype t, const range_options& opt = {}) {
  float lo = 0.f, hi = 0.f;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) detail::throw_not_finite_element(i, v);
    if (i == 0 || v < lo) lo = v;
    if (i == 0 || v > hi) hi = v;
  }
  return choose_qparams(lo, hi, t, opt);
}

/// Per-axis qparams from the min and max of each index of `axis` in `x` (ORT per-channel weights;
/// Conv weights [M, C, kh, kw] use axis 0).
///
///     auto p = quench::qparams_from_data(w.view<float>(), quench::dtype::int8, 0, {true});
inline qparams qparams_from_data(const_tensor_view<float> x, dtype t, std::int64_t axis, const range_options& opt = {}) {
  const std::size_t a = normalize_axis(axis, x.rank(), "axis");
  const std::size_t outer = x.shape().outer(a), dim = static_cast<std::size_t>(x.shape()[a]), inner = x.shape().inner(a);
  std::vector<float> lo(dim, 0.f), hi(dim, 0.f);
  std::vector<bool> seen(dim, false);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < dim; ++c)
      for (std::size_t i = 0; i < inner; ++i) {
        const std::size_t k = (o * dim + c) * inner + i;
        const float v = x[k];
        if (!std::isfinite(v)) detail::throw_not_finite_element(k, v);
        if (!seen[c] || v < lo[c]) lo[c] = v;
        if (!seen[c] || v > hi[c]) hi[c] = v;
        seen[c] = true;
      }
  return choose_qparams_per_axis(lo, hi, t, axis, opt);
}

}  // namespace quench
