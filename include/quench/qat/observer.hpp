#pragma once
// Observers for quantization-aware training: torch.ao.quantization's MovingAverageMinMaxObserver
// and MovingAveragePerChannelMinMaxObserver (PyTorch 1.13), with the same arithmetic:
//
//   first batch   min_val = min(x), max_val = max(x)
//   later         min_val = min_val + c * (min(x) - min_val)      three float32 operations, each
//                 max_val likewise                                rounded (torch runs them as
//                                                                 separate tensor ops)
//
// and calculate_qparams as torch's _calculate_qparams, per tensor or per channel, in float32:
//
//   min_neg = min(min_val, 0), max_pos = max(max_val, 0)
//   symmetric  scale = max(-min_neg, max_pos) / ((quant_max - quant_min) / 2)     (127.5 for int8)
//              zero point 0, except uint8: 128, or (quant_min + quant_max) / 2 for a custom range
//   affine     scale = (max_pos - min_neg) / (quant_max - quant_min)
//              zero point = clamp(quant_min - round_half_even(min_neg / scale), quant_min, quant_max)
//   scale = max(scale, eps) in both; before any batch: scale 1, zero point 0 (one value, as torch)
//
// The range is torch's calculate_qmin_qmax: the dtype's (int8 [-128, 127], uint8 [0, 255],
// uint4 = torch.quint4x2 [0, 15]) or a custom [quant_min, quant_max], halved (floor) by
// reduce_range (int8 [-64, 63], uint8 [0, 127]). As torch, a uint4 symmetric zero point is 0.
//
// Differences from torch, all on input torch mishandles: NaN or +-Inf in a batch throws
// quench::error (torch's aminmax propagates NaN into the running range, and calculate_qparams then
// fails an assertion); a custom range must lie inside the dtype's; symmetric uint8 with
// reduce_range and no custom range is refused (torch pairs zero point 128 with [0, 127]). A zero
// extreme is kept as +0 (torch's sign depends on its reduction order; the qparams never do).
//
// Thread safety: an observer is a value; concurrent calls on one observer need a lock.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/qat/detail/fake_quant_kernels.hpp"
#include "quench/qat/fake_quant_params.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

/// The arguments of torch's moving-average min-max observers. Defaults are torch's.
///
///     quench::observer_options w;              // torch.ao.quantization default_weight_fake_quant
///     w.type = quench::dtype::int8;
///     w.symmetric = true;
///     w.range = quench::integer_range{-128, 127};
struct observer_options {
  /// int8 = torch.qint8, uint8 = torch.quint8, uint4 = torch.quint4x2: the default range and the
  /// symmetric zero point.
  dtype type = dtype::uint8;
  bool symmetric = false;     ///< per_tensor_symmetric / per_channel_symmetric (else *_affine)
  bool reduce_range = false;  ///< one bit less: the range halved, rounding down
  /// torch's quant_min/quant_max (has_customized_qrange); must contain 0.
  std::optional<integer_range> range;
  float averaging_constant = 0.01f;  ///< c of the moving average, in [0, 1]
  float eps = 1.1920929e-07f;        ///< smallest scale: torch.finfo(torch.float32).eps
  std::int64_t ch_axis = 0;          ///< the channel axis of the per-channel observer
};

