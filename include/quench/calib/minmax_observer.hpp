#pragma once
// minmax_observer: running minimum and maximum of a tensor, per tensor or per channel along any
// axis, as ONNX Runtime's MinMaxCalibrater computes them (calibrate.py):
//
//   plain           min of the batch minima, max of the batch maxima. Exact, independent of the
//                   batch order, and merge() of two observers equals one observer that saw both
//                   data sets.
//   moving_average  per batch  min = min + c * (batch_min - min)  (same for max), c =
//                   averaging_constant, the first batch initialising; computed in float32 for
//                   float32/float16/bfloat16 batches exactly as ORT's float32 numpy arrays do
//                   (difference, product with float32(c), sum, each rounded to float32), in
//                   float64 for float64 batches. One observe() is one ORT collect_data call with a
//                   single batch (ORT first averages the batch ranges of one call with nanmean; a
//                   driver that wants that feeds the mean through observe_range()). The result
//                   depends on the batch order, so merge() refuses moving-average observers.
//   symmetric       the range is (-m, m), m = max(|min|, |max|); with moving_average it is applied
//                   to every batch before averaging, as ORT does.
//
// NaN and +-Inf are counted (nonfinite()), left out of the extremes, and a batch with no finite
// value is an error naming the tensor; the observer is then unchanged. Zeros enter as +0.
//
// Thread safety: const member functions may run concurrently; observe/merge need exclusive access.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/calib/detail/calib_kernels.hpp"
#include "quench/calib/detail/observe.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/calib/range.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"

namespace quench::calib {

/// Options of a minmax_observer; the defaults are ORT's MinMax defaults.
struct minmax_options {
  bool symmetric = false;            ///< ORT `symmetric`: range (-m, m)
  bool moving_average = false;       ///< ORT `moving_average`
  double averaging_constant = 0.01;  ///< ORT `averaging_constant`, in [0, 1]
  /// Per-channel along this axis (negative counts from the end); unset: one range per tensor.
  std::optional<std::int64_t> axis;
};

/// Everything a minmax_observer accumulates: what calibration_state serialises and merges.
struct minmax_state {
  /// Per channel (one entry per tensor); +inf / -inf where no finite value was seen yet. Empty
  /// before the first batch.
  std::vector<double> min, max;
  nonfinite_counts nonfinite;
};

/// Min-max observer (see the header comment).
///
///     quench::calib::minmax_observer obs("conv1_out");
///     obs.observe(batch.view<float>());                // every batch
///     quench::calib::range r = obs.range();           // {min, max}
///
///     quench::calib::minmax_options o;
///     o.axis = 1;                                      // per channel of NCHW
///     quench::calib::minmax_observer per_ch("conv1_out", o);
class minmax_observer {
 public:
  explicit minmax_observer(std::string name = {}, minmax_options options = {},
                           simd_target target = best_simd_target())
      : name_(std::move(name)), options_(std::move(options)), target_(target) {
    if (options_.moving_average && !(options_.averaging_constant >= 0.0 && options_.averaging_constant <= 1.0))
      throw_error(errc::invalid_argument, tensor_context(name_),
                  "expected an averaging constant in [0, 1], found " + std::to_string(options_.averaging_constant));
  }

  /// Restores an observer from its state (after validating it).
  static minmax_observer from_state(std::string name, minmax_options options, minmax_state state) {
    minmax_observer o(std::move(name), std::move(options));
    if (state.min.size() != state.max.size())
      throw_error(errc::invalid_value, tensor_context(o.name_), "min and max have different channel counts");
    if (!o.options_.axis && state.min.size() > 1)
      throw_error(errc::invalid_value, tensor_context(o.name_), "a per-tensor observer has one min and one max");
    for (std::size_t c = 0; c < state.min.size(); ++c) {
      const bool empty = state.min[c] == HUGE_VAL && state.max[c] == -HUGE_VAL;
      if (!empty && !(std::isfinite(state.min[c]) && std::isfinite(state.max[c]) && state.min[c] <= state.max[c]))
        throw_error(errc::invalid_value, detail::channel_context(o.name_, c, o.per_channel()),
                    "expected finite min <= max or no data");
    }
    o.state_ = std::move(state);
    return o;
  }

