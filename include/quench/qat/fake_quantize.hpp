#pragma once
// fake_quantize: the forward and straight-through-estimator backward of quantization-aware
// training, bit for bit torch.fake_quantize_per_tensor_affine and
// torch.fake_quantize_per_channel_affine (PyTorch 1.13, CPU):
//
//   inv = 1.0f / scale                       a float32 reciprocal, then a multiplication: torch
//                                            rounds x * inv, not x / scale (they differ in the
//                                            last bit for some x, which moves ties)
//   q   = round_half_even(x * inv) + zp      zero point added after rounding
//   y   = (clamp(q, quant_min, quant_max) - zp) * scale
//   mask = quant_min <= q <= quant_max       on the rounded, unclamped q: x / scale = qmax + 0.4
//                                            still passes gradient, qmax + 0.5 (rounds up) does not
//   dx  = dy * mask                          a multiplication, as torch's `dY * mask`
//
// NaN gives quant_min and mask 0, as in torch. +Inf, and quotients of 2^63 quanta or more,
// saturate to quant_max (mask 0), as torch's double kernel and QuantizeLinear do; torch 1.13's
// float and Half kernels return quant_min for them (their int64 conversion overflows; later torch
// keeps q in float and saturates, as here).
//
// Element types: float (SIMD), double (computed in double, as torch), float16 and bfloat16
// (computed in float and rounded once, as torch computes Half; torch 1.13 has no bfloat16 kernel).
// The output may be the input (in place); otherwise they must not overlap. The mask is one byte
// per element, 0 or 1, like torch's bool mask.

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/qat/detail/fake_quant_kernels.hpp"
#include "quench/qat/fake_quant_params.hpp"

namespace quench {

namespace detail {

template <class T>
struct type_identity {
  using type = T;
};
/// Keeps a parameter out of template argument deduction, so that a tensor_view<T> argument can
/// convert to the const_tensor_view<T> parameter once T is known from another argument.
template <class T>
using type_identity_t = typename type_identity<T>::type;

template <class T>
inline void check_fake_quant_type() {
  static_assert(!std::is_const_v<T>, "fake quant writes its output: pass a tensor_view<T>, not a tensor_view<const T>");
  static_assert(is_fake_quant_float_v<T>,
                "fake quant works on float, double, quench::float16 or quench::bfloat16 tensors");
}

inline void check_same_shape(const shape& want, const shape& got, const char* what) {
  if (want != got) throw_shape_mismatch(what, to_string(want) + " (the input's)", to_string(got));
}

template <class T>
inline void fake_quantize_checked(const T* x, const shape& s, const fake_quant_params& p, T* y, std::uint8_t* mask,
                                  simd_target target) {
  validate(p, s);
  if (s.numel() == 0) return;
  const fq_channels ch = make_channels(p);
  fake_quantize_kernel(x, make_fake_quant_plan(p.granularity, p.axis, s), ch.ptrs(), static_cast<float>(p.range.min),
                       static_cast<float>(p.range.max), y, mask, effective_simd_target(target));
}

}  // namespace detail

/// Fake-quantizes `x` into `y` (same shape; may be `x` itself). Throws quench::error if `p` does
/// not fit `x` (scale <= 0 or NaN, quant_min > quant_max, zero point outside the range, axis out
/// of range, wrong scale count) or the shapes differ. `target` forces an instruction set (tests,
/// benchmarks); every target gives the same bits.
///
///     const auto p = quench::fake_quant_params::per_tensor(0.05f, 0, {-128, 127});
///     quench::fake_quantize(x, p, y);   // x, y: tensor_view<float> of one shape
template <class T>
inline void fake_quantize(const_tensor_view<detail::type_identity_t<T>> x, const fake_quant_params& p,
                          tensor_view<T> y, simd_target target = best_simd_target()) {
  detail::check_fake_quant_type<T>();
  detail::check_same_shape(x.shape(), y.shape(), "output");
  detail::fake_quantize_checked(x.data(), x.shape(), p, y.data(), nullptr, target);
}

/// Fake-quantizes `x` into `y` and writes torch's cached mask (1 where the gradient passes) into
/// `mask`, one byte per element, for fake_quantize_backward.
///
///     std::vector<std::uint8_t> m(x.size());
///     quench::fake_quantize(x, p, y, quench::tensor_view<std::uint8_t>(m.data(), x.shape()));
template <class T>
inline void fake_quantize(const_tensor_view<detail::type_identity_t<T>> x, const fake_quant_params& p,
                          tensor_view<T> y, tensor_view<std::uint8_t> mask, simd_target target = best_simd_target()) {
  detail::check_fake_quant_type<T>();
  detail::check_same_shape(x.shape(), y.shape(), "output");
  detail::check_same_shape(x.shape(), mask.shape(), "mask");
  detail::fake_quantize_checked(x.data(), x.shape(), p, y.data(), mask.data(), target);
}

/// Straight-through backward from the cached mask: dx = dy * mask (`dx` may be `dy`).
///
///     quench::fake_quantize_backward(dy, mask, dx);
template <class T>
inline void fake_quantize_backward(const_tensor_view<detail::type_identity_t<T>> dy,
                                   const_tensor_view<std::uint8_t> mask, tensor_view<T> dx,
                                   simd_target target = best_simd_target()) {
  detail::check_fake_quant_type<T>();
  detail::check_same_shape(dy.shape(), mask.shape(), "mask");
  detail::check_same_shape(dy.shape(), dx.shape(), "dx");
  if (dy.empty()) return;
  detail::ste_backward_typed(dy.data(), mask.data(), dy.size(), dx.data(), effective_simd_target(target));
}

/// Straight-through backward recomputing the mask from the forward input `x` and `p`, for callers
/// that keep x rather than a mask: the same dx as the cached-mask form.
///
///     quench::fake_quantize_backward(dy, x, p, dx);
template <class T>
inline void fake_quantize_backward(const_tensor_view<detail::type_identity_t<T>> dy,
                                   const_tensor_view<detail::type_identity_t<T>> x, const fake_quant_params& p,
                                   tensor_view<T> dx, simd_target target = best_simd_target()) {
  detail::check_fake_quant_type<T>();
  detail::check_same_shape(x.shape(), dy.shape(), "dy");
  detail::check_same_shape(x.shape(), dx.shape(), "dx");
  validate(p, x.shape());
  if (x.empty()) return;
  const detail::fq_channels ch = detail::make_channels(p);
  detail::ste_backward_kernel(dy.data(), x.data(), detail::make_fake_quant_plan(p.granularity, p.axis, x.shape()),
                              ch.ptrs(), static_cast<float>(p.range.min), static_cast<float>(p.range.max), dx.data(),
                              effective_simd_target(target));
}

}  // namespace quench
