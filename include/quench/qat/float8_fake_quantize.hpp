#pragma once
// Float8 fake quantization for FP8 QAT: the QuantizeLinear -> DequantizeLinear round trip of ONNX
// opset 19+ with a float8 type, so training sees exactly what the exported QDQ model computes:
//
//   r = x / scale                  a true float32 division, as QuantizeLinear (not x * (1/scale):
//                                  there is no torch 1.13 float8 op to follow, and the deployed
//                                  model divides)
//   y = float(float8(r)) * scale   round to nearest even; with `saturate` (the default)
//                                  out-of-range values and +-Inf become +-max, without it NaN
//                                  (Inf for e5m2); the FNUZ types turn Inf into NaN with saturate
//                                  (quench/numeric/float8.hpp has the whole table)
//   mask = float8(r) did not overflow: |r| at most the largest value that rounds to a finite
//                                  float8 (464 for e4m3fn, the float below 61440 for e5m2);
//                                  NaN and Inf give 0. The integer fake quant's rule (gradient
//                                  where rounding lands inside the range) for the float8 grid.
//
// The scale layout is any float8 qparams: per tensor, per axis or blocked (zero points 0). The
// conversions are the numeric layer's bulk converters, so every SIMD target gives the same bits;
// the backward is fake_quantize_backward with the mask.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/quant/detail/plan.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

namespace detail {

/// The largest float r whose float8 conversion without saturation is finite: the midpoint above the
/// max finite value if ties there round down (even mantissa), else the float just below it.
template <class Float8>
inline float float8_finite_bound() noexcept {
  using format = typename Float8::format;
  const float mx = float8_bits_to_float<format>(format::max_code);
  int e = 0;
  (void)std::frexp(mx, &e);  // mx = m * 2^e, m in [0.5, 1): the leading bit is 2^(e - 1)
  const float mid = mx + std::ldexp(1.f, e - 2 - format::man_bits);
  const Float8 q(mid, /*saturate=*/false);
  const float back = static_cast<float>(q);
  return std::isfinite(back) ? mid : std::nextafter(mid, 0.f);
}

template <class Float8, bool Vec>
inline void float8_fake_quantize_run(const float* x, std::size_t n, const float* scale, bool saturate, float bound,
                                     float* y, std::uint8_t* mask, simd_target target) noexcept {
  float r[fq_chunk];
  Float8 q[fq_chunk];
  for (std::size_t o = 0; o < n; o += fq_chunk) {
    const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
    const float* s = Vec ? scale + o : scale;
    float8_divide<Vec>(x + o, l, s, bound, r, mask ? mask + o : nullptr, target);
    convert(static_cast<const float*>(r), q, l, saturate, target);
    convert(static_cast<const Float8*>(q), r, l, target);
    float8_multiply<Vec>(r, l, s, y + o, target);
  }
}

template <class Float8>
inline void float8_fake_quantize_kernel(const float* x, const quant_plan& plan, bool saturate, float* y,
                                        std::uint8_t* mask, simd_target target) noexcept {
  const float bound = float8_finite_bound<Float8>();
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        float8_fake_quantize_run<Float8, false>(x + off, len, plan.scale + k, saturate, bound, y + off,
                                                mask ? mask + off : nullptr, target);
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        float8_fake_quantize_run<Float8, true>(x + off, len, plan.scale + k, saturate, bound, y + off,
                                               mask ? mask + off : nullptr, target);
      });
}

inline void float8_fake_quantize_checked(const float* x, const shape& s, const qparams& p, float* y,
                                         std::uint8_t* mask, simd_target target) {
  if (!is_float8(p.type))
    throw_error(errc::unsupported_dtype, {},
                "expected a float8 type (float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz), found " +
                    to_string(p.type) + "; integer types use quench::fake_quantize");
  validate(p, s);
  if (s.numel() == 0) return;
  const quant_plan plan = make_plan(p, s);
  const simd_target t = effective_simd_target(target);
  switch (p.type) {
    case dtype::float8e4m3fn: return float8_fake_quantize_kernel<float8e4m3fn>(x, plan, p.saturate, y, mask, t);
    case dtype::float8e4m3fnuz: return float8_fake_quantize_kernel<float8e4m3fnuz>(x, plan, p.saturate, y, mask, t);
    case dtype::float8e5m2: return float8_fake_quantize_kernel<float8e5m2>(x, plan, p.saturate, y, mask, t);
    default: return float8_fake_quantize_kernel<float8e5m2fnuz>(x, plan, p.saturate, y, mask, t);
  }
}

}  // namespace detail

/// Fake-quantizes `x` through a float8 type into `y` (same shape; may be `x`). Throws quench::error
/// if `p` is not a valid float8 qparams for x's shape.
///
///     const auto p = quench::qparams::per_tensor(quench::dtype::float8e4m3fn, amax / 448.f);
///     quench::fake_quantize_float8(x, p, y);
inline void fake_quantize_float8(const_tensor_view<float> x, const qparams& p, tensor_view<float> y,
                                 simd_target target = best_simd_target()) {
  detail::check_same_shape(x.shape(), y.shape(), "output");
  detail::float8_fake_quantize_checked(x.data(), x.shape(), p, y.data(), nullptr, target);
}

/// The same, and the mask for fake_quantize_backward (1 where the conversion did not overflow).
///
///     quench::fake_quantize_float8(x, p, y, mask);
///     quench::fake_quantize_backward(dy, mask, dx);
inline void fake_quantize_float8(const_tensor_view<float> x, const qparams& p, tensor_view<float> y,
                                 tensor_view<std::uint8_t> mask, simd_target target = best_simd_target()) {
  detail::check_same_shape(x.shape(), y.shape(), "output");
  detail::check_same_shape(x.shape(), mask.shape(), "mask");
  detail::float8_fake_quantize_checked(x.data(), x.shape(), p, y.data(), mask.data(), target);
}

}  // namespace quench