namespace detail {

inline constexpr float float_inf = std::numeric_limits<float>::infinity();

/// Python's floor division by 2.
constexpr std::int32_t floor_half(std::int32_t v) noexcept { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

inline void check_observer_options(const observer_options& o) {
  if (o.type != dtype::int8 && o.type != dtype::uint8 && o.type != dtype::uint4)
    throw_error(errc::unsupported_dtype, "observer",
                "expected int8 (torch.qint8), uint8 (torch.quint8) or uint4 (torch.quint4x2), found " +
                    to_string(o.type));
  if (!(o.averaging_constant >= 0.f && o.averaging_constant <= 1.f))
    throw_error(errc::invalid_argument, "averaging_constant",
                "expected a value in [0, 1], found " + float_repr(o.averaging_constant));
  if (!(o.eps > 0.f) || !std::isfinite(o.eps))
    throw_error(errc::invalid_argument, "eps", "expected a finite value > 0, found " + float_repr(o.eps));
  if (o.range) {
    const integer_range r = *o.range, full = full_range(o.type);
    if (!(r.min <= 0 && 0 <= r.max && r.min < r.max))
      throw_error(errc::invalid_argument, "quant_min",
                  "expected quant_min <= 0 <= quant_max and quant_min < quant_max (torch's rule for a custom "
                  "range), found [" +
                      std::to_string(r.min) + ", " + std::to_string(r.max) + "]");
    if (r.min < full.min || r.max > full.max)
      throw_error(errc::out_of_range, "quant_min",
                  "expected a range inside " + to_string(o.type) + "'s [" + std::to_string(full.min) + ", " +
                      std::to_string(full.max) + "], found [" + std::to_string(r.min) + ", " +
                      std::to_string(r.max) + "]");
  } else if (o.symmetric && o.reduce_range && o.type == dtype::uint8) {
    throw_error(errc::invalid_argument, "reduce_range",
                "symmetric uint8 with reduce_range gives torch's zero point 128 outside the range [0, 127]; give "
                "the range explicitly");
  }
}

}  // namespace detail

/// [quant_min, quant_max] of an observer: torch's calculate_qmin_qmax.
///
///     quench::observer_quant_range({quench::dtype::uint8, false, /*reduce_range*/ true});   // {0, 127}
inline integer_range observer_quant_range(const observer_options& o) {
  detail::check_observer_options(o);
  if (o.range) {
    integer_range r = *o.range;
    if (o.reduce_range) r = {detail::floor_half(r.min), detail::floor_half(r.max)};
    return r;
  }
  switch (o.type) {
    case dtype::int8: return o.reduce_range ? integer_range{-64, 63} : integer_range{-128, 127};
    case dtype::uint8: return o.reduce_range ? integer_range{0, 127} : integer_range{0, 255};
    default: return {0, 15};  // uint4: torch has no reduced 4-bit range
  }
}

/// Scale and zero point of one channel's running [min_val, max_val] (finite, min_val <= max_val):
/// torch's _calculate_qparams.
///
///     auto sz = quench::observer_qparams(-1.f, 3.f, opt);   // opt: observer_options
inline scale_zero_point observer_qparams(float min_val, float max_val, const observer_options& o) {
  const integer_range r = observer_quant_range(o);
  const float min_neg = min_val < 0.f ? min_val : 0.f;
  const float max_pos = max_val > 0.f ? max_val : 0.f;
  scale_zero_point out;
  if (o.symmetric) {
    const float amax = -min_neg > max_pos ? -min_neg : max_pos;
    // Python divides by float(quant_max - quant_min) / 2, a double; torch converts it to float32.
    const float half_range = static_cast<float>(static_cast<double>(r.max - r.min) / 2.0);
    const float s = amax / half_range;
    out.scale = s > o.eps ? s : o.eps;
    out.zero_point = 0;
    if (o.type == dtype::uint8) out.zero_point = o.range ? (r.min + r.max) / 2 : 128;
  } else {
    const float s = (max_pos - min_neg) / static_cast<float>(r.max - r.min);
    out.scale = s > o.eps ? s : o.eps;
    const double z = static_cast<double>(r.min) - static_cast<double>(detail::round_half_even(min_neg / out.scale));
    out.zero_point = static_cast<std::int32_t>(z < r.min ? r.min : z > r.max ? r.max : z);
  }
  return out;
}

namespace detail {

/// Min and max of `n` elements of any supported type as float32 (torch converts the batch to
/// float32 first; conversion is monotone, so min of converted = converted min). Returns false on
/// NaN or +-Inf (after conversion).
template <class T>
inline bool minmax_any(const T* x, std::size_t n, float& mn, float& mx, simd_target target) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return minmax_run(x, n, mn, mx, target);
  } else {
    float buf[fq_chunk];
    bool finite = true;
    for (std::size_t o = 0; o < n; o += fq_chunk) {
      const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
      if constexpr (std::is_same_v<T, double>) {
        for (std::size_t i = 0; i < l; ++i) buf[i] = static_cast<float>(x[o + i]);
      } else {
        to_float_block(x + o, buf, l, target);
      }
      finite &= minmax_run(buf, l, mn, mx, target);
    }
    return finite;
  }
}

