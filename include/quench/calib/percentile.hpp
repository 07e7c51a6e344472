#pragma once
// Percentile calibration: the threshold below which a given fraction of the values lies, read
// off the histogram's cumulative distribution. Pure functions of a histogram, in the two
// references' variants:
//
// ort_percentile_range: ONNX Runtime's HistogramCollector.compute_percentile. cdf =
//   cumsum(hist / total) (float64, sequential as np.cumsum); symmetric (a histogram of |x|):
//   idx = searchsorted(cdf, percentile / 100), range (-edges[idx], edges[idx]); asymmetric (a
//   signed histogram): cut (100 - percentile) / 200 on each side, idx_left = searchsorted(cdf,
//   cut), idx_right = searchsorted(cdf, 1 - cut), range (edges[idx_left], edges[idx_right]).
//   Both clamped to the data's [min, max]. ORT's defaults: percentile 99.999, symmetric.
//
// trt_percentile_amax: pytorch-quantization's _compute_amax_percentile on a histogram of |x|:
//   amax = edges[searchsorted(cdf, percentile / 100)], not clamped. Default percentile 99.99.
//
// searchsorted is numpy's side='left': the first index whose cdf is >= the target (the number of
// bins when every cdf value is below it, which picks the last edge).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/calib/histogram.hpp"
#include "quench/calib/range.hpp"
#include "quench/core/error.hpp"

namespace quench::calib {

/// Parameters of ort_percentile_range; ORT's PercentileCalibrater defaults.
struct ort_percentile_options {
  double percentile = 99.999;  ///< in [0, 100]
  bool symmetric = true;       ///< true: `h` is a histogram of |x| (ort_histogram_kind::absolute_value)
};

}  // namespace quench::calib

namespace quench::detail {

/// np.cumsum(hist / total) with np.searchsorted(cdf, v) for each target in `v` (ascending or
/// not): the first index with cdf >= target.
inline std::vector<std::size_t> cdf_search(const std::vector<std::int64_t>& counts, const std::vector<double>& v) {
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  const double t = static_cast<double>(total);
  std::vector<std::size_t> idx(v.size(), counts.size());
  std::vector<bool> found(v.size(), false);
  double cdf = 0;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    cdf += static_cast<double>(counts[k]) / t;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!found[i] && cdf >= v[i]) {
        idx[i] = k;
        found[i] = true;
      }
  }
  return idx;
}

inline void check_percentile(double p, const calib::histogram& h) {
  h.validate("percentile calibration");
  if (!(p >= 0.0 && p <= 100.0))
    throw_error(errc::invalid_argument, "percentile calibration",
                "expected a percentile in [0, 100], found " + std::to_string(p));
  if (h.total() == 0) throw_error(errc::invalid_value, "percentile calibration", "the histogram is empty");
}

}  // namespace quench::detail

namespace quench::calib {

/// ONNX Runtime's percentile range (see the header comment).
///
///     quench::calib::ort_histogram_observer obs("x", quench::calib::ort_histogram_options::percentile());
///     ...
///     quench::calib::range r = quench::calib::ort_percentile_range(obs.histogram());
inline range ort_percentile_range(const histogram& h, const ort_percentile_options& opt = {}) {
  detail::check_percentile(opt.percentile, h);
  range r;
  if (opt.symmetric) {
    const auto idx = detail::cdf_search(h.counts, {opt.percentile / 100.0});
    r = {-h.edges[idx[0]], h.edges[idx[0]]};
  } else {
    const double cut = (100.0 - opt.percentile) / 200.0;
    const auto idx = detail::cdf_search(h.counts, {cut, 1.0 - cut});
    r = {h.edges[idx[0]], h.edges[idx[1]]};
  }
  if (r.min < h.min) r.min = h.min;
  if (r.max > h.max) r.max = h.max;
  return r;
}

/// pytorch-quantization's percentile amax on a histogram of |x| (see the header comment).
///
///     double amax = quench::calib::trt_percentile_amax(obs.histogram(), 99.99);
inline double trt_percentile_amax(const histogram& h, double percentile = 99.99) {
  detail::check_percentile(percentile, h);
  return h.edges[detail::cdf_search(h.counts, {percentile / 100.0})[0]];
}

}  // namespace quench::calib
