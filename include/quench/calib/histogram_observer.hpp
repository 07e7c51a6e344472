#pragma once
// histogram_observer: quench's histogram of a tensor, on a power-of-two grid so that it is
// independent of the batch order and of how the data is split, and two of them merge exactly.
//
// The grid. num_bins = B (a power of two, default 2048) bins cover
//   signed    [-2^e, 2^e)  bin k = [(k - B/2) w, (k - B/2 + 1) w),  w = 2^(e+1) / B
//   absolute  [0, 2^e)     bin k = [k w, (k + 1) w) of |x|,         w = 2^e / B
// where e is the smallest integer with max|x| < 2^e over everything observed (and e >= -64). A
// value's bin is floor(x / w) (+ B/2 when signed); w is a power of two, so the division is an
// exact multiplication and every SIMD target computes the same bin (tests force each one).
//
// Growth. When a batch holds a value >= 2^e, e rises to the new exponent e' and bins merge in
// groups of 2^(e'-e): new bin = B/2 + floor((k - B/2) / 2^(e'-e)) (signed) or k >> (e'-e)
// (absolute). Because the grids are nested (every bin of grid e lies inside one bin of grid e'),
// the counts after growing equal the counts of binning the same values on grid e' directly. So
// the histogram of a data set is a function of the data alone: e depends only on max|x|, the
// counts only on e and the values. Shards observed separately and merged (the smaller exponent
// grown to the larger, counts added) give bit-identical counts, extremes, and therefore ranges
// to one pass over all data, in any order (tests/calib/histogram_observer_test.cpp checks n =
// 1, 2, 3, 7 shards of unequal size).
//
// Why not ONNX Runtime's scheme (constant bin width fixed by the first batch, bins added at the
// sides): it depends on which batch came first and on batch sizes, and two such histograms with
// different widths cannot be added without redistributing counts. The price of the power-of-two
// grid: the data's max|x| falls in [2^(e-1), 2^e), so between B/2 and B bins span it (ORT: all
// B). ort_histogram_observer reproduces ORT's collection exactly for users who need ORT's numbers.
//
// NaN and +-Inf are counted (nonfinite()), never binned; a batch without a finite value is an
// error naming the tensor and leaves the observer unchanged. Per-channel histograms (options.axis)
// keep one grid per channel. Counts are int64.
//
// Speed: a batch is processed in L1-sized blocks; one SIMD pass per block finds its extremes and
// every element's bin on the current grid (a second pass only when the block grows the grid),
// then a scalar loop counts the bins into four uint32 copies of the histogram, added into the
// int64 counts at the end of the batch (bench/calib_bench.cpp).
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
#include "quench/calib/histogram.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"

namespace quench::calib {

/// Options of a histogram_observer.
struct histogram_options {
  std::size_t num_bins = 2048;  ///< a power of two in [4, 2^24]
  bool absolute = false;        ///< histogram of |x| over [0, 2^e) (for TensorRT-style methods)
  /// Per-channel histograms along this axis (negative counts from the end); unset: per tensor.
  std::optional<std::int64_t> axis;
};

/// The grid and counts of one channel.
struct histogram_channel {
  int exponent = -64;                 ///< e: the grid spans 2^e (see the header comment)
  std::vector<std::int64_t> counts;   ///< num_bins
  double min = HUGE_VAL;              ///< finite extremes; +inf / -inf: no finite value yet
  double max = -HUGE_VAL;
};

/// Everything a histogram_observer accumulates (what calibration_state serialises and merges).
struct histogram_state {
  std::vector<histogram_channel> channels;  ///< empty before the first batch; 1 per tensor
  nonfinite_counts nonfinite;
};

/// Order-independent, exactly mergeable histogram observer (see the header comment).
///
///     quench::calib::histogram_observer obs("conv1_out");         // signed, 2048 bins
///     for (auto& b : batches) obs.observe(b.view<float>());
///     quench::calib::range r = quench::calib::ort_entropy_range(obs.histogram());
///
///     quench::calib::histogram_observer shard2("conv1_out");      // on another machine
///     obs.merge(shard2);                                          // exact
class histogram_observer {
 public:
  /// The smallest grid exponent: values below 2^-64 in magnitude share the finest grid.
  static constexpr int min_exponent = -64;
  /// The largest: far beyond float64 (2^1024), so any finite value fits.
  static constexpr int max_exponent = 1100;

  explicit histogram_observer(std::string name = {}, histogram_options options = {},
                              simd_target target = best_simd_target())
      : name_(std::move(name)), options_(std::move(options)), target_(target) {
    const std::size_t b = options_.num_bins;
    if (b < 4 || b > (std::size_t{1} << 24) || (b & (b - 1)) != 0)
      throw_error(errc::invalid_argument, tensor_context(name_),
                  "expected num_bins a power of two in [4, 2^24], found " + std::to_string(b));
    log2_bins_ = 0;
    while ((std::size_t{1} << log2_bins_) < b) ++log2_bins_;
  }

