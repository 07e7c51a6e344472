#pragma once
// histogram: the plain value the range methods (entropy.hpp, percentile.hpp, mse.hpp) take. Both
// histogram observers produce one; a user holding counts from elsewhere (a previous tool, a file)
// builds one directly.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"

namespace quench::calib {

/// Bin counts over ascending edges, and the finite extremes of the data they count.
///
/// counts[k] counts values in [edges[k], edges[k+1]) (the last bin also holds its right edge, as
/// numpy's). The reference tools clamp the thresholds they find to [min, max]; so do the range
/// methods. Edges are doubles holding float32 values when the observer saw float32 data, as the
/// references keep their edges in the data type.
///
///     quench::calib::histogram h{{5, 10, 5}, {-1.5, -0.5, 0.5, 1.5}, -1.2, 1.4};
///     h.validate("my histogram");
struct histogram {
  std::vector<std::int64_t> counts;
  std::vector<double> edges;  ///< counts.size() + 1
  double min = 0;             ///< smallest finite value observed
  double max = 0;             ///< largest finite value observed

  std::size_t size() const noexcept { return counts.size(); }

  /// Sum of the counts.
  std::int64_t total() const noexcept {
    std::int64_t t = 0;
    for (auto c : counts) t += c;
    return t;
  }

  /// Throws errc::invalid_value (with `context`) unless counts are non-negative, there is one
  /// more edge than bins, edges ascend and are finite, and min <= max are finite.
  void validate(const std::string& context) const {
    if (counts.empty()) throw_error(errc::invalid_value, context, "histogram has no bins");
    if (edges.size() != counts.size() + 1)
      throw_error(errc::invalid_value, context,
                  "expected " + std::to_string(counts.size() + 1) + " edges, found " + std::to_string(edges.size()));
    for (auto c : counts)
      if (c < 0) throw_error(errc::invalid_value, context, "negative bin count");
    for (std::size_t k = 0; k < edges.size(); ++k) {
      if (!std::isfinite(edges[k])) throw_error(errc::invalid_value, context, "non-finite bin edge");
      if (k && !(edges[k - 1] <= edges[k])) throw_error(errc::invalid_value, context, "bin edges must ascend");
    }
    if (!(std::isfinite(min) && std::isfinite(max) && min <= max))
      throw_error(errc::invalid_value, context, "expected finite data min <= max");
  }
};

}  // namespace quench::calib