  const std::string& name() const noexcept { return name_; }
  const minmax_options& options() const noexcept { return options_; }
  const minmax_state& state() const noexcept { return state_; }
  bool per_channel() const noexcept { return options_.axis.has_value(); }
  /// Channels seen (1 for a per-tensor observer, 0 before the first batch).
  std::size_t channels() const noexcept { return state_.min.size(); }
  const nonfinite_counts& nonfinite() const noexcept { return state_.nonfinite; }

  /// Adds one batch: `data` holds s.numel() elements, row-major.
  template <class T>
  void observe(const T* data, const shape& s) {
    static_assert(detail::is_observable_v<T>,
                  "minmax_observer observes float, double, quench::float16 or quench::bfloat16 data");
    const std::size_t n = s.numel();
    if (n == 0) return;
    const auto layout = detail::batch_layout(options_.axis, s, state_.min.size(), name_);
    const std::size_t channels = layout.channels, outer = layout.outer, inner = layout.inner;
    std::vector<double> bmin(channels, HUGE_VAL), bmax(channels, -HUGE_VAL);
    nonfinite_counts nf;
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t c = 0; c < channels; ++c) scan(data + (o * channels + c) * inner, inner, bmin[c], bmax[c], nf);
    bool any = false;
    for (std::size_t c = 0; c < channels; ++c) any = any || bmin[c] <= bmax[c];
    if (!any) detail::throw_no_finite_value(name_, nf);
    commit(bmin, bmax, std::is_same_v<T, double>);
    state_.nonfinite += nf;
  }

  template <class T>
  void observe(const tensor_view<T>& v) {
    observe(static_cast<const std::remove_cv_t<T>*>(v.data()), v.shape());
  }

  /// Type-erased entry for the executor's tensors: float32, float64, float16 or bfloat16.
  void observe(const tensor& t) {
    detail::visit_float_tensor(t, name_, [this](const auto& v) { observe(v); });
  }

  /// One batch given by its (per-channel) extremes instead of its data, e.g. ORT's nanmean of the
  /// batch ranges of one collect_data call. `float64_arithmetic` selects the moving-average
  /// precision (false: float32, as for float32 models).
  void observe_range(const std::vector<double>& batch_min, const std::vector<double>& batch_max,
                     bool float64_arithmetic = false) {
    if (batch_min.size() != batch_max.size() || batch_min.empty() || (!per_channel() && batch_min.size() != 1) ||
        (!state_.min.empty() && batch_min.size() != state_.min.size()))
      throw_shape_mismatch(tensor_context(name_), std::to_string(state_.min.empty() ? 1 : state_.min.size()) +
                                                      " min and max values",
                           std::to_string(batch_min.size()) + " and " + std::to_string(batch_max.size()));
    for (std::size_t c = 0; c < batch_min.size(); ++c)
      if (!(std::isfinite(batch_min[c]) && std::isfinite(batch_max[c]) && batch_min[c] <= batch_max[c]))
        throw_error(errc::invalid_value, detail::channel_context(name_, c, per_channel()),
                    "expected a finite batch range with min <= max");
    commit(batch_min, batch_max, float64_arithmetic);
  }

  /// Adds what `other` observed. Exact for plain min-max (the result equals one observer that saw
  /// both data sets, in any order). Throws for moving-average observers, whose result depends on
  /// the batch order, and for observers with different options or channel counts.
  void merge(const minmax_observer& other) {
    if (options_.moving_average || other.options_.moving_average)
      throw_error(errc::invalid_argument, tensor_context(name_),
                  "moving-average min-max depends on the batch order and cannot be merged exactly; "
                  "use plain min-max (moving_average = false) for sharded calibration");
    if (options_.symmetric != other.options_.symmetric || options_.axis != other.options_.axis)
      throw_error(errc::invalid_argument, tensor_context(name_), "cannot merge observers with different options");
    if (other.state_.min.empty()) {
      state_.nonfinite += other.state_.nonfinite;
      return;
    }
    if (state_.min.empty()) {
      state_.min.assign(other.state_.min.size(), HUGE_VAL);
      state_.max.assign(other.state_.max.size(), -HUGE_VAL);
    }
    if (state_.min.size() != other.state_.min.size())
      throw_shape_mismatch(tensor_context(name_), std::to_string(state_.min.size()) + " channels",
                           std::to_string(other.state_.min.size()));
    for (std::size_t c = 0; c < state_.min.size(); ++c) {
      state_.min[c] = std::min(state_.min[c], other.state_.min[c]);
      state_.max[c] = std::max(state_.max[c], other.state_.max[c]);
    }
    state_.nonfinite += other.state_.nonfinite;
  }