  /// Restores an observer from its state (after validating it).
  static histogram_observer from_state(std::string name, histogram_options options, histogram_state state) {
    histogram_observer o(std::move(name), std::move(options));
    if (!o.per_channel() && state.channels.size() > 1)
      throw_error(errc::invalid_value, tensor_context(o.name_), "a per-tensor histogram has one channel");
    for (std::size_t c = 0; c < state.channels.size(); ++c) {
      const auto& ch = state.channels[c];
      const std::string ctx = detail::channel_context(o.name_, c, o.per_channel());
      if (ch.counts.size() != o.options_.num_bins)
        throw_error(errc::invalid_value, ctx,
                    "expected " + std::to_string(o.options_.num_bins) + " counts, found " +
                        std::to_string(ch.counts.size()));
      if (ch.exponent < min_exponent || ch.exponent > max_exponent)
        throw_error(errc::invalid_value, ctx, "grid exponent " + std::to_string(ch.exponent) + " out of range");
      bool any = false;
      for (auto k : ch.counts) {
        if (k < 0) throw_error(errc::invalid_value, ctx, "negative bin count");
        any = any || k != 0;
      }
      const bool empty = ch.min == HUGE_VAL && ch.max == -HUGE_VAL;
      if (empty ? any
                : !(std::isfinite(ch.min) && std::isfinite(ch.max) && ch.min <= ch.max &&
                    std::max(std::fabs(ch.min), std::fabs(ch.max)) < std::ldexp(1.0, ch.exponent)))
        throw_error(errc::invalid_value, ctx, "extremes do not match the counts and grid");
    }
    o.state_ = std::move(state);
    return o;
  }

  const std::string& name() const noexcept { return name_; }
  const histogram_options& options() const noexcept { return options_; }
  const histogram_state& state() const noexcept { return state_; }
  bool per_channel() const noexcept { return options_.axis.has_value(); }
  std::size_t channels() const noexcept { return state_.channels.size(); }
  const nonfinite_counts& nonfinite() const noexcept { return state_.nonfinite; }

  /// Adds one batch: `data` holds s.numel() elements, row-major.
  template <class T>
  void observe(const T* data, const shape& s) {
    static_assert(detail::is_observable_v<T>,
                  "histogram_observer observes float, double, quench::float16 or quench::bfloat16 data");
    const std::size_t n = s.numel();
    if (n == 0) return;
    const auto layout = detail::batch_layout(options_.axis, s, state_.channels.size(), name_);
    const std::size_t channels = layout.channels, outer = layout.outer, inner = layout.inner;
    const bool first = state_.channels.empty();
    if (first) {
      histogram_channel fresh;
      fresh.counts.assign(options_.num_bins, 0);
      state_.channels.assign(channels, fresh);
    }
    const nonfinite_counts saved = state_.nonfinite;
    // Large batches go through the SIMD kernels and the uint32 copies; small ones bin straight
    // into the int64 counts (the same bins: both use the grid's exact definition).
    const bool buffered = std::is_same_v<T, double> ? false : n / channels >= 16 * options_.num_bins;
    bool any_finite = false;
    for (std::size_t c = 0; c < channels; ++c) {
      auto& ch = state_.channels[c];
      for (std::size_t o = 0; o < outer; ++o)
        any_finite |= add_run(ch, data + (o * channels + c) * inner, inner, buffered);
      if (buffered) flush(ch);
    }
    if (!any_finite) {
      const nonfinite_counts batch{state_.nonfinite.nan - saved.nan, state_.nonfinite.pos_inf - saved.pos_inf,
                                   state_.nonfinite.neg_inf - saved.neg_inf};
      state_.nonfinite = saved;  // nothing else changed: no value was binned
      if (first) state_.channels.clear();
      detail::throw_no_finite_value(name_, batch);
    }
  }

  template <class T>
  void observe(const tensor_view<T>& v) {
    observe(static_cast<const std::remove_cv_t<T>*>(v.data()), v.shape());
  }

  /// Type-erased entry for the executor's tensors: float32, float64, float16 or bfloat16.
  void observe(const tensor& t) {
    detail::visit_float_tensor(t, name_, [this](const auto& v) { observe(v); });
  }

