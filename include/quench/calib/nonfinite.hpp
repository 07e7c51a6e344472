#pragma once
// nonfinite_counts: how many NaN, +Inf and -Inf values an observer saw and left out.
//
// NaN and Inf in activations never poison a range: every observer counts them, excludes them from
// its statistics, and reports the counts per tensor (quench/calib/calibration_table.hpp carries
// them into the calibration result). A batch with no finite value at all is an error naming the
// tensor.

#include <cstdint>

namespace quench::calib {

/// Counts of the non-finite values an observer excluded.
///
///     const auto& c = observer.nonfinite();
///     if (c.total()) std::printf("%llu NaN\n", (unsigned long long)c.nan);
struct nonfinite_counts {
  std::uint64_t nan = 0;
  std::uint64_t pos_inf = 0;
  std::uint64_t neg_inf = 0;

  std::uint64_t total() const noexcept { return nan + pos_inf + neg_inf; }

  nonfinite_counts& operator+=(const nonfinite_counts& o) noexcept {
    nan += o.nan;
    pos_inf += o.pos_inf;
    neg_inf += o.neg_inf;
    return *this;
  }
  friend bool operator==(const nonfinite_counts& a, const nonfinite_counts& b) noexcept {
    return a.nan == b.nan && a.pos_inf == b.pos_inf && a.neg_inf == b.neg_inf;
  }
  friend bool operator!=(const nonfinite_counts& a, const nonfinite_counts& b) noexcept { return !(a == b); }
};

}  // namespace quench::calib
