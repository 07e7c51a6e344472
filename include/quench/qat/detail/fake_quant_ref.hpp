#pragma once
// Scalar fake-quant kernels: the reference every SIMD kernel matches bit for bit, and the code that
// runs where no SIMD target is available. Always compiled.
//
// The arithmetic is PyTorch 1.13's CPU kernels (aten/src/ATen/native/quantized/cpu/kernels/
// QuantizedOpKernels.cpp), checked against the installed torch by tests/qat/make_qat_reference.py:
//
//   forward    inv = 1.0f / scale (once per scale); q = round_half_even(x * inv) + zero_point,
//              the zero point added after rounding; mask = quant_min <= q <= quant_max;
//              y = (clamp(q, quant_min, quant_max) - zero_point) * scale. All float32.
//   learnable  q = round_half_even(fma(x, inv, zero_point)): the zero point added before rounding,
//   backward   and in one rounding, because torch's AVX2 build contracts `zero_point + x * inv` into
//              an FMA (-mfma, GCC's default -ffp-contract=fast). Likewise `xfq - x` with
//              xfq = (q - zero_point) * scale is one fused multiply-subtract. Then, per element,
//                in range   dx = dy, dscale = dy * fms * inv * grad_factor, dzp = 0
//                q < qmin   dx = 0,  dscale = dy * (qmin - zp) * grad_factor, dzp = -dy * scale * grad_factor
//                q > qmax   dx = 0,  dscale = dy * (qmax - zp) * grad_factor, same dzp
//              with the products evaluated left to right, each rounded to float32.
//
// NaN inputs fall below quant_min (torch converts NaN to int64 as INT64_MIN on x86), so they give
// quant_min, mask 0. The one deliberate difference: torch 1.13's float kernels also convert
// quotients of 2^63 or more, and +Inf, to INT64_MIN and so output quant_min for them (and take the
// quant_min branch of the learnable gradients); quench saturates them to quant_max (and takes the
// quant_max branch), as QuantizeLinear, torch's double kernel and later torch's float kernel do.
// Their mask is 0 either way.
//
// Zero points arrive here as float (integers, exact), the range as float bounds (exact: they are
// inside +-2^24).

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/detail/quantize_kernels.hpp"

namespace quench::detail {

/// Returns `v` rounded to float, never fused with what follows: the empty asm hides the value from
/// the optimiser, so `a + v` cannot become an FMA with the product that made `v` (GCC fuses a * b + c
/// by default wherever FMA instructions are enabled, e.g. under -march=native). torch rounds every
/// operation of its Python-level arithmetic (the observers) separately.
inline float rounded_float(float v) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+m"(v));
#endif
  return v;
}

/// Per-index constants of a fake-quant op: the scale, 1 / scale, the zero point as float.
struct fq_channel_ptrs {
  const float* scale = nullptr;
  const float* inv_scale = nullptr;
  const float* zero_point = nullptr;
};

/// One element of the forward pass; `in_range` is torch's cached mask.
inline float fake_quantize_value(float x, float scale, float inv, float z, float lo, float hi,
                                 bool& in_range) noexcept {
  const float q = round_half_even(x * inv) + z;
  in_range = q >= lo && q <= hi;  // false for NaN
  float c = q;
  if (!(c >= lo)) c = lo;  // NaN -> quant_min, as torch
  if (c > hi) c = hi;
  return (c - z) * scale;
}

/// Forward over a run of `n` elements that share index 0 of `ch` (Vec = false) or use index i
/// for element i (Vec = true). `mask` may be null. `y` may be `x`.
template <bool Vec>
inline void fake_quantize_run_ref(const float* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi, float* y,
                                  std::uint8_t* mask) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    bool in = false;
    y[i] = fake_quantize_value(x[i], ch.scale[k], ch.inv_scale[k], ch.zero_point[k], lo, hi, in);
    if (mask) mask[i] = in ? 1 : 0;
  }
}

/// The same in double, for double tensors: torch multiplies by the float inverse scale promoted to
/// double and rounds in double. Scalar only.
template <bool Vec>
inline void fake_quantize_run_ref(const double* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi, double* y,
                                  std::uint8_t* mask) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    const double z = ch.zero_point[k];
    const double q = round_half_even_double(x[i] * static_cast<double>(ch.inv_scale[k])) + z;
    const bool in = q >= lo && q <= hi;
    double c = q;
    if (!(c >= lo)) c = lo;
    if (c > hi) c = hi;
    y[i] = (c - z) * static_cast<double>(ch.scale[k]);
    if (mask) mask[i] = in ? 1 : 0;
  }
}

/// STE backward from the cached mask: dx = dy * mask, a multiplication as torch's `dY * mask`, so a
/// blocked gradient is a signed zero (NaN for a NaN or infinite dy). Any non-zero byte counts as 1.
/// `dx` may be `dy`.
template <class T>
inline void ste_backward_ref(const T* dy, const std::uint8_t* mask, std::size_t n, T* dx) noexcept {
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * (mask[i] ? T(1) : T(0));
}

/// STE backward recomputing the mask from `x` (no cached mask).
template <bool Vec>
inline void ste_backward_run_ref(const float* dy, const float* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi,
                                 float* dx) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    const float q = round_half_even(x[i] * ch.inv_scale[k]) + ch.zero_point[k];
    dx[i] = dy[i] * ((q >= lo && q <= hi) ? 1.f : 0.f);
  }
}

