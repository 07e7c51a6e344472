#pragma once
// Scalar reference kernels of the observers: the results every SIMD target must equal bit for bit
// (tests/calib/kernels_test.cpp forces each target and compares).
//
//   scan      min and max of the finite values of a block and the number of NaN/Inf elements.
//             Zeros enter as +0 (x + 0.0f), so the sign of a zero extreme never depends on which
//             lane saw it first; min/max of the rest are exact and order-independent.
//   bin_pow2  one count per element into the bin of a power-of-two grid (see
//             quench/calib/histogram_observer.hpp): signed  bin = bins/2 + floor(x * scale),
//             absolute bin = floor(|x| * scale), scale a power of two, so x * scale is exact
//             except in the subnormal range, where only the sign of a product below 1 in
//             magnitude matters: a negative x whose product underflows to -0 is put in bin
//             bins/2 - 1 explicitly. NaN and Inf go to the extra bin `bins`.
//   scan_bin  both in one pass over a block, bins into an index buffer; count_bins then adds
//             the buffer into four copies of the histogram (element j into copy j % 4) so that
//             runs of equal bins do not serialise on one counter.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "quench/core/config.hpp"

namespace quench::detail {

/// How many histogram copies the binning kernels spread counts over.
inline constexpr std::size_t bin_copies = 4;

struct scan_stats {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  std::size_t nonfinite = 0;  ///< NaN and +-Inf elements
};

inline bool is_finite_bits(float x) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b & 0x7f800000u) != 0x7f800000u;
}

inline void scan_float_ref(const float* QUENCH_RESTRICT x, std::size_t n, scan_stats& s) noexcept {
  float mn = s.min, mx = s.max;
  std::size_t nf = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_finite_bits(x[i])) {
      ++nf;
      continue;
    }
    const float v = x[i] + 0.0f;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  s.min = mn;
  s.max = mx;
  s.nonfinite += nf;
}

/// The bin of one finite float: see the header comment. `half` is bins/2 when signed, 0 when
/// absolute. Out-of-grid values (a caller bug) are clamped rather than written out of bounds.
inline std::uint32_t bin_pow2_one(float x, float scale, std::int32_t half, std::int32_t bins) noexcept {
  std::int32_t i;
  if (half == 0) {
    float t = std::fabs(x) * scale;
    t = t < static_cast<float>(bins) ? t : static_cast<float>(bins);
    i = static_cast<std::int32_t>(t);
  } else {
    float t = std::floor(x * scale);
    t = t < -static_cast<float>(half) ? -static_cast<float>(half) : t;
    t = t > static_cast<float>(half) ? static_cast<float>(half) : t;
    i = static_cast<std::int32_t>(t);
    if (x < 0.0f && i > -1) i = -1;  // a negative product that underflowed to -0
    i += half;
  }
  i = i < 0 ? 0 : i;
  i = i > bins - 1 ? bins - 1 : i;
  return static_cast<std::uint32_t>(i);
}

/// One pass over a block: the scan (into `s`) and every element's bin on the grid of `scale`
/// into `idx` (`bins` for NaN/Inf), so that the data is read once.
inline void scan_bin_float_ref(const float* QUENCH_RESTRICT x, std::size_t n, scan_stats& s, float scale,
                               std::int32_t half, std::int32_t bins, std::uint32_t* QUENCH_RESTRICT idx) noexcept {
  scan_float_ref(x, n, s);
  for (std::size_t i = 0; i < n; ++i)
    idx[i] = is_finite_bits(x[i]) ? bin_pow2_one(x[i], scale, half, bins) : static_cast<std::uint32_t>(bins);
}

/// Adds one count per index to `sub` (bin_copies histograms of `stride` counters each), element
/// i into copy i % bin_copies. Plain scalar code for every target: its speed is the store
/// throughput of the CPU, which no SIMD scatter beats.
inline void count_bins(const std::uint32_t* QUENCH_RESTRICT idx, std::size_t n, std::uint32_t* QUENCH_RESTRICT sub,
                       std::size_t stride) noexcept {
  std::uint32_t* const h0 = sub;
  std::uint32_t* const h1 = sub + stride;
  std::uint32_t* const h2 = sub + 2 * stride;
  std::uint32_t* const h3 = sub + 3 * stride;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h0[idx[i]];
    ++h1[idx[i + 1]];
    ++h2[idx[i + 2]];
    ++h3[idx[i + 3]];
  }
  // i is a multiple of bin_copies here: the tail's element k goes to copy k
  if (i < n) ++h0[idx[i]];
  if (i + 1 < n) ++h1[idx[i + 1]];
  if (i + 2 < n) ++h2[idx[i + 2]];
}

// ---- float64 data: no SIMD path; the same definitions in double ------------------------------------

struct scan_stats_double {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  std::size_t nonfinite = 0;
};

inline void scan_double(const double* x, std::size_t n, scan_stats_double& s) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      ++s.nonfinite;
      continue;
    }
    const double v = x[i] + 0.0;
    s.min = v < s.min ? v : s.min;
    s.max = v > s.max ? v : s.max;
  }
}

/// `scale` = 2^scale_exp, applied with ldexp so that it cannot overflow a double's exponent range
/// for any grid a double can need; the floor is exact.
inline std::int64_t bin_pow2_double(double x, int scale_exp, std::int64_t half, std::int64_t bins) noexcept {
  std::int64_t i;
  if (half == 0) {
    double t = std::ldexp(std::fabs(x), scale_exp);
    t = t < static_cast<double>(bins) ? t : static_cast<double>(bins);
    i = static_cast<std::int64_t>(t);
  } else {
    double t = std::floor(std::ldexp(x, scale_exp));
    t = t < -static_cast<double>(half) ? -static_cast<double>(half) : t;
    t = t > static_cast<double>(half) ? static_cast<double>(half) : t;
    i = static_cast<std::int64_t>(t);
    if (x < 0.0 && i > -1) i = -1;
    i += half;
  }
  i = i < 0 ? 0 : i;
  return i > bins - 1 ? bins - 1 : i;
}

}  // namespace quench::detail
