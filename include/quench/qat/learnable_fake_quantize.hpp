#pragma once
// Fake quantization with a learnable scale and zero point (LSQ, Esser et al. 2020; TQT), bit for
// bit torch._fake_quantize_learnable_per_tensor_affine and
// torch._fake_quantize_learnable_per_channel_affine (PyTorch 1.13, CPU), forward and backward.
//
// The scale and zero point are float tensors (the trained parameters). torch rounds the zero point
// differently in the two passes, and quench does the same:
//
//   forward              zp = clamp(round_half_even(zero_point), quant_min, quant_max), then
//                        fake_quantize (quench/qat/fake_quantize.hpp) with it
//   backward, per tensor zp = trunc(clamp(zero_point + 0.5f, quant_min, quant_max)): round half up
//                        for positive values, toward zero for negative ones (-2.7 -> -2, not -3)
//   backward, per channel zp = clamp(round_half_even(zero_point), quant_min, quant_max)
//
// The backward then recomputes q = round_half_even(fma(x, 1/scale, zp)): the zero point added
// before rounding, in one fused operation, because torch's AVX2 kernel is compiled that way. So
// its dx mask can differ from the forward's at ties; the per-element rules are in
// detail/fake_quant_ref.hpp:
//
//   in range    dx = dy   dscale = dy * (xfq - x) / scale * grad_factor   dzero_point = 0
//   below/above dx = 0    dscale = dy * (qmin|qmax - zp) * grad_factor    dzero_point = -dy * scale * grad_factor
//
// The per-element scale and zero-point terms are torch's bit for bit; their sums (over all elements
// per tensor, over all but the channel axis per channel) are not, because torch adds them in
// float32 in the order of its vectorised reduction. quench adds them in double in a fixed order
// that every SIMD target keeps, so its sum is within about half a float32 ulp of the exact sum of
// the terms, and torch's is within the float32 summation error: tests/qat accept
// |quench - torch| <= (ceil(log2 n) + 1) * 2^-24 * sum |terms|, the pairwise-summation bound, and
// measure torch at most 0.25 * log2 n * 2^-24 * sum |terms| from the exact sum.
//
// +Inf and quotients of 2^63 quanta or more are above quant_max here; torch 1.13's int64
// conversion puts them below quant_min (dscale term dy * (qmin - zp) instead of dy * (qmax - zp),
// output quant_min instead of quant_max). Every other input agrees.
//
// quench requires what torch's backward checks (quant_min <= 0 <= quant_max, a zero point that is
// not NaN) in both passes, and also a finite scale > 0: _LearnableFakeQuantize clamps its scale to
// float32 eps before each call, and a caller driving these ops directly should do the same.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/qat/detail/fake_quant_kernels.hpp"
#include "quench/qat/fake_quant_params.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

/// The non-tensor arguments of the learnable fake-quant ops.
struct learnable_fake_quant_options {
  integer_range range{0, 255};  ///< [quant_min, quant_max]; must contain 0
  quant_granularity granularity = quant_granularity::per_tensor;  ///< or per_axis
  std::int64_t axis = 0;  ///< per_axis: the channel axis; negative counts from the back
  /// Factor on the scale and zero-point gradients (torch's grad_factor, LSQ's g); torch passes it
  /// to its kernel as float32. See lsq_grad_factor.
  float grad_factor = 1.f;
};

/// Where fake_quantize_learnable_backward writes: dx has x's shape, dscale and dzero_point the
/// scale's. They are overwritten, not accumulated.
struct learnable_fake_quant_grads {
  tensor_view<float> dx;
  tensor_view<float> dscale;
  tensor_view<float> dzero_point;
};

/// LSQ's gradient scale 1 / sqrt(numel * quant_max), computed as torch's _LearnableFakeQuantize
/// does with use_grad_scaling=True (in double, then float32).
///
///     opt.grad_factor = quench::lsq_grad_factor(x.size(), opt.range.max);
inline float lsq_grad_factor(std::size_t numel, std::int32_t quant_max) {
  if (quant_max <= 0 || numel == 0)
    throw_error(errc::invalid_argument, "grad_factor",
                "expected numel > 0 and quant_max > 0, found numel " + std::to_string(numel) + ", quant_max " +
                    std::to_string(quant_max));
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(numel) * static_cast<double>(quant_max)));
}

