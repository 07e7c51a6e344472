#pragma once
// Dispatch of the fake-quant kernels to the chosen SIMD target, and the walks over a tensor's
// channel layout that call them. Every function here is noexcept and takes validated input.
//
// float runs on the SIMD kernels. float16 and bfloat16 are converted exactly to float in blocks
// of 256, computed as float and rounded back once (torch computes Half the same way: in float,
// then one conversion of the result). double is computed in double, on the scalar path only.

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "quench/core/config.hpp"
#include "quench/core/shape.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/qat/detail/fake_quant_avx2.hpp"
#include "quench/qat/detail/fake_quant_avx512.hpp"
#include "quench/qat/detail/fake_quant_ref.hpp"
#include "quench/qat/fake_quant_params.hpp"
#include "quench/quant/detail/plan.hpp"

namespace quench::detail {

template <class T>
inline constexpr bool is_fake_quant_float_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                             std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

// ---- dispatch of one run (float) ---------------------------------------------------------------

// A requested target the CPU lacks has already become the best one it has (effective_simd_target).
#if QUENCH_ENABLE_SIMD
#  define QUENCH_DETAIL_QAT_DISPATCH(target, avx512_call, avx2_call) \
     if ((target) == simd_target::avx512) return avx512_call;         \
     if ((target) == simd_target::avx2) return avx2_call
#else
#  define QUENCH_DETAIL_QAT_DISPATCH(target, avx512_call, avx2_call) (void)(target)
#endif

template <bool Vec>
inline void fake_quantize_run(const float* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi, float* y,
                              std::uint8_t* mask, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, fake_quantize_run_avx512<Vec>(x, n, ch, lo, hi, y, mask),
                             fake_quantize_run_avx2<Vec>(x, n, ch, lo, hi, y, mask));
  fake_quantize_run_ref<Vec>(x, n, ch, lo, hi, y, mask);
}

inline void ste_backward(const float* dy, const std::uint8_t* mask, std::size_t n, float* dx,
                         simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, ste_backward_avx512(dy, mask, n, dx), ste_backward_avx2(dy, mask, n, dx));
  ste_backward_ref(dy, mask, n, dx);
}

template <bool Vec>
inline void ste_backward_run(const float* dy, const float* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi,
                             float* dx, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, ste_backward_run_avx512<Vec>(dy, x, n, ch, lo, hi, dx),
                             ste_backward_run_avx2<Vec>(dy, x, n, ch, lo, hi, dx));
  ste_backward_run_ref<Vec>(dy, x, n, ch, lo, hi, dx);
}

inline void learnable_backward_run(const float* x, const float* dy, std::size_t n, fq_channel_ptrs ch,
                                   learnable_consts c, float* dx, double* acc_scale, double* acc_zp,
                                   simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, learnable_backward_run_avx512(x, dy, n, ch, c, dx, acc_scale, acc_zp),
                             learnable_backward_run_avx2(x, dy, n, ch, c, dx, acc_scale, acc_zp));
  learnable_backward_run_ref(x, dy, n, ch, c, dx, acc_scale, acc_zp);
}

inline void learnable_backward_vec(const float* x, const float* dy, std::size_t n, fq_channel_ptrs ch,
                                   learnable_consts c, float* dx, double* acc_scale, double* acc_zp,
                                   simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, learnable_backward_vec_avx512(x, dy, n, ch, c, dx, acc_scale, acc_zp),
                             learnable_backward_vec_avx2(x, dy, n, ch, c, dx, acc_scale, acc_zp));
  learnable_backward_vec_ref(x, dy, n, ch, c, dx, acc_scale, acc_zp);
}

template <bool Vec>
inline void float8_divide(const float* x, std::size_t n, const float* scale, float bound, float* r,
                          std::uint8_t* mask, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, float8_divide_avx512<Vec>(x, n, scale, bound, r, mask),
                             float8_divide_avx2<Vec>(x, n, scale, bound, r, mask));
  float8_divide_ref<Vec>(x, n, scale, bound, r, mask);
}

