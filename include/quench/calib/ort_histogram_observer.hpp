#pragma once
// ort_histogram_observer: ONNX Runtime's histogram collection, reproduced bit for bit, so that an
// ORT user gets ORT's thresholds from quench (onnxruntime/python/tools/quantization/calibrate.py,
// HistogramCollector; the numpy arithmetic is in detail/numpy_histogram.hpp).
//
//   kind value           collect_value + merge_histogram (EntropyCalibrater, DistributionCalibrater,
//                        asymmetric PercentileCalibrater): the first batch is histogrammed over
//                        +-t, t = max(|min|, |max|) of that batch, with num_bins bins. A later batch
//                        with a larger t adds k bins on each side at the first batch's bin width
//                        (k = int((t_new - t_old) // width + 1)), the old counts land in the middle;
//                        a smaller one is histogrammed over the current range and added.
//   kind absolute_value  collect_absolute_value (symmetric PercentileCalibrater; also
//                        pytorch-quantization's HistogramCalibrator with torch_hist=False): a
//                        histogram of |x|, the first batch over [min|x|, max|x|]; later batches
//                        extend the edges with np.arange at the same width (numpy may add one bin
//                        past the maximum), values below the first edge are dropped (ORT's quirk).
//
// The first batch fixes the bin width, so the result depends on the batch order and on how the
// data is split into batches: merge() refuses, and quench's own histogram_observer (power-of-two
// grid, exact merge) is the one to use for sharded calibration.
//
// Differences from ORT, all on input ORT cannot handle: NaN and +-Inf are counted and excluded
// (ORT's value histograms drop NaN the same way, but Inf makes numpy raise, as does NaN in an
// absolute-value histogram); an empty batch is ignored; a batch with no finite value is an error
// naming the tensor. Only float32 data is accepted (ORT computes in the data type; quench
// reproduces the float32 arithmetic).
//
// Thread safety: const member functions may run concurrently; observe needs exclusive access.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/calib/detail/calib_kernels.hpp"
#include "quench/calib/detail/numpy_histogram.hpp"
#include "quench/calib/detail/observe.hpp"
#include "quench/calib/histogram.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"

namespace quench::calib {

/// Which of ORT's two collection functions to reproduce.
enum class ort_histogram_kind {
  value,           ///< collect_value: signed values over +-threshold
  absolute_value,  ///< collect_absolute_value: |x| from min|x| of the first batch
};

/// Options of an ort_histogram_observer. The factories give ORT's defaults per calibrater.
struct ort_histogram_options {
  ort_histogram_kind kind = ort_histogram_kind::value;
  std::size_t num_bins = 2048;

  /// EntropyCalibrater: value histogram, num_bins = 128. With ORT's other default,
  /// num_quantized_bins = 128, the entropy search has one candidate and returns the full range;
  /// pass num_bins = 2048 for a real search.
  static ort_histogram_options entropy() { return {ort_histogram_kind::value, 128}; }
  /// PercentileCalibrater: 2048 bins; symmetric (ORT's default) collects |x|.
  static ort_histogram_options percentile(bool symmetric = true) {
    return {symmetric ? ort_histogram_kind::absolute_value : ort_histogram_kind::value, 2048};
  }
  /// DistributionCalibrater as create_calibrator makes it: value histogram, 2048 bins.
  static ort_histogram_options distribution() { return {ort_histogram_kind::value, 2048}; }
};

/// Everything an ort_histogram_observer accumulates (what calibration_state serialises).
struct ort_histogram_state {
  std::vector<std::int64_t> counts;  ///< empty before the first batch
  std::vector<float> edges;          ///< float32, as ORT stores them
  float min = 0;                     ///< nanmin / nanmax of the raw finite data
  float max = 0;
  double threshold = 0;              ///< kind value: ORT's current +-threshold
  bool threshold_float64 = false;    ///< numpy holds the threshold as float64 after a growth
  nonfinite_counts nonfinite;
};

/// ORT-compatible histogram observer (see the header comment).
///
///     auto opt = quench::calib::ort_histogram_options::entropy();
///     opt.num_bins = 2048;
///     quench::calib::ort_histogram_observer obs("relu_3", opt);
///     for (auto& b : batches) obs.observe(b.view<float>());
///     auto r = quench::calib::ort_entropy_range(obs.histogram());   // quench/calib/entropy.hpp
class ort_histogram_observer {
 public:
  explicit ort_histogram_observer(std::string name = {}, ort_histogram_options options = {})
      : name_(std::move(name)), options_(options) {
    if (options_.num_bins < 1 || options_.num_bins > (std::size_t{1} << 24))
      throw_error(errc::invalid_argument, tensor_context(name_),
                  "expected num_bins in [1, 2^24], found " + std::to_string(options_.num_bins));
  }

