#pragma once
// range: the real interval [min, max] a calibrator chose for a tensor, and the two ways of making
// it symmetric that the reference tools use.
//
// Values are doubles so that every element type's extremes fit exactly; ranges computed from
// float32 data are exactly float32 values.

#include <algorithm>
#include <cmath>

namespace quench::calib {

/// A calibrated real range. Feed it to quench::choose_qparams (quench/quant/choose_qparams.hpp).
///
///     quench::calib::range r = observer.range();
///     auto qp = quench::choose_qparams(static_cast<float>(r.min), static_cast<float>(r.max), dtype::int8);
struct range {
  double min = 0;
  double max = 0;

  /// max(|min|, |max|): the amax of TensorRT and pytorch-quantization.
  double amax() const noexcept { return std::max(std::fabs(min), std::fabs(max)); }

  friend bool operator==(const range& a, const range& b) noexcept { return a.min == b.min && a.max == b.max; }
  friend bool operator!=(const range& a, const range& b) noexcept { return !(a == b); }
};

/// (-m, m) with m = max(|min|, |max|): ORT's `symmetric` option of the MinMax calibrater.
inline range symmetric_range(const range& r) noexcept {
  const double m = r.amax();
  return {-m, m};
}

}  // namespace quench::calib