template <class T>
inline bool minmax_rows_any(const T* x, std::size_t n, float* mn, float* mx, simd_target target) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return minmax_rows(x, n, mn, mx, target);
  } else {
    float buf[fq_chunk];
    bool finite = true;
    for (std::size_t o = 0; o < n; o += fq_chunk) {
      const std::size_t l = n - o < fq_chunk ? n - o : fq_chunk;
      if constexpr (std::is_same_v<T, double>) {
        for (std::size_t i = 0; i < l; ++i) buf[i] = static_cast<float>(x[o + i]);
      } else {
        to_float_block(x + o, buf, l, target);
      }
      finite &= minmax_rows(buf, l, mn + o, mx + o, target);
    }
    return finite;
  }
}

[[noreturn]] inline void throw_not_finite_batch(const char* who) {
  throw_error(errc::not_finite, who,
              "expected finite values, found NaN or Inf in the batch (the observer's state is unchanged)");
}

/// min_val + c * (cur - min_val), each operation rounded to float32 as torch's tensor ops.
inline float moving_average(float running, float current, float c) noexcept {
  const float d = rounded_float(current - running);
  return running + rounded_float(c * d);
}

template <class T>
inline void check_observer_type() {
  static_assert(is_fake_quant_float_v<std::remove_const_t<T>>,
                "observers take float, double, quench::float16 or quench::bfloat16 tensors");
}

}  // namespace detail

/// torch.ao.quantization.MovingAverageMinMaxObserver: a per-tensor running min/max.
///
///     quench::moving_average_minmax_observer obs;           // quint8, affine, c = 0.01
///     obs.observe(activations);
///     quench::fake_quant_params p = obs.calculate_qparams();
class moving_average_minmax_observer {
 public:
  explicit moving_average_minmax_observer(const observer_options& opt = {})
      : options_(opt), range_(observer_quant_range(opt)) {}

  /// Folds a batch into the running range. Empty batches are ignored; NaN/Inf throw
  /// quench::error and leave the state unchanged.
  template <class T>
  void observe(tensor_view<T> x, simd_target target = best_simd_target()) {
    detail::check_observer_type<T>();
    if (x.empty()) return;
    float mn = detail::float_inf, mx = -detail::float_inf;
    if (!detail::minmax_any(x.data(), x.size(), mn, mx, effective_simd_target(target)))
      detail::throw_not_finite_batch("moving_average_minmax_observer");
    mn = detail::positive_zero(mn);
    mx = detail::positive_zero(mx);
    if (!observed_) {
      min_ = mn;
      max_ = mx;
      observed_ = true;
    } else {
      min_ = detail::moving_average(min_, mn, options_.averaging_constant);
      max_ = detail::moving_average(max_, mx, options_.averaging_constant);
    }
  }

  bool observed() const noexcept { return observed_; }
  float min_val() const noexcept { return min_; }  ///< +Inf before the first batch, as torch
  float max_val() const noexcept { return max_; }  ///< -Inf before the first batch
  integer_range quant_range() const noexcept { return range_; }
  const observer_options& options() const noexcept { return options_; }

  /// Scale and zero point of the running range (scale 1, zero point 0 before any batch).
  fake_quant_params calculate_qparams() const {
    if (!observed_) return fake_quant_params::per_tensor(1.f, 0, range_);
    const scale_zero_point sz = observer_qparams(min_, max_, options_);
    return fake_quant_params::per_tensor(sz.scale, sz.zero_point, range_);
  }

  /// Forgets every batch (torch's reset_min_max_vals).
  void reset() noexcept {
    observed_ = false;
    min_ = detail::float_inf;
    max_ = -detail::float_inf;
  }