  /// Adds what `other` observed: each channel's grid grows to the larger exponent, counts add.
  /// Exact, commutative and associative. Throws if the options or channel counts differ.
  void merge(const histogram_observer& other) {
    if (options_.num_bins != other.options_.num_bins || options_.absolute != other.options_.absolute ||
        options_.axis != other.options_.axis)
      throw_error(errc::invalid_argument, tensor_context(name_),
                  "cannot merge histograms with different options (num_bins, absolute, axis)");
    if (!other.state_.channels.empty()) {
      if (state_.channels.empty()) {
        state_.channels = other.state_.channels;
      } else {
        if (state_.channels.size() != other.state_.channels.size())
          throw_shape_mismatch(tensor_context(name_), std::to_string(state_.channels.size()) + " channels",
                               std::to_string(other.state_.channels.size()));
        for (std::size_t c = 0; c < state_.channels.size(); ++c) {
          auto& a = state_.channels[c];
          histogram_channel b = other.state_.channels[c];
          const int e = std::max(a.exponent, b.exponent);
          regrid(a, e);
          regrid(b, e);
          for (std::size_t k = 0; k < a.counts.size(); ++k) a.counts[k] += b.counts[k];
          a.min = std::min(a.min, b.min);
          a.max = std::max(a.max, b.max);
        }
      }
    }
    state_.nonfinite += other.state_.nonfinite;
  }

  /// True if `channel` has seen a finite value.
  bool has_data(std::size_t channel = 0) const noexcept {
    return channel < state_.channels.size() && state_.channels[channel].min <= state_.channels[channel].max;
  }

  /// The histogram of `channel` (0 per tensor) for the range methods: counts, the grid's exact
  /// edges, the finite extremes. Throws errc::not_finite naming the tensor if it saw no finite
  /// value.
  calib::histogram histogram(std::size_t channel = 0) const {
    if (!has_data(channel)) {
      if (channel >= state_.channels.size() && !state_.channels.empty())
        throw_error(errc::out_of_range, tensor_context(name_),
                    "channel " + std::to_string(channel) + " of " + std::to_string(state_.channels.size()));
      throw_error(errc::not_finite, detail::channel_context(name_, channel, per_channel()),
                  "no finite value was observed");
    }
    const auto& ch = state_.channels[channel];
    calib::histogram h;
    h.counts = ch.counts;
    const std::size_t b = options_.num_bins;
    h.edges.resize(b + 1);
    const int w = options_.absolute ? ch.exponent - log2_bins_ : ch.exponent + 1 - log2_bins_;
    const auto off = static_cast<std::int64_t>(options_.absolute ? 0 : b / 2);
    for (std::size_t k = 0; k <= b; ++k) h.edges[k] = std::ldexp(static_cast<double>(static_cast<std::int64_t>(k) - off), w);
    h.min = ch.min;
    h.max = ch.max;
    return h;
  }

  /// The grid exponent e of `channel` (see the header comment).
  int exponent(std::size_t channel = 0) const { return state_.channels.at(channel).exponent; }

 private:
  /// floor(v / 2^d) for any d >= 0.
  static std::int64_t floor_div_pow2(std::int64_t v, int d) noexcept {
    if (d >= 62) return v < 0 ? -1 : 0;
    const std::int64_t p = std::int64_t{1} << d;
    return v >= 0 ? v / p : -((-v + p - 1) / p);
  }

  /// Grows `ch` to exponent e (no-op if it is already there): bins merge in groups of 2^(e - e0).
  void regrid(histogram_channel& ch, int e) const {
    const int d = e - ch.exponent;
    if (d <= 0) return;
    const auto b = static_cast<std::int64_t>(options_.num_bins);
    const std::int64_t half = options_.absolute ? 0 : b / 2;
    std::vector<std::int64_t> grown(ch.counts.size(), 0);
    for (std::int64_t k = 0; k < b; ++k) {
      const std::int64_t c = ch.counts[static_cast<std::size_t>(k)];
      if (c) grown[static_cast<std::size_t>(half + floor_div_pow2(k - half, d))] += c;
    }
    ch.counts = std::move(grown);
    ch.exponent = e;
  }

  /// The exponent a channel needs for finite extremes mn <= mx.
  static int needed_exponent(double mn, double mx) noexcept {
    const double a = std::max(std::fabs(mn), std::fabs(mx));
    return a > 0 ? std::max(min_exponent, detail::exponent_above(a)) : min_exponent;
  }

  /// log2 of the bin scale 1 / w on grid e.
  int scale_exp(int e) const noexcept { return options_.absolute ? log2_bins_ - e : log2_bins_ - 1 - e; }

  void flush(histogram_channel& ch) {
    if (!pending_) return;
    const std::size_t b = options_.num_bins, stride = scratch_stride();
    for (std::size_t k = 0; k < b; ++k) {
      std::uint64_t sum = 0;
      for (std::size_t copy = 0; copy < detail::bin_copies; ++copy) {
        sum += scratch_[copy * stride + k];
        scratch_[copy * stride + k] = 0;
      }
      ch.counts[k] += static_cast<std::int64_t>(sum);
    }
    for (std::size_t copy = 0; copy < detail::bin_copies; ++copy) scratch_[copy * stride + b] = 0;  // NaN/Inf
    pending_ = 0;
  }

