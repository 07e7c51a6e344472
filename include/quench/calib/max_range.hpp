#pragma once
// The "max" calibration method on a histogram's state: the full observed range (min-max), or
// its symmetric abs-max version. For min-max without a histogram use minmax_observer::range().

#include "quench/calib/histogram.hpp"
#include "quench/calib/range.hpp"

namespace quench::calib {

/// [h.min, h.max], or (-amax, amax) when `symmetric` (TensorRT's / pytorch-quantization's max).
///
///     quench::calib::range r = quench::calib::max_range(obs.histogram(), /*symmetric*/ true);
inline range max_range(const histogram& h, bool symmetric = false) {
  h.validate("max calibration");
  const range r{h.min, h.max};
  return symmetric ? symmetric_range(r) : r;
}

}  // namespace quench::calib
