#pragma once
// weight_qparams: scales and zero points for a float weight, per tensor, per channel or blocked,
// by one of two range methods:
//   minmax  the weight's own min and max (ONNX Runtime's weight path, exact to it);
//   mse     per channel (or block), the clipped range r * [min, max] with the smallest squared
//           rounding-plus-clipping error, r searched over a fixed grid from 1 down to 0.3. A few
//           outlier weights otherwise set the step for the whole channel (AIMET's and NNCF's
//           per-channel MSE weight ranges do the same search).
//
//     auto p = quench::pipeline::weight_qparams(w, {quench::dtype::int8, /*axis*/ 0});

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/qparams.hpp"

namespace quench::pipeline {

enum class weight_method { minmax, mse };

inline weight_method parse_weight_method(const std::string& s) {
  if (s == "minmax" || s == "max") return weight_method::minmax;
  if (s == "mse") return weight_method::mse;
  throw_error(errc::invalid_argument, "weight range method", "expected minmax or mse, found '" + s + "'");
}

struct weight_qparams_options {
  dtype type = dtype::int8;
  std::int64_t axis = -1;        ///< channel axis; -1 per tensor
  std::int64_t block_size = 0;   ///< > 0: blocks of this many elements along `axis` (opset 21)
  bool symmetric = true;
  bool reduce_range = false;  ///< one bit less (ORT reduce_range: int8 on [-64, 64])
  weight_method method = weight_method::minmax;
};

namespace detail {

/// Squared error of quantizing `x` (n values, stride apart) with [lo, hi] mapped to `t`.
inline double quantization_sse(const float* x, std::size_t n, std::size_t stride, float lo, float hi, dtype t,
                               const range_options& ro) {
  const scale_zero_point sz = choose_scale_zero_point(lo, hi, t, ro);
  double sse = 0;
  if (is_float8(t)) {
    // float8 steps depend on the magnitude; clipping to +-max is what the range changes.
    const double m = static_cast<double>(quench::detail::float8_max(t)) * sz.scale;
    for (std::size_t i = 0; i < n; ++i) {
      const double v = x[i * stride], c = std::min(std::max(v, -m), m);
      sse += (v - c) * (v - c);
    }
    return sse;
  }
  // The integers are clamped to the type, or with reduce_range to the reduced range
  // (insert_weight_qdq clamps there, so the values a clipped range leaves outside saturate at it).
  const integer_range q = ro.reduce_range ? target_range(t, ro) : full_range(t);
  const double inv = 1.0 / static_cast<double>(sz.scale);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i * stride];
    double r = std::nearbyint(v * inv) + sz.zero_point;
    r = std::min(std::max(r, static_cast<double>(q.min)), static_cast<double>(q.max));
    const double d = (r - sz.zero_point) * sz.scale - v;
    sse += d * d;
  }
  return sse;
}

/// [lo, hi] of one channel (n values, stride apart), clipped by the MSE search when asked.
inline void channel_range(const float* x, std::size_t n, std::size_t stride, const weight_qparams_options& o,
                          const range_options& ro, float& lo, float& hi) {
  lo = 0.f;
  hi = 0.f;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i * stride];
    if (!std::isfinite(v)) throw_error(errc::not_finite, "element " + std::to_string(i), "weights must be finite");
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (o.method != weight_method::mse || hi - lo == 0.f) return;
  double best = quantization_sse(x, n, stride, lo, hi, o.type, ro);
  float best_lo = lo, best_hi = hi;
  for (int k = 1; k <= 70; ++k) {
    const float r = 1.f - 0.01f * static_cast<float>(k);
    const double e = quantization_sse(x, n, stride, lo * r, hi * r, o.type, ro);
    if (e < best) {
      best = e;
      best_lo = lo * r;
      best_hi = hi * r;
    }
  }
  lo = best_lo;
  hi = best_hi;
}

}  // namespace detail

/// Quantization parameters for the float32 weight `w` (see the header comment). Throws
/// not_finite naming the element for NaN/Inf weights.
inline qparams weight_qparams(const tensor& w, const weight_qparams_options& o) {
  if (w.dtype() != dtype::float32) throw_error(errc::unsupported_dtype, tensor_context(w.name()), "expected a float32 weight, found " + to_string(w.dtype()));
  range_options ro;
  ro.symmetric = o.symmetric;
  ro.reduce_range = o.reduce_range;
  const float* x = w.view<float>().data();
  const std::size_t total = w.size();
  try {
    if (o.axis < 0) {
      float lo, hi;
      detail::channel_range(x, total, 1, o, ro, lo, hi);
      return choose_qparams(lo, hi, o.type, ro);
    }
    const std::size_t a = normalize_axis(o.axis, w.rank(), "axis");
    const std::size_t outer = w.shape().outer(a), dim = static_cast<std::size_t>(w.shape()[a]), inner = w.shape().inner(a);
    if (o.block_size <= 0) {
      // A channel is `outer` runs of `inner` elements: gather it once so the search reads it contiguously.
      std::vector<float> lo(dim), hi(dim), buf(outer * inner);
      for (std::size_t c = 0; c < dim; ++c) {
        for (std::size_t p = 0; p < outer; ++p)
          std::copy_n(x + (p * dim + c) * inner, inner, buf.data() + p * inner);
        detail::channel_range(buf.data(), buf.size(), 1, o, ro, lo[c], hi[c]);
      }
      return choose_qparams_per_axis(lo, hi, o.type, o.axis, ro);
    }
    // Blocked: blocks of block_size along axis a; the scale tensor has the weight's shape with
    // dim[a] = ceil(D / block_size).
    const std::size_t bs = static_cast<std::size_t>(o.block_size), blocks = (dim + bs - 1) / bs;
    std::vector<std::int64_t> ps(w.shape().dims().begin(), w.shape().dims().end());
    ps[a] = static_cast<std::int64_t>(blocks);
    std::vector<float> scales(outer * blocks * inner);
    std::vector<std::int32_t> zps(scales.size());
    bool any_zp = false;
    for (std::size_t p = 0; p < outer; ++p)
      for (std::size_t b = 0; b < blocks; ++b)
        for (std::size_t i = 0; i < inner; ++i) {
          const std::size_t first = b * bs, count = std::min(bs, dim - first);
          float lo, hi;
          detail::channel_range(x + (p * dim + first) * inner + i, count, inner, o, ro, lo, hi);
          const scale_zero_point sz = choose_scale_zero_point(lo, hi, o.type, ro);
          const std::size_t k = (p * blocks + b) * inner + i;
          scales[k] = sz.scale;
          zps[k] = sz.zero_point;
          any_zp = any_zp || sz.zero_point != 0;
        }
    if (!any_zp) zps.clear();
    return qparams::blocked(o.type, o.axis, o.block_size, shape(std::move(ps)), std::move(scales), std::move(zps));
  } catch (const error& e) {
    throw error(e.code(), tensor_context(w.name()), e.what());
  }
}

}  // namespace quench::pipeline