  /// Restores an observer from its state (after validating it).
  static ort_histogram_observer from_state(std::string name, ort_histogram_options options,
                                           ort_histogram_state state) {
    ort_histogram_observer o(std::move(name), options);
    const std::string ctx = tensor_context(o.name_);
    if (state.counts.empty() != state.edges.empty() ||
        (!state.counts.empty() && state.edges.size() != state.counts.size() + 1))
      throw_error(errc::invalid_value, ctx, "expected one more edge than bins");
    for (auto c : state.counts)
      if (c < 0) throw_error(errc::invalid_value, ctx, "negative bin count");
    for (std::size_t k = 0; k < state.edges.size(); ++k)
      if (!std::isfinite(state.edges[k]) || (k && state.edges[k] < state.edges[k - 1]))
        throw_error(errc::invalid_value, ctx, "bin edges must be finite and ascending");
    if (!state.counts.empty() && !(std::isfinite(state.min) && std::isfinite(state.max) && state.min <= state.max &&
                                   std::isfinite(state.threshold) && state.threshold >= 0))
      throw_error(errc::invalid_value, ctx, "expected finite min <= max and threshold >= 0");
    o.state_ = std::move(state);
    return o;
  }

  const std::string& name() const noexcept { return name_; }
  const ort_histogram_options& options() const noexcept { return options_; }
  const ort_histogram_state& state() const noexcept { return state_; }
  const nonfinite_counts& nonfinite() const noexcept { return state_.nonfinite; }
  bool empty() const noexcept { return state_.counts.empty(); }

  /// One ORT collect() call with one batch of float32 data.
  void observe(const float* data, const shape& s) {
    const std::size_t n = s.numel();
    if (n == 0) return;
    detail::scan_stats st;
    detail::scan_float(data, n, st, best_simd_target());
    nonfinite_counts nf;
    if (st.nonfinite) detail::classify_nonfinite(data, n, nf);
    if (!(st.min <= st.max)) detail::throw_no_finite_value(name_, nf);
    if (options_.kind == ort_histogram_kind::value)
      collect_value(data, n, st.min, st.max);
    else
      collect_absolute_value(data, n, st.min, st.max);
    state_.nonfinite += nf;
  }

  template <class T>
  void observe(const tensor_view<T>& v) {
    static_assert(std::is_same_v<std::remove_cv_t<T>, float>,
                  "ort_histogram_observer reproduces ORT's float32 arithmetic: observe float data");
    observe(v.data(), v.shape());
  }

  void observe(const tensor& t) {
    if (t.dtype() != dtype::float32)
      throw_error(errc::unsupported_dtype, tensor_context(name_),
                  "the ORT-compatible histogram reproduces float32 tensors only, found " + to_string(t.dtype()) +
                      "; use histogram_observer");
    observe(t.view<float>());
  }

  /// Always throws: ORT's histograms depend on the batch order and cannot be merged exactly.
  [[noreturn]] void merge(const ort_histogram_observer&) const {
    throw_error(errc::invalid_argument, tensor_context(name_),
                "ORT-compatible histograms depend on the batch order (the first batch fixes the bin width) "
                "and cannot be merged exactly; use histogram_observer for sharded calibration");
  }

  /// The histogram for the range methods (edges as the float32 values ORT holds).
  calib::histogram histogram() const {
    if (state_.counts.empty())
      throw_error(errc::not_finite, tensor_context(name_).empty() ? "tensor" : tensor_context(name_),
                  "no finite value was observed");
    calib::histogram h;
    h.counts = state_.counts;
    h.edges.assign(state_.edges.begin(), state_.edges.end());
    h.min = state_.min;
    h.max = state_.max;
    return h;
  }

 private:
  /// np.histogram(data, bins, range=(-t, t)) with t typed as numpy holds it.
  static std::vector<float> histogram_over(const float* x, std::size_t n, double t, bool t_float64,
                                           std::size_t bins, std::int64_t* counts) {
    const detail::numpy_range r = detail::numpy_outer_edges({-t, t, t_float64});
    return detail::numpy_uniform_histogram(x, n, r, bins, counts);
  }