namespace detail {

/// Checks the options, scale and zero point against `input`; returns the channel count.
inline std::size_t check_learnable(const learnable_fake_quant_options& opt, const_tensor_view<float> scale,
                                   const_tensor_view<float> zero_point, const shape& input) {
  check_fake_quant_range(opt.range, {});
  if (opt.range.min > 0 || opt.range.max < 0)
    throw_error(errc::invalid_argument, "quant_min",
                "expected a range that contains 0 (torch's learnable fake quant requires quant_min <= 0 <= "
                "quant_max), found [" +
                    std::to_string(opt.range.min) + ", " + std::to_string(opt.range.max) + "]");
  if (opt.granularity == quant_granularity::blocked)
    throw_error(errc::invalid_argument, "granularity", "expected per_tensor or per_axis, found blocked");
  if (scale.shape() != zero_point.shape())
    throw_shape_mismatch("zero_point", to_string(scale.shape()) + " (the scale's)", to_string(zero_point.shape()));
  std::size_t want = 1;
  if (opt.granularity == quant_granularity::per_axis) {
    const std::size_t axis = normalize_axis(opt.axis, input.rank(), "axis");
    want = static_cast<std::size_t>(input[axis]);
    if (scale.rank() != 1 || scale.size() != want)
      throw_shape_mismatch("scale",
                           "shape [" + std::to_string(want) + "] (dim " + std::to_string(axis) + " of input " +
                               to_string(input) + ")",
                           to_string(scale.shape()));
  } else if (scale.size() != 1 || scale.rank() > 1) {
    throw_shape_mismatch("scale", "shape [] or [1] for per-tensor fake quantization", to_string(scale.shape()));
  }
  for (std::size_t i = 0; i < want; ++i) {
    check_scale(scale[i], i, {});
    if (std::isnan(zero_point[i]))
      throw_error(errc::invalid_value, "zero_point[" + std::to_string(i) + "]", "expected a number, found NaN");
  }
  return want;
}

/// clamp(v, lo, hi) with std::max/std::min's argument order, as torch writes it.
inline float clamp_float(float v, float lo, float hi) noexcept {
  const float a = v < lo ? lo : v;
  return hi < a ? hi : a;
}

/// The forward zero point (both layouts) and the per-channel backward one.
inline float rounded_zero_point(float zp, integer_range r) noexcept {
  return clamp_float(round_half_even(zp), static_cast<float>(r.min), static_cast<float>(r.max));
}

/// The per-tensor backward zero point: trunc(clamp(zp + 0.5f)).
inline float truncated_zero_point(float zp, integer_range r) noexcept {
  return std::trunc(clamp_float(zp + 0.5f, static_cast<float>(r.min), static_cast<float>(r.max)));
}

}  // namespace detail

/// The learnable forward: fake_quantize with the zero point rounded half to even and clamped.
/// `scale` and `zero_point` hold one value (per tensor) or one per index of opt.axis. Throws
/// quench::error on a bad range, scale, zero point or shape.
///
///     std::vector<float> s{0.05f}, z{3.f};
///     quench::fake_quantize_learnable(x, {s.data(), {1}}, {z.data(), {1}}, {{-128, 127}}, y);
inline void fake_quantize_learnable(const_tensor_view<float> x, const_tensor_view<float> scale,
                                    const_tensor_view<float> zero_point, const learnable_fake_quant_options& opt,
                                    tensor_view<float> y, simd_target target = best_simd_target()) {
  detail::check_same_shape(x.shape(), y.shape(), "output");
  const std::size_t n = detail::check_learnable(opt, scale, zero_point, x.shape());
  fake_quant_params p;
  p.range = opt.range;
  p.granularity = opt.granularity;
  p.axis = opt.axis;
  p.scales.assign(scale.data(), scale.data() + n);
  p.zero_points.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    p.zero_points[i] = static_cast<std::int32_t>(detail::rounded_zero_point(zero_point[i], opt.range));
  detail::fake_quantize_checked(x.data(), x.shape(), p, y.data(), nullptr, target);
}

/// The learnable backward: dx, dscale and dzero_point from dy (see the header comment for the
/// formulas). An empty x gives zero parameter gradients (torch returns its inputs instead).
///
///     std::vector<float> ds(1), dz(1);
///     quench::fake_quantize_learnable_backward(dy, x, {s.data(), {1}}, {z.data(), {1}}, opt,
///                                              {dx, {ds.data(), {1}}, {dz.data(), {1}}});
inline void fake_quantize_learnable_backward(const_tensor_view<float> dy, const_tensor_view<float> x,
                                             const_tensor_view<float> scale, const_tensor_view<float> zero_point,
                                             const learnable_fake_quant_options& opt,
                                             const learnable_fake_quant_grads& grads,
                                             simd_target target = best_simd_target()) {
  detail::check_same_shape(x.shape(), dy.shape(), "dy");
  detail::check_same_shape(x.shape(), grads.dx.shape(), "dx");
  detail::check_same_shape(scale.shape(), grads.dscale.shape(), "dscale");
  detail::check_same_shape(scale.shape(), grads.dzero_point.shape(), "dzero_point");
  const std::size_t n = detail::check_learnable(opt, scale, zero_point, x.shape());
  detail::fq_channels ch(scale.data(), n);
  float* z = ch.zero_points();
  for (std::size_t i = 0; i < n; ++i)
    z[i] = opt.granularity == quant_granularity::per_tensor ? detail::truncated_zero_point(zero_point[i], opt.range)
                                                            : detail::rounded_zero_point(zero_point[i], opt.range);
  std::vector<double> sums(2 * n, 0.0);
  if (!x.empty()) {
    const detail::learnable_consts c{static_cast<float>(opt.range.min), static_cast<float>(opt.range.max),
                                     opt.grad_factor};
    detail::learnable_backward_kernel(x.data(), dy.data(), detail::make_fake_quant_plan(opt.granularity, opt.axis, x.shape()),
                                      ch.ptrs(), c, grads.dx.data(), sums.data(), sums.data() + n,
                                      effective_simd_target(target));
  }
  for (std::size_t i = 0; i < n; ++i) {
    grads.dscale[i] = static_cast<float>(sums[i]);
    grads.dzero_point[i] = static_cast<float>(sums[n + i]);
  }
}

}  // namespace quench
