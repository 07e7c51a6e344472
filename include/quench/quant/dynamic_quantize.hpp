#pragma once
// dynamic_quantize_linear: ONNX DynamicQuantizeLinear-11, uint8 only, computed as ONNX Runtime
// does (core/util/qmath.h GetQuantizationParameter), all in float32:
//
//   rmin = min(min(x), 0), rmax = max(max(x), 0)
//   scale = rmax == rmin ? 1 : (rmax - rmin) / 255
//   zero_point = round_half_even(clamp(0 - rmin / scale, 0, 255))
//   y = QuantizeLinear(x, scale, zero_point)
//
// The ONNX function body gives the same numbers, except for an all-zero input where it divides
// 0 by 0; ORT's scale of 1 is used. NaN or Inf in x throws not_finite (the range is meaningless).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/detail/quantize_kernels.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"

namespace quench {

/// The scale and zero point DynamicQuantizeLinear chose.
struct dynamic_qparams {
  float scale = 1.f;
  std::uint8_t zero_point = 0;
};

/// DynamicQuantizeLinear's parameters for `x` without quantizing.
inline dynamic_qparams dynamic_quantize_params(const_tensor_view<float> x) {
  float lo = 0.f, hi = 0.f;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) detail::throw_not_finite_element(i, v);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  dynamic_qparams out;
  out.scale = hi == lo ? 1.f : (hi - lo) / 255.f;
  float zp = 0.f - lo / out.scale;
  zp = zp < 0.f ? 0.f : (zp > 255.f ? 255.f : zp);
  out.zero_point = static_cast<std::uint8_t>(detail::round_half_even(zp));
  return out;
}

/// Quantizes `x` into `y` (same shape) as DynamicQuantizeLinear and returns scale and zero point.
///
///     std::vector<std::uint8_t> q(x.size());
///     auto sz = quench::dynamic_quantize_linear(x, quench::tensor_view<std::uint8_t>(q.data(), x.shape()));
inline dynamic_qparams dynamic_quantize_linear(const_tensor_view<float> x, tensor_view<std::uint8_t> y) {
  if (y.shape() != x.shape()) throw_shape_mismatch("output", to_string(x.shape()) + " (the input's)", to_string(y.shape()));
  const dynamic_qparams dq = dynamic_quantize_params(x);
  quantize(x, qparams::per_tensor(dtype::uint8, dq.scale, dq.zero_point), static_cast<void*>(y.data()), y.size());
  return dq;
}

/// The three outputs of DynamicQuantizeLinear.
struct dynamic_quantized {
  tensor y;  ///< uint8, x's shape
  float scale = 1.f;
  std::uint8_t zero_point = 0;
};

/// DynamicQuantizeLinear on a float32 tensor.
///
///     auto r = quench::dynamic_quantize_linear(x);   // r.y, r.scale, r.zero_point
inline dynamic_quantized dynamic_quantize_linear(const tensor& x) {
  if (x.dtype() != dtype::float32)
    throw_error(errc::dtype_mismatch, tensor_context(x.name()),
                "expected element type float (DynamicQuantizeLinear-11), found " + to_string(x.dtype()));
  dynamic_quantized r;
  r.y = tensor(dtype::uint8, x.shape(), x.name());
  const dynamic_qparams dq = dynamic_quantize_linear(x.view<float>(), r.y.view<std::uint8_t>());
  r.scale = dq.scale;
  r.zero_point = dq.zero_point;
  return r;
}

}  // namespace quench
