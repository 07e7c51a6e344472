#pragma once
// range_selection: one activation's range chosen among the calibration methods by the error it
// causes, instead of one method for every tensor. On a MobileNetV3-style recogniser, ORT-style
// entropy ranges on every activation took the output to 0% agreement with FP32 where min-max kept
// 63% (../shared/reference/ptq-calibrators.md §7): the best method differs per tensor.
//
//     auto c = quench::pipeline::range_candidates(hist, quench::dtype::uint8, /*symmetric*/ false);
//     // c[0] is the best: {"mse", range, error}; every candidate's error is listed
//
// The candidates come from one signed histogram (quench's power-of-two histogram_observer): min-max,
// ONNX Runtime's percentile at 99.99 and 99.999 (asymmetric cut), ONNX Runtime's entropy (KL over
// 128 quantized bins of 2048) and an MSE search (the range r * [min, max], r on a grid from 1 down
// to 0.2, that minimizes the error below). The error of a range is the expected squared error of
// quantizing the tensor with it, estimated from the histogram: every bin's count at its centre,
// quantized and dequantized with the scale and zero point the activation type gets from that range.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "quench/calib/entropy.hpp"
#include "quench/calib/histogram.hpp"
#include "quench/calib/max_range.hpp"
#include "quench/calib/percentile.hpp"
#include "quench/calib/range.hpp"
#include "quench/quant/choose_qparams.hpp"

namespace quench::pipeline {

struct range_candidate {
  std::string method;  ///< "minmax", "percentile99.99", "percentile99.999", "entropy", "mse"
  calib::range range;
  double error = 0;  ///< mean squared quantization error over the histogram's values
};

/// Mean squared error of quantizing the values `h` holds with `r` to type `t`.
inline double histogram_quantization_error(const calib::histogram& h, const calib::range& r, dtype t, bool symmetric) {
  range_options ro;
  ro.symmetric = symmetric;
  const scale_zero_point sz = choose_scale_zero_point(static_cast<float>(r.min), static_cast<float>(r.max), t, ro);
  const double s = sz.scale;
  double lo, hi;
  if (is_float8(t)) {
    hi = static_cast<double>(quench::detail::float8_max(t)) * s;
    lo = -hi;
  } else {
    const integer_range q = full_range(t);
    lo = (static_cast<double>(q.min) - sz.zero_point) * s;
    hi = (static_cast<double>(q.max) - sz.zero_point) * s;
  }
  double sse = 0, n = 0;
  for (std::size_t k = 0; k < h.counts.size(); ++k) {
    const std::int64_t c = h.counts[k];
    if (c == 0) continue;
    // The bin's centre, kept inside the observed extremes (the outer bins are partly empty).
    const double v = std::min(std::max(0.5 * (h.edges[k] + h.edges[k + 1]), h.min), h.max);
    double d;
    if (v < lo || v > hi) {
      d = v - std::min(std::max(v, lo), hi);  // clipped; within range float8 error is not modelled
    } else if (is_float8(t)) {
      d = 0;
    } else {
      d = v - std::nearbyint(v / s) * s;
    }
    sse += static_cast<double>(c) * d * d;
    n += static_cast<double>(c);
  }
  return n > 0 ? sse / n : 0.0;
}

/// The candidate ranges of `h` for type `t`, best (smallest error) first.
inline std::vector<range_candidate> range_candidates(const calib::histogram& h, dtype t, bool symmetric) {
  std::vector<range_candidate> out;
  auto add = [&](std::string method, calib::range r) {
    if (!(r.min <= r.max) || !std::isfinite(r.min) || !std::isfinite(r.max)) return;
    out.push_back({std::move(method), r, histogram_quantization_error(h, r, t, symmetric)});
  };
  add("minmax", calib::max_range(h));
  for (double p : {99.99, 99.999}) {
    calib::ort_percentile_options po;
    po.percentile = p;
    po.symmetric = false;
    char name[32];
    std::snprintf(name, sizeof name, "percentile%g", p);
    add(name, calib::ort_percentile_range(h, po));
  }
  calib::ort_entropy_options eo;
  eo.num_quantized_bins = 128;
  if (h.counts.size() > eo.num_quantized_bins) add("entropy", calib::ort_entropy_range(h, eo));
  // MSE: shrink [min, max] towards 0 on a grid and keep the best.
  const calib::range full = calib::max_range(h);
  range_candidate best{"mse", full, histogram_quantization_error(h, full, t, symmetric)};
  for (int k = 1; k <= 80; ++k) {
    const double f = 1.0 - 0.01 * k;
    const calib::range r{full.min * f, full.max * f};
    const double e = histogram_quantization_error(h, r, t, symmetric);
    if (e < best.error) best = {"mse", r, e};
  }
  out.push_back(best);
  // Ties keep the earlier (simpler) method: min-max before percentile before entropy before MSE.
  std::stable_sort(out.begin(), out.end(), [](const range_candidate& a, const range_candidate& b) { return a.error < b.error; });
  return out;
}

}  // namespace quench::pipeline