template <bool Vec>
inline void ste_backward_run_ref(const double* dy, const double* x, std::size_t n, fq_channel_ptrs ch, float lo,
                                 float hi, double* dx) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    const double q = round_half_even_double(x[i] * static_cast<double>(ch.inv_scale[k])) + ch.zero_point[k];
    dx[i] = dy[i] * ((q >= lo && q <= hi) ? 1.0 : 0.0);
  }
}

// ---- learnable scale and zero point ----------------------------------------------------------

/// Lanes of the fixed summation order of the scale and zero-point gradients: element i of a run
/// goes to double accumulator i % 16, in order, and the 16 are added as a fixed tree. Every target
/// keeps exactly this order, so they agree bit for bit; double accumulation keeps the sums within
/// a few float32 ulps of exact (torch sums in float32, in an order of its own).
inline constexpr std::size_t grad_lanes = 16;

inline double sum_lanes(const double* a) noexcept {
  double s8[8], s4[4];
  for (int j = 0; j < 8; ++j) s8[j] = a[j] + a[j + 8];
  for (int j = 0; j < 4; ++j) s4[j] = s8[j] + s8[j + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// Per-element learnable gradients. `z` is the backward zero point, already rounded and clamped.
/// Returns dx; writes the scale and zero-point terms.
inline float learnable_grad_value(float x, float dy, float scale, float inv, float z, float lo, float hi, float small,
                                  float big, float grad_factor, float& dscale, float& dzp) noexcept {
  const float q = round_half_even(std::fma(x, inv, z));
  const bool in = q >= lo && q <= hi;
  if (in) {
    dscale = dy * std::fma(q - z, scale, -x) * inv * grad_factor;
    dzp = 0.f;
  } else {
    // NaN is not above quant_max: it takes the quant_min branch, as torch's INT64_MIN does.
    dscale = dy * (q > hi ? big : small) * grad_factor;
    dzp = -dy * scale * grad_factor;
  }
  return dy * (in ? 1.f : 0.f);
}

/// Per-run constants of the learnable backward.
struct learnable_consts {
  float lo, hi, grad_factor;
};

/// A run sharing index 0 of `ch`: dx for each element, and the scale/zero-point terms added to
/// `acc_scale[i % 16]` / `acc_zp[i % 16]` (i counted from `x`).
inline void learnable_backward_run_ref(const float* x, const float* dy, std::size_t n, fq_channel_ptrs ch,
                                       learnable_consts c, float* dx, double* acc_scale, double* acc_zp) noexcept {
  const float s = ch.scale[0], inv = ch.inv_scale[0], z = ch.zero_point[0];
  const float small = c.lo - z, big = c.hi - z;
  for (std::size_t i = 0; i < n; ++i) {
    float ts = 0.f, tz = 0.f;
    dx[i] = learnable_grad_value(x[i], dy[i], s, inv, z, c.lo, c.hi, small, big, c.grad_factor, ts, tz);
    acc_scale[i % grad_lanes] += static_cast<double>(ts);
    acc_zp[i % grad_lanes] += static_cast<double>(tz);
  }
}

/// A run whose element i uses channel i (the channel axis is the last one): the terms go to the
/// channels' own accumulators `acc_scale[i]`, `acc_zp[i]`.
inline void learnable_backward_vec_ref(const float* x, const float* dy, std::size_t n, fq_channel_ptrs ch,
                                       learnable_consts c, float* dx, double* acc_scale, double* acc_zp) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const float z = ch.zero_point[i];
    float ts = 0.f, tz = 0.f;
    dx[i] = learnable_grad_value(x[i], dy[i], ch.scale[i], ch.inv_scale[i], z, c.lo, c.hi, c.lo - z, c.hi - z,
                                 c.grad_factor, ts, tz);
    acc_scale[i] += static_cast<double>(ts);
    acc_zp[i] += static_cast<double>(tz);
  }
}

// ---- float8 fake quant -------------------------------------------------------------------------

/// r = x / scale (a true division, as QuantizeLinear) and mask = |r| <= bound (the conversion will
/// not overflow); `mask` may be null. Scale per element (Vec) or one.
template <bool Vec>
inline void float8_divide_ref(const float* x, std::size_t n, const float* scale, float bound, float* r,
                              std::uint8_t* mask) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    r[i] = x[i] / scale[Vec ? i : 0];
    if (mask) mask[i] = std::fabs(r[i]) <= bound ? 1 : 0;
  }
}

/// y = v * scale (DequantizeLinear's product).
template <bool Vec>
inline void float8_multiply_ref(const float* v, std::size_t n, const float* scale, float* y) noexcept {
  for (std::size_t i = 0; i < n; ++i) y[i] = v[i] * scale[Vec ? i : 0];
}

// ---- observers -----------------------------------------------------------------------------

/// Min and max of a finite run; returns false if it holds NaN or +-Inf. A zero extreme is returned
/// as +0 whatever its sign, so the result does not depend on the order of comparison.
inline bool minmax_run_ref(const float* x, std::size_t n, float& mn, float& mx) noexcept {
  bool finite = true;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    finite &= std::fabs(v) <= 3.40282347e38f;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  return finite;
}

/// Element-wise running min and max: mn[i] = min(mn[i], x[i]), mx[i] likewise.
inline bool minmax_rows_ref(const float* x, std::size_t n, float* mn, float* mx) noexcept {
  bool finite = true;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    finite &= std::fabs(v) <= 3.40282347e38f;
    mn[i] = v < mn[i] ? v : mn[i];
    mx[i] = v > mx[i] ? v : mx[i];
  }
  return finite;
}

/// +0 for either zero; other values unchanged.
inline float positive_zero(float v) noexcept { return v == 0.f ? 0.f : v; }

}  // namespace quench::detail
