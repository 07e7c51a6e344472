#pragma once
// MSE calibration: the amax that minimises the expected squared quantization error of the
// histogram at the target bit width, as pytorch-quantization's _compute_amax_mse
// (calib/histogram.py) computes it, on a histogram of |x| from 0:
//
//   centers = (edges[1:] + edges[:-1]) / 2                 float32
//   for i = start_bin, +stride, ... < len(centers):
//     amax = centers[i]; fake-quantize every center with amax (tensor_quant, narrow range):
//       scale = max_bound / amax (float32), max_bound = 2^(num_bits - 1 + unsigned) - 1;
//       q = clamp(round_half_even(center * scale), min_bound, max_bound) / scale, min_bound =
//       -max_bound (0 when unsigned); amax <= 2^-24 quantizes everything to 0
//     mse = mean((q - center)^2 * count)
//   the first minimum wins; amax = centers[i_best] (float32, not clamped).
//
// The fake quantization is float32 exactly as torch computes it; the squared errors are summed in
// float64 (torch sums its float32 tensor in its own order, which no other code reproduces), as
// tests/calib/make_calib_reference.py does.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "quench/calib/histogram.hpp"
#include "quench/core/error.hpp"

namespace quench::calib {

/// Parameters of trt_mse_amax; pytorch-quantization's defaults.
struct trt_mse_options {
  int num_bits = 8;
  bool is_unsigned = false;
  std::size_t stride = 1;
  std::size_t start_bin = 128;
};

}  // namespace quench::calib

namespace quench::detail {

/// torch.round: half to even, independent of the floating-point environment.
inline float round_half_even_float(float v) noexcept {
  const float a = std::fabs(v);
  if (a < 8388608.0f) return std::copysign((a + 8388608.0f) - 8388608.0f, v);
  return v;
}

}  // namespace quench::detail

namespace quench::calib {

/// pytorch-quantization's MSE amax (see the header comment).
///
///     quench::calib::histogram_options o;
///     o.absolute = true;
///     quench::calib::histogram_observer obs("x", o);
///     ...
///     double amax = quench::calib::trt_mse_amax(obs.histogram());
inline double trt_mse_amax(const histogram& h, const trt_mse_options& opt = {}) {
  h.validate("MSE calibration");
  const std::size_t n = h.counts.size();
  if (opt.num_bits < 1 || opt.num_bits > 16 || opt.stride == 0)
    throw_error(errc::invalid_argument, "MSE calibration", "expected num_bits in [1, 16] and stride > 0");
  if (opt.start_bin >= n)
    throw_error(errc::invalid_argument, "MSE calibration",
                "start_bin " + std::to_string(opt.start_bin) + " leaves no candidate among " + std::to_string(n) +
                    " bin centers");
  std::vector<float> centers(n), counts(n);
  std::vector<std::size_t> used;  // bins with a count: the others add 0 to every sum
  for (std::size_t k = 0; k < n; ++k) {
    const float lo = static_cast<float>(h.edges[k]), hi = static_cast<float>(h.edges[k + 1]);
    centers[k] = (hi + lo) / 2.0f;
    counts[k] = static_cast<float>(h.counts[k]);
    if (h.counts[k]) used.push_back(k);
  }
  const float max_bound = static_cast<float>((1 << (opt.num_bits - 1 + (opt.is_unsigned ? 1 : 0))) - 1);
  const float min_bound = opt.is_unsigned ? 0.0f : -max_bound;
  double best = std::numeric_limits<double>::quiet_NaN();
  std::size_t best_i = opt.start_bin;
  for (std::size_t i = opt.start_bin; i < n; i += opt.stride) {
    const float amax = centers[i];
    const bool zero = amax <= 1.0f / 16777216.0f;
    const float scale = zero ? 0.0f : max_bound / amax;
    double sum = 0;
    for (std::size_t k : used) {
      float q = detail::round_half_even_float(centers[k] * scale);
      q = q < min_bound ? min_bound : (q > max_bound ? max_bound : q);
      const float fq = zero ? q / 1.0f : q / scale;
      const double d = static_cast<double>(fq) - static_cast<double>(centers[k]);
      sum += d * d * static_cast<double>(counts[k]);
    }
    const double mse = sum / static_cast<double>(n);
    if (!(mse >= best)) {  // first minimum
      best = mse;
      best_i = i;
    }
  }
  return centers[best_i];
}

}  // namespace quench::calib