  void collect_value(const float* x, std::size_t n, float mn, float mx) {
    const float t_new = std::max(std::fabs(mn), std::fabs(mx));
    auto& s = state_;
    if (s.counts.empty()) {
      s.counts.assign(options_.num_bins, 0);
      s.edges = histogram_over(x, n, t_new, false, options_.num_bins, s.counts.data());
      s.threshold = t_new;
      s.threshold_float64 = false;
      s.min = mn;
      s.max = mx;
      return;
    }
    const std::size_t old_bins = s.counts.size();
    if (static_cast<double>(t_new) <= s.threshold) {
      histogram_over(x, n, s.threshold, s.threshold_float64, old_bins, s.counts.data());
    } else if (s.threshold == 0) {
      std::vector<std::int64_t> h(old_bins, 0);
      s.edges = histogram_over(x, n, t_new, false, old_bins, h.data());
      for (std::size_t k = 0; k < old_bins; ++k) h[k] += s.counts[k];
      s.counts = std::move(h);
      s.threshold = t_new;
      s.threshold_float64 = false;
    } else {
      // old_stride = 2 * old_threshold / old_num_bins (float64: a Python int meets a numpy scalar)
      const double stride = (2.0 * s.threshold) / static_cast<double>(old_bins);
      const double diff = s.threshold_float64
                              ? static_cast<double>(t_new) - s.threshold
                              : static_cast<double>(t_new - static_cast<float>(s.threshold));  // float32 scalars
      const double q = detail::numpy_floor_divide(diff, stride) + 1.0;
      const auto half = static_cast<std::size_t>(q);  // int(): q >= 1 here
      const std::size_t new_bins = old_bins + 2 * half;
      const double t = static_cast<double>(half) * stride + s.threshold;
      std::vector<std::int64_t> h(new_bins, 0);
      s.edges = histogram_over(x, n, t, true, new_bins, h.data());
      for (std::size_t k = 0; k < old_bins; ++k) h[half + k] += s.counts[k];
      s.counts = std::move(h);
      s.threshold = t;
      s.threshold_float64 = true;
    }
    s.min = std::min(s.min, mn);
    s.max = std::max(s.max, mx);
  }

  void collect_absolute_value(const float* x, std::size_t n, float mn, float mx) {
    std::vector<float> a;
    a.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      if (detail::is_finite_bits(x[i])) a.push_back(std::fabs(x[i]));
    auto& s = state_;
    if (s.counts.empty()) {
      const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
      s.counts.assign(options_.num_bins, 0);
      s.edges = detail::numpy_uniform_histogram(
          a.data(), a.size(), detail::numpy_outer_edges({*lo, *hi, false}), options_.num_bins, s.counts.data());
      s.min = mn;
      s.max = mx;
      return;
    }
    std::vector<double> edges(s.edges.begin(), s.edges.end());
    const float amax = *std::max_element(a.begin(), a.end());
    if (amax > s.edges.back()) {
      // np.arange(e[-1] + width, amax + width, width) with float32 scalars: the length from
      // float32 arithmetic, the values in float64 from the first two (see detail/numpy_histogram.hpp)
      const float width = s.edges[1] - s.edges[0];
      const float start = s.edges.back() + width, stop = amax + width;
      const double len = std::ceil(static_cast<double>((stop - start) / width));
      if (len > 0) {
        const auto count = static_cast<std::size_t>(len);
        const double a0 = start, a1 = static_cast<float>(start + width);
        const double d = a1 - a0;
        for (std::size_t i = 0; i < count; ++i)
          edges.push_back(i == 0 ? a0 : i == 1 ? a1 : a0 + static_cast<double>(i) * d);
      }
    }
    std::vector<std::int64_t> h(edges.size() - 1, 0);
    detail::numpy_edges_histogram(a.data(), a.size(), edges, h.data());
    for (std::size_t k = 0; k < s.counts.size(); ++k) h[k] += s.counts[k];
    s.counts = std::move(h);
    s.edges.assign(edges.size(), 0.f);
    for (std::size_t k = 0; k < edges.size(); ++k) s.edges[k] = static_cast<float>(edges[k]);
    s.min = std::min(s.min, mn);
    s.max = std::max(s.max, mx);
  }

  std::string name_;
  ort_histogram_options options_;
  ort_histogram_state state_;
};

}  // namespace quench::calib