template <bool Vec>
inline void float8_multiply(const float* v, std::size_t n, const float* scale, float* y, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, float8_multiply_avx512<Vec>(v, n, scale, y),
                             float8_multiply_avx2<Vec>(v, n, scale, y));
  float8_multiply_ref<Vec>(v, n, scale, y);
}

inline bool minmax_run(const float* x, std::size_t n, float& mn, float& mx, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, minmax_run_avx512(x, n, mn, mx), minmax_run_avx2(x, n, mn, mx));
  return minmax_run_ref(x, n, mn, mx);
}

inline bool minmax_rows(const float* x, std::size_t n, float* mn, float* mx, simd_target target) noexcept {
  QUENCH_DETAIL_QAT_DISPATCH(target, minmax_rows_avx512(x, n, mn, mx), minmax_rows_avx2(x, n, mn, mx));
  return minmax_rows_ref(x, n, mn, mx);
}

#undef QUENCH_DETAIL_QAT_DISPATCH

// ---- per-call constants ----------------------------------------------------------------------

/// scale, 1.0f / scale and the zero point as float for every index of a layout, computed once per
/// call (torch computes 1.0f / scale per tensor, or per element for channels: the same value).
class fq_channels {
 public:
  fq_channels(const float* scale, std::size_t count) : data_(3 * count) {
    for (std::size_t i = 0; i < count; ++i) {
      data_[i] = scale[i];
      data_[count + i] = 1.0f / scale[i];
    }
    count_ = count;
  }
  /// The zero points: integers, or the float ones of the learnable ops (already rounded).
  float* zero_points() noexcept { return data_.data() + 2 * count_; }
  fq_channel_ptrs ptrs() const noexcept { return {data_.data(), data_.data() + count_, data_.data() + 2 * count_}; }

 private:
  std::vector<float> data_;
  std::size_t count_ = 0;
};

inline fq_channels make_channels(const fake_quant_params& p) {
  fq_channels ch(p.scales.data(), p.scales.size());
  float* z = ch.zero_points();
  for (std::size_t i = 0; i < p.scales.size(); ++i) z[i] = static_cast<float>(p.zero_point(i));
  return ch;
}

/// The run layout of a (validated) per-tensor or per-axis layout over `input`.
inline quant_plan make_fake_quant_plan(quant_granularity g, std::int64_t axis, const shape& input) noexcept {
  quant_plan plan;
  plan.granularity = g;
  plan.count = input.numel();
  if (g == quant_granularity::per_tensor) {
    plan.dim = plan.count;
    return plan;
  }
  const auto r = static_cast<std::int64_t>(input.rank());
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + r : axis);
  plan.outer = input.outer(a);
  plan.dim = static_cast<std::size_t>(input[a]);
  plan.inner = input.inner(a);
  return plan;
}

inline fq_channel_ptrs offset_channels_by(fq_channel_ptrs ch, std::size_t k) noexcept {
  return {ch.scale + k, ch.inv_scale + k, ch.zero_point + k};
}

// ---- element types -----------------------------------------------------------------------------

inline constexpr std::size_t fq_chunk = 256;

template <class T>
inline void to_float_block(const T* src, float* dst, std::size_t n, simd_target target) noexcept {
  convert(src, dst, n, target);
}
template <class T>
inline void from_float_block(const float* src, T* dst, std::size_t n, simd_target target) noexcept {
  convert(src, dst, n, target);
}

/// Forward over one run of any supported element type.
template <bool Vec, class T>
inline void fake_quantize_run_typed(const T* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi, T* y,
                                    std::uint8_t* mask, simd_target target) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    fake_quantize_run<Vec>(x, n, ch, lo, hi, y, mask, target);
  } else if constexpr (std::is_same_v<T, double>) {
    fake_quantize_run_ref<Vec>(x, n, ch, lo, hi, y, mask);
  } else {
    float buf[fq_chunk];
    for (std::size_t o = 0; o < n; o += fq_chunk) {
      const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
      to_float_block(x + o, buf, l, target);
      fake_quantize_run<Vec>(buf, l, Vec ? offset_channels_by(ch, o) : ch, lo, hi, buf, mask ? mask + o : nullptr,
                             target);
      from_float_block(buf, y + o, l, target);
    }
  }
}