  /// True if `channel` has seen a finite value.
  bool has_range(std::size_t channel = 0) const noexcept {
    return channel < state_.min.size() && state_.min[channel] <= state_.max[channel];
  }

  /// The calibrated range of `channel` (0 for a per-tensor observer). Throws errc::not_finite
  /// naming the tensor (and channel) if no finite value was observed.
  calib::range range(std::size_t channel = 0) const {
    if (!has_range(channel)) {
      if (channel >= state_.min.size() && !state_.min.empty())
        throw_error(errc::out_of_range, tensor_context(name_),
                    "channel " + std::to_string(channel) + " of " + std::to_string(state_.min.size()));
      throw_error(errc::not_finite, detail::channel_context(name_, channel, per_channel()),
                  "no finite value was observed");
    }
    const calib::range r{state_.min[channel], state_.max[channel]};
    return options_.symmetric && !options_.moving_average ? symmetric_range(r) : r;
  }

  /// The union of the channel ranges (the per-tensor range of a per-channel observer).
  calib::range overall_range() const {
    calib::range r{HUGE_VAL, -HUGE_VAL};
    for (std::size_t c = 0; c < state_.min.size(); ++c)
      if (has_range(c)) {
        const calib::range rc = range(c);
        r.min = std::min(r.min, rc.min);
        r.max = std::max(r.max, rc.max);
      }
    if (!(r.min <= r.max))
      throw_error(errc::not_finite, tensor_context(name_).empty() ? "tensor" : tensor_context(name_),
                  "no finite value was observed");
    return r;
  }

 private:
  template <class T>
  void scan(const T* x, std::size_t n, double& mn, double& mx, nonfinite_counts& nf) const {
    if constexpr (std::is_same_v<T, double>) {
      detail::scan_stats_double s;
      detail::scan_double(x, n, s);
      if (s.nonfinite) detail::classify_nonfinite(x, n, nf);
      mn = std::min(mn, s.min);
      mx = std::max(mx, s.max);
    } else {
      detail::for_float_blocks(x, n, [&](const float* p, std::size_t len) {
        detail::scan_stats s;
        detail::scan_float(p, len, s, target_);
        if (s.nonfinite) detail::classify_nonfinite(p, len, nf);
        mn = std::min(mn, static_cast<double>(s.min));
        mx = std::max(mx, static_cast<double>(s.max));
      });
    }
  }

  /// ORT's moving-average step in the batch's precision.
  static double average_step(double old, double batch, double c, bool float64) noexcept {
    if (float64) return old + c * (batch - old);
    const float o = static_cast<float>(old), b = static_cast<float>(batch);
    const float d = b - o;
    const float p = static_cast<float>(c) * d;
    return static_cast<double>(o + p);
  }

  void commit(std::vector<double> bmin, std::vector<double> bmax, bool float64) {
    if (state_.min.empty()) {
      state_.min.assign(bmin.size(), HUGE_VAL);
      state_.max.assign(bmax.size(), -HUGE_VAL);
    }
    for (std::size_t c = 0; c < bmin.size(); ++c) {
      if (!(bmin[c] <= bmax[c])) continue;  // this channel had no finite value in the batch
      if (!options_.moving_average) {
        state_.min[c] = std::min(state_.min[c], bmin[c]);
        state_.max[c] = std::max(state_.max[c], bmax[c]);
        continue;
      }
      if (options_.symmetric) {
        const double m = std::max(std::fabs(bmin[c]), std::fabs(bmax[c]));
        bmin[c] = -m;
        bmax[c] = m;
      }
      if (!has_range(c)) {
        state_.min[c] = bmin[c];
        state_.max[c] = bmax[c];
      } else {
        state_.min[c] = average_step(state_.min[c], bmin[c], options_.averaging_constant, float64);
        state_.max[c] = average_step(state_.max[c], bmax[c], options_.averaging_constant, float64);
      }
    }
  }

  std::string name_;
  minmax_options options_;
  simd_target target_;
  minmax_state state_;
};

}  // namespace quench::calib