  /// Copies are padded apart so that equal bins of different copies do not share cache sets.
  std::size_t scratch_stride() const noexcept { return options_.num_bins + 16; }

  /// Bins x[0, n) of one channel; returns true if it held a finite value.
  template <class T>
  bool add_run(histogram_channel& ch, const T* x, std::size_t n, bool buffered) {
    bool any = false;
    if constexpr (std::is_same_v<T, double>) {
      for (std::size_t at = 0; at < n; at += detail::observer_block) {
        const std::size_t len = std::min(detail::observer_block, n - at);
        detail::scan_stats_double st;
        detail::scan_double(x + at, len, st);
        if (st.nonfinite) detail::classify_nonfinite(x + at, len, state_.nonfinite);
        if (!(st.min <= st.max)) continue;
        any = true;
        grow(ch, st.min, st.max);
        bin_double(ch, x + at, len);
      }
    } else {
      detail::for_float_blocks(x, n,
                               [&](const float* p, std::size_t len) { any |= add_float_block(ch, p, len, buffered); });
    }
    return any;
  }

  /// Extends the channel's extremes and grid for a block with finite extremes mn <= mx; the
  /// uint32 copies hold counts of the old grid, so they are added in before regridding. Returns
  /// true if the grid changed.
  bool grow(histogram_channel& ch, double mn, double mx) {
    ch.min = std::min(ch.min, mn);
    ch.max = std::max(ch.max, mx);
    const int e = needed_exponent(mn, mx);
    if (e <= ch.exponent) return false;
    flush(ch);
    regrid(ch, e);
    return true;
  }

  /// The float32 scale 2^scale_exp of grid e, or 0 if it is outside float's normal range (then
  /// the exact float64 path bins).
  float float_scale(int e) const noexcept {
    const int se = scale_exp(e);
    return se < -126 || se > 127 ? 0.0f : std::ldexp(1.0f, se);
  }

  /// One block of float data: one pass for extremes and bins (on the current grid), a second
  /// only if the block grows the grid; then the counts.
  bool add_float_block(histogram_channel& ch, const float* p, std::size_t len, bool buffered) {
    const auto bins = static_cast<std::int32_t>(options_.num_bins);
    const std::int32_t half = options_.absolute ? 0 : bins / 2;
    std::uint32_t idx[detail::observer_block];
    detail::scan_stats st;
    float scale = float_scale(ch.exponent);
    if (scale != 0.0f)
      detail::scan_bin_float(p, len, st, scale, half, bins, idx, target_);
    else
      detail::scan_float(p, len, st, target_);
    if (st.nonfinite) detail::classify_nonfinite(p, len, state_.nonfinite);
    if (!(st.min <= st.max)) return false;
    if (grow(ch, st.min, st.max)) {
      scale = float_scale(ch.exponent);
      if (scale != 0.0f) {
        detail::scan_stats again;
        detail::scan_bin_float(p, len, again, scale, half, bins, idx, target_);
      }
    }
    if (scale == 0.0f) {  // grid beyond float's exponent range: the exact float64 definition
      for (std::size_t i = 0; i < len; ++i)
        if (detail::is_finite_bits(p[i])) ++ch.counts[bin_of(static_cast<double>(p[i]), ch.exponent)];
    } else if (!buffered) {
      for (std::size_t i = 0; i < len; ++i)
        if (idx[i] < static_cast<std::uint32_t>(bins)) ++ch.counts[idx[i]];
    } else {
      const std::size_t stride = scratch_stride();
      if (scratch_.size() != detail::bin_copies * stride) scratch_.assign(detail::bin_copies * stride, 0);
      if (pending_ + len >= (std::uint64_t{1} << 31)) flush(ch);  // no uint32 copy may reach 2^32
      detail::count_bins(idx, len, scratch_.data(), stride);      // NaN/Inf land in the unused bin `bins`
      pending_ += len;
    }
    return true;
  }

  std::size_t bin_of(double v, int e) const noexcept {
    const auto bins = static_cast<std::int64_t>(options_.num_bins);
    return static_cast<std::size_t>(detail::bin_pow2_double(v, scale_exp(e), options_.absolute ? 0 : bins / 2, bins));
  }

  void bin_double(histogram_channel& ch, const double* p, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i)
      if (std::isfinite(p[i])) ++ch.counts[bin_of(p[i], ch.exponent)];
  }

  std::string name_;
  histogram_options options_;
  simd_target target_;
  int log2_bins_ = 0;
  histogram_state state_;
  std::vector<std::uint32_t> scratch_;  ///< bin_copies x (num_bins + 16) counters, zero between batches
  std::uint64_t pending_ = 0;           ///< elements binned into scratch_ since the last flush
};

}  // namespace quench::calib