 private:
  observer_options options_;
  integer_range range_;
  bool observed_ = false;
  float min_ = detail::float_inf;
  float max_ = -detail::float_inf;
};

/// torch.ao.quantization.MovingAveragePerChannelMinMaxObserver: a running min/max per index of
/// options().ch_axis.
///
///     quench::observer_options o;
///     o.type = quench::dtype::int8;
///     o.symmetric = true;
///     quench::moving_average_per_channel_minmax_observer obs(o);   // channels on axis 0
///     obs.observe(weights);
class moving_average_per_channel_minmax_observer {
 public:
  explicit moving_average_per_channel_minmax_observer(const observer_options& opt = {})
      : options_(opt), range_(observer_quant_range(opt)) {}

  /// Folds a batch into the running ranges. Every batch must have the first one's channel count.
  template <class T>
  void observe(tensor_view<T> x, simd_target target = best_simd_target()) {
    detail::check_observer_type<T>();
    const std::size_t axis = normalize_axis(options_.ch_axis, x.rank(), "ch_axis");
    const auto channels = static_cast<std::size_t>(x.shape()[axis]);
    if (!min_.empty() && channels != min_.size())
      throw_shape_mismatch("moving_average_per_channel_minmax_observer",
                           std::to_string(min_.size()) + " channels on axis " + std::to_string(axis) + " (the first batch's)",
                           std::to_string(channels) + " in shape " + to_string(x.shape()));
    if (x.empty()) return;
    std::vector<float> mn(channels, detail::float_inf), mx(channels, -detail::float_inf);
    const detail::quant_plan plan = detail::make_fake_quant_plan(quant_granularity::per_axis, options_.ch_axis, x.shape());
    const simd_target t = effective_simd_target(target);
    bool finite = true;
    detail::for_each_run(
        plan,
        [&](std::size_t off, std::size_t len, std::size_t k) {
          finite &= detail::minmax_any(x.data() + off, len, mn[k], mx[k], t);
        },
        [&](std::size_t off, std::size_t len, std::size_t k) {
          finite &= detail::minmax_rows_any(x.data() + off, len, mn.data() + k, mx.data() + k, t);
        });
    if (!finite) detail::throw_not_finite_batch("moving_average_per_channel_minmax_observer");
    for (std::size_t c = 0; c < channels; ++c) {
      mn[c] = detail::positive_zero(mn[c]);
      mx[c] = detail::positive_zero(mx[c]);
    }
    if (min_.empty()) {
      min_ = std::move(mn);
      max_ = std::move(mx);
      return;
    }
    for (std::size_t c = 0; c < channels; ++c) {
      min_[c] = detail::moving_average(min_[c], mn[c], options_.averaging_constant);
      max_[c] = detail::moving_average(max_[c], mx[c], options_.averaging_constant);
    }
  }

  bool observed() const noexcept { return !min_.empty(); }
  const std::vector<float>& min_vals() const noexcept { return min_; }  ///< empty before the first batch
  const std::vector<float>& max_vals() const noexcept { return max_; }
  integer_range quant_range() const noexcept { return range_; }
  const observer_options& options() const noexcept { return options_; }

  /// Per-channel scales and zero points on options().ch_axis. Before any batch torch returns one
  /// scale 1 and zero point 0, and so does this (which then fits only a one-channel tensor).
  fake_quant_params calculate_qparams() const {
    if (min_.empty()) return fake_quant_params::per_channel(options_.ch_axis, {1.f}, {0}, range_);
    std::vector<float> s(min_.size());
    std::vector<std::int32_t> z(min_.size());
    for (std::size_t c = 0; c < min_.size(); ++c) {
      const scale_zero_point sz = observer_qparams(min_[c], max_[c], options_);
      s[c] = sz.scale;
      z[c] = sz.zero_point;
    }
    return fake_quant_params::per_channel(options_.ch_axis, std::move(s), std::move(z), range_);
  }

  void reset() noexcept {
    min_.clear();
    max_.clear();
  }

 private:
  observer_options options_;
  integer_range range_;
  std::vector<float> min_, max_;
};

}  // namespace quench
