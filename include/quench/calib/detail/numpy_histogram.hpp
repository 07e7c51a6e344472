#pragma once
// numpy 1.24's np.histogram on float32 data, reproduced operation by operation, for the
// ORT-compatible observer (quench/calib/ort_histogram_observer.hpp). tests/calib compares the
// counts and edge bits with numpy's own on every reference data set.
//
// Uniform bins, np.histogram(a, bins, range=(first, last)):
//   first == last                 first -= 0.5, last += 0.5 (then float64 scalars)
//   edges = linspace(first, last, bins + 1) computed in float64 (start * 1.0 promotes the float32
//           scalars), y = k * step + start with step = (last - first) / bins, y[bins] = last,
//           then cast to float32 (the type of the data)
//   norm  = bins / (last - first), the difference in the scalars' type (float32 or float64), the
//           quotient in float64, then rounded to float32 when it meets the float32 data
//   kept  = first <= x <= last, compared in float32 (numpy's value-based casting rounds a float64
//           scalar to float32 against a float32 array)
//   bin   = int(float32(float32(x - first) * norm)), then -1 if x < edges[bin], +1 if
//           x >= edges[bin + 1] (except in the last bin): numpy's own fix-up
// Explicit edges, np.histogram(a, bins=edges): sort + searchsorted, i.e. bin k holds
//   edges[k] <= x < edges[k+1], the last bin also x == edges[-1], values outside dropped; compared
//   exactly (float64 edges against float32 data promote to float64).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace quench::detail {

/// A range argument of np.histogram: the values and whether numpy holds them as float64 scalars
/// (otherwise float32).
struct numpy_range {
  double first = 0;
  double last = 0;
  bool float64 = false;
};

/// _get_outer_edges: an empty range is widened by 0.5 on each side (and becomes float64).
inline numpy_range numpy_outer_edges(numpy_range r) noexcept {
  if (r.first == r.last) {
    r.first -= 0.5;
    r.last += 0.5;
    r.float64 = true;
  }
  return r;
}

/// np.linspace(first, last, bins + 1) in float64, cast to float32.
inline std::vector<float> numpy_linspace_edges(const numpy_range& r, std::size_t bins) {
  std::vector<float> e(bins + 1);
  const double start = r.first, stop = r.last;
  const double delta = stop - start;
  const double div = static_cast<double>(bins);
  const double step = delta / div;
  for (std::size_t k = 0; k <= bins; ++k) {
    const double kd = static_cast<double>(k);
    const double y = (step == 0 ? (kd / div) * delta : kd * step) + start;
    e[k] = static_cast<float>(y);
  }
  e[bins] = static_cast<float>(stop);
  return e;
}

/// np.histogram(x[0, n), bins, range=r) for float32 x (r already through numpy_outer_edges):
/// adds the counts to `counts` (size bins) and returns the float32 edges.
inline std::vector<float> numpy_uniform_histogram(const float* x, std::size_t n, const numpy_range& r,
                                                  std::size_t bins, std::int64_t* counts) {
  std::vector<float> edges = numpy_linspace_edges(r, bins);
  const double den = r.float64 ? r.last - r.first
                               : static_cast<double>(static_cast<float>(r.last) - static_cast<float>(r.first));
  const float norm = static_cast<float>(static_cast<double>(bins) / den);
  const float first = static_cast<float>(r.first), last = static_cast<float>(r.last);
  const auto nb = static_cast<std::ptrdiff_t>(bins);
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!(v >= first && v <= last)) continue;  // also drops NaN and Inf
    const float f = (v - first) * norm;
    auto k = static_cast<std::ptrdiff_t>(f);
    if (k >= nb) k = nb - 1;  // numpy subtracts one only at == bins; f <= bins here
    if (k < 0) k = 0;
    if (v < edges[static_cast<std::size_t>(k)])
      --k;
    else if (k != nb - 1 && v >= edges[static_cast<std::size_t>(k) + 1])
      ++k;
    ++counts[k];
  }
  return edges;
}

/// np.histogram(x[0, n), bins=edges) (edges as float64, ascending): adds to `counts`
/// (edges.size() - 1 bins).
inline void numpy_edges_histogram(const float* x, std::size_t n, const std::vector<double>& edges,
                                  std::int64_t* counts) {
  const std::size_t bins = edges.size() - 1;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!(v >= edges.front() && v <= edges.back())) continue;
    if (v == edges.back()) {  // searchsorted(side='right') on the last edge: always the last bin
      ++counts[bins - 1];
      continue;
    }
    const auto up = std::upper_bound(edges.begin(), edges.end(), v);
    ++counts[static_cast<std::size_t>(up - edges.begin()) - 1];
  }
}

/// numpy's floor_divide for float64 (npy_divmod).
inline double numpy_floor_divide(double a, double b) noexcept {
  double mod = std::fmod(a, b);
  if (b == 0) return a / b;
  double div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) {
      mod += b;
      div -= 1.0;
    }
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, a / b);
  }
  return floordiv;
}

}  // namespace quench::detail