template <bool Vec, class T>
inline void ste_backward_run_typed(const T* dy, const T* x, std::size_t n, fq_channel_ptrs ch, float lo, float hi,
                                   T* dx, simd_target target) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    ste_backward_run<Vec>(dy, x, n, ch, lo, hi, dx, target);
  } else if constexpr (std::is_same_v<T, double>) {
    ste_backward_run_ref<Vec>(dy, x, n, ch, lo, hi, dx);
  } else {
    float bx[fq_chunk], bd[fq_chunk];
    for (std::size_t o = 0; o < n; o += fq_chunk) {
      const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
      to_float_block(x + o, bx, l, target);
      to_float_block(dy + o, bd, l, target);
      ste_backward_run<Vec>(bd, bx, l, Vec ? offset_channels_by(ch, o) : ch, lo, hi, bd, target);
      from_float_block(bd, dx + o, l, target);
    }
  }
}

template <class T>
inline void ste_backward_typed(const T* dy, const std::uint8_t* mask, std::size_t n, T* dx,
                               simd_target target) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    ste_backward(dy, mask, n, dx, target);
  } else if constexpr (std::is_same_v<T, double>) {
    ste_backward_ref(dy, mask, n, dx);
  } else {
    float buf[fq_chunk];
    for (std::size_t o = 0; o < n; o += fq_chunk) {
      const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
      to_float_block(dy + o, buf, l, target);
      ste_backward(buf, mask + o, l, buf, target);
      from_float_block(buf, dx + o, l, target);
    }
  }
}

// ---- whole tensors ---------------------------------------------------------------------------

template <class T>
inline void fake_quantize_kernel(const T* x, const quant_plan& plan, fq_channel_ptrs ch, float lo, float hi, T* y,
                                 std::uint8_t* mask, simd_target target) noexcept {
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        fake_quantize_run_typed<false>(x + off, len, offset_channels_by(ch, k), lo, hi, y + off,
                                       mask ? mask + off : nullptr, target);
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        fake_quantize_run_typed<true>(x + off, len, offset_channels_by(ch, k), lo, hi, y + off,
                                      mask ? mask + off : nullptr, target);
      });
}

template <class T>
inline void ste_backward_kernel(const T* dy, const T* x, const quant_plan& plan, fq_channel_ptrs ch, float lo, float hi,
                                T* dx, simd_target target) noexcept {
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        ste_backward_run_typed<false>(dy + off, x + off, len, offset_channels_by(ch, k), lo, hi, dx + off, target);
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        ste_backward_run_typed<true>(dy + off, x + off, len, offset_channels_by(ch, k), lo, hi, dx + off, target);
      });
}

/// The learnable backward over a tensor: dx, and the scale / zero-point gradient of every index of
/// the layout summed in double into `sum_scale` / `sum_zp` (plan.dim entries per axis, 1 per
/// tensor; zeroed here). Runs of one channel are summed in their fixed 16-lane order and added to
/// the channel's total in increasing offset order; with the channel axis last, each channel's
/// terms are added one row after the other.
inline void learnable_backward_kernel(const float* x, const float* dy, const quant_plan& plan, fq_channel_ptrs ch,
                                      learnable_consts c, float* dx, double* sum_scale, double* sum_zp,
                                      simd_target target) noexcept {
  const std::size_t channels = plan.granularity == quant_granularity::per_tensor ? 1 : plan.dim;
  for (std::size_t k = 0; k < channels; ++k) sum_scale[k] = sum_zp[k] = 0.0;
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        double as[grad_lanes] = {}, az[grad_lanes] = {};
        learnable_backward_run(x + off, dy + off, len, offset_channels_by(ch, k), c, dx + off, as, az, target);
        sum_scale[k] += sum_lanes(as);
        sum_zp[k] += sum_lanes(az);
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        learnable_backward_vec(x + off, dy + off, len, offset_channels_by(ch, k), c, dx + off, sum_scale + k,
                               sum_zp + k, target);
      });
}

}  // namespace quench::detail
