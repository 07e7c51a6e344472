#pragma once
// Entropy (KL-divergence) calibration: the threshold whose 8-bit quantization loses the least
// information, after NVIDIA's 2017 procedure ("8-bit Inference with TensorRT", GTC S7310), in the
// two variants the reference tools implement. Both are pure functions of a histogram.
//
// ort_entropy_range: ONNX Runtime's HistogramCollector.get_entropy_threshold (calibrate.py), on
//   a signed histogram of n bins over +-t (ort_histogram_observer kind value, or histogram_observer
//   signed). zero = n / 2; for i = num_quantized_bins / 2, +stride, ... <= zero, the candidate
//   window is bins [zero - i, min(zero + i + 1, n)), threshold (edges[start], edges[end]):
//     p      the window's counts, the counts left of it added to p[0], right of it to p[-1]
//     q      the window's (unfolded) counts merged into num_quantized_bins groups of
//            m = len / num_quantized_bins bins (the remainder added to the last group), each
//            group's sum divided by the number of non-zero p bins in the group and assigned to
//            EVERY position of the group (also where p is 0), truncated to int64 (q is an integer
//            array in ORT); positions past the last full group (the remainder) stay 0
//     smooth both (ORT's smooth_distribution, float32): zeros become 1e-4, non-zeros lose
//            1e-4 * zeros / non_zeros
//     KL     sum p log(p / q) of the normalised distributions (scipy.stats.entropy); +inf if p or
//            q has no non-zero entry
//   The first minimum wins; the range is clamped to the data's [min, max]. ORT has no stride
//   (quench's extension; 1 reproduces ORT).
//
// trt_entropy_amax: pytorch-quantization's _compute_amax_entropy (calib/histogram.py), the
//   TensorRT-style search on a histogram of |x| from 0 (histogram_observer absolute, or
//   ort_histogram_observer absolute_value for its numpy collection): bins[0] = bins[1] first (the
//   zero bin is replaced by its neighbour); nbins = 2^(num_bits - 1 + unsigned); for i =
//   start_bin, +stride, ... <= n: bin j < i belongs to group floor(j * nbins / i), zero bins
//   excluded; each group's count is spread evenly over its non-zero bins (float64); the
//   reference is bins[:i] with the rest added to its last bin; no smoothing, KL as above
//   (+inf where the reference is non-zero and q zero). The LAST minimum wins; amax =
//   edges[i_best]. Not clamped.
//
// Exactness. Every integer sum, ORT's int64 truncation and float32 smoothing are reproduced
// exactly. The KL sums are accumulated in float64, as the numpy reference in
// tests/calib/make_calib_reference.py does; quench and that reference agree on the chosen bin on
// every test histogram. (scipy sums float32 inputs in float32, and recent ORT versions replace
// scipy by their own float32 rel_entr and round each divergence to float32 before the argmin,
// which can turn near-ties into ties; neither is reproduced.) Two candidates whose divergences
// agree to about 1e-13 could be ordered differently by two float64 summation orders.
//
// Speed. Per candidate O(num_quantized_bins) with prefix sums of counts, non-zero counts and
// c log c, plus per-element work only where smoothing changes a float32 count (small counts in
// windows that contain zeros); bench/calib_bench.cpp compares with the numpy transcription.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "quench/calib/histogram.hpp"
#include "quench/calib/range.hpp"
#include "quench/core/error.hpp"

namespace quench::calib {

/// Parameters of ort_entropy_range; ORT's defaults.
struct ort_entropy_options {
  std::size_t num_quantized_bins = 128;  ///< ORT num_quantized_bins
  std::size_t stride = 1;                ///< candidate step (quench's extension; ORT: 1)
};

/// Parameters of trt_entropy_amax; pytorch-quantization's defaults.
struct trt_entropy_options {
  int num_bits = 8;            ///< pytorch-quantization num_bits
  bool is_unsigned = false;    ///< `unsigned`: one more bit of quantized bins
  std::size_t stride = 1;      ///< compute_amax(stride=)
  std::size_t start_bin = 128; ///< compute_amax(start_bin=)
};

}  // namespace quench::calib

namespace quench::detail {

/// log(ps) for ps = float32(fc - eps) close to fc > 0, given log(fc): log1p of the small relative
/// step by its series when it is below 2^-10 (error < 2e-16), else a direct log.
inline double log_near(double ps, double fc, double log_fc) noexcept {
  const double x = (ps - fc) / fc;
  if (std::fabs(x) < 0x1p-10) return log_fc + x * (1.0 + x * (-0.5 + x * (1.0 / 3.0 + x * -0.25)));
  return std::log(ps);
}

/// ORT smooth_distribution's float32 arithmetic for one value.
inline float ort_smoothed(std::int64_t v, float eps1) noexcept {
  return v ? static_cast<float>(v) - eps1 : 1e-4f;
}

}  // namespace quench::detail

namespace quench::calib {

/// ONNX Runtime's entropy threshold on `h` (see the header comment), clamped to [h.min, h.max].
///
///     auto opt = quench::calib::ort_histogram_options::entropy();
///     opt.num_bins = 2048;                         // ORT's default of 128 leaves one candidate
///     quench::calib::ort_histogram_observer obs("x", opt);
///     ...
///     quench::calib::range r = quench::calib::ort_entropy_range(obs.histogram());
inline range ort_entropy_range(const histogram& h, const ort_entropy_options& opt = {}) {
  h.validate("entropy calibration");
  const std::size_t n = h.counts.size();
  const std::size_t nq = opt.num_quantized_bins;
  const std::size_t zero = n / 2, half_q = nq / 2;
  if (nq == 0 || opt.stride == 0)
    throw_error(errc::invalid_argument, "entropy calibration", "num_quantized_bins and stride must be positive");
  if (half_q > zero)
    throw_error(errc::invalid_argument, "entropy calibration",
                "num_quantized_bins / 2 = " + std::to_string(half_q) + " exceeds half the histogram (" +
                    std::to_string(zero) + " bins): no candidate threshold");
  const auto& c = h.counts;

  // Prefix sums over the histogram: counts (exact), non-zero counts, float32 counts, and
  // fc log fc of the non-zero float32 counts.
  std::vector<std::int64_t> pc(n + 1, 0), pnz(n + 1, 0);
  std::vector<double> pf(n + 1, 0), pfl(n + 1, 0), fc(n), lfc(n, 0);
  for (std::size_t j = 0; j < n; ++j) {
    fc[j] = static_cast<float>(c[j]);
    if (c[j]) lfc[j] = std::log(fc[j]);
    pc[j + 1] = pc[j] + c[j];
    pnz[j + 1] = pnz[j] + (c[j] != 0);
    pf[j + 1] = pf[j] + fc[j];
    pfl[j + 1] = pfl[j] + (c[j] ? fc[j] * lfc[j] : 0.0);
  }
  // Non-zero bins by count: smoothing by eps changes float32(c) - eps only for
  // eps >= half the float32 spacing below float32(c), a prefix of this order.
  std::vector<std::size_t> by_count;
  for (std::size_t j = 0; j < n; ++j)
    if (c[j]) by_count.push_back(j);
  std::sort(by_count.begin(), by_count.end(), [&](std::size_t a, std::size_t b) { return c[a] < c[b]; });
  std::vector<float> tol(by_count.size());
  for (std::size_t k = 0; k < by_count.size(); ++k) {
    const auto f = static_cast<float>(fc[by_count[k]]);
    tol[k] = (f - std::nextafter(f, 0.0f)) * 0.5f;
  }

  const float eps32 = 1e-4f;
  const double eps_d = eps32, eps_log = std::log(eps_d);
  std::vector<double> gsum(nq);
  std::vector<float> qs(nq);
  std::vector<std::int64_t> v(nq);
  // log of a smoothed q value: most are float32(v) itself (eps below half its float32 spacing),
  // an integer, whose log is computed once
  std::vector<double> log_int(static_cast<std::size_t>(std::min<std::int64_t>(pc[n] + 1, 1 << 14)),
                              std::numeric_limits<double>::quiet_NaN());
  auto log_q = [&](std::int64_t vi, float q) {
    if (vi <= 0) return eps_log;
    if (vi < static_cast<std::int64_t>(log_int.size()) && q == static_cast<float>(vi)) {
      double& l = log_int[static_cast<std::size_t>(vi)];
      if (l != l) l = std::log(static_cast<double>(q));
      return l;
    }
    return std::log(static_cast<double>(q));
  };
  double best_kl = std::numeric_limits<double>::quiet_NaN();
  std::size_t best_start = 0, best_end = 0;

  for (std::size_t i = half_q; i <= zero; i += opt.stride) {
    const std::size_t s = zero - i, e = std::min(zero + i + 1, n), len = e - s;
    const std::size_t m = len / nq, rem = len - nq * m;
    const std::int64_t left = pc[s], right = pc[n] - pc[e];
    // p's two ends with the outliers folded in (one element when the window is a single bin)
    const std::int64_t p_first = len == 1 ? c[s] + left + right : c[s] + left;
    const std::int64_t p_last = len == 1 ? p_first : c[e - 1] + right;
    const std::int64_t inner_nz = len > 2 ? pnz[e - 1] - pnz[s + 1] : 0;
    const std::int64_t nnz_p = inner_nz + (p_first != 0) + (len > 1 && p_last != 0);
    const auto nz_p = static_cast<std::int64_t>(len) - nnz_p;

    double kl = HUGE_VAL;
    if (nnz_p > 0) {
      // q: group sums of the unfolded window, non-zero counts of the folded p per group
      std::int64_t nz_q = static_cast<std::int64_t>(rem);
      for (std::size_t g = 0; g < nq; ++g) {
        const std::size_t a = s + g * m, b = g + 1 == nq ? e : a + m;
        const std::int64_t qb = pc[b] - pc[a];
        const std::size_t ne = a + m;  // norm covers the m bins of the group only
        std::int64_t norm = pnz[ne] - pnz[a];
        if (g == 0) norm += (p_first != 0) - (c[s] != 0);
        if (len > 1 && rem == 0 && g + 1 == nq) norm += (p_last != 0) - (c[e - 1] != 0);
        v[g] = norm ? static_cast<std::int64_t>(static_cast<double>(qb) / static_cast<double>(norm)) : 0;
        if (!v[g]) nz_q += static_cast<std::int64_t>(m);
      }
      const std::int64_t nnz_q = static_cast<std::int64_t>(len) - nz_q;
      if (nnz_q > 0) {
        const auto eq = static_cast<float>(1e-4 * static_cast<double>(nz_q) / static_cast<double>(nnz_q));
        const auto ep = static_cast<float>(1e-4 * static_cast<double>(nz_p) / static_cast<double>(nnz_p));
        double q_total = static_cast<double>(rem) * eps_d;
        for (std::size_t g = 0; g < nq; ++g) {
          qs[g] = detail::ort_smoothed(v[g], eq);
          q_total += static_cast<double>(m) * qs[g];
        }
        // p: interior bins [s + 1, e - 1) from the prefix sums as if unsmoothed, then the exact
        // float32 smoothing: zeros, counts that eps changes, and the two folded ends
        const std::size_t ib = s + 1, ie = len > 1 ? e - 1 : s + 1;
        const std::int64_t inner_zeros = static_cast<std::int64_t>(ie > ib ? ie - ib : 0) - inner_nz;
        double a_sum = (ie > ib ? pfl[ie] - pfl[ib] : 0.0) + static_cast<double>(inner_zeros) * eps_d * eps_log;
        auto group_of = [&](std::size_t pos) { return pos < nq * m ? pos / m : nq; };  // nq: remainder
        double rem_sum = 0;
        auto add_to = [&](std::size_t pos, double x) {
          const std::size_t g = group_of(pos);
          (g == nq ? rem_sum : gsum[g]) += x;
        };
        for (std::size_t g = 0; g < nq; ++g) {
          // float32 counts of the group's interior part, and eps for each zero there
          const std::size_t a = std::max(s + g * m, ib), b = std::min(s + (g + 1) * m, ie);
          gsum[g] = b > a ? (pf[b] - pf[a]) + static_cast<double>(static_cast<std::int64_t>(b - a) -
                                                                  (pnz[b] - pnz[a])) * eps_d
                          : 0.0;
        }
        {
          const std::size_t a = std::max(s + nq * m, ib), b = ie;
          rem_sum = b > a ? (pf[b] - pf[a]) + static_cast<double>(static_cast<std::int64_t>(b - a) -
                                                                  (pnz[b] - pnz[a])) * eps_d
                          : 0.0;
        }
        if (ep > 0.0f) {
          for (std::size_t k = 0; k < by_count.size() && tol[k] <= ep; ++k) {
            const std::size_t j = by_count[k];
            if (j < ib || j >= ie) continue;
            const double f = fc[j];
            const double ps = static_cast<float>(static_cast<float>(f) - ep);
            a_sum += ps * detail::log_near(ps, f, lfc[j]) - f * lfc[j];
            add_to(j - s, ps - f);
          }
        }
        auto end_term = [&](std::size_t pos, std::int64_t pv) {
          const double ps = detail::ort_smoothed(pv, ep);
          a_sum += ps * std::log(ps);
          add_to(pos, ps);
        };
        end_term(0, p_first);
        if (len > 1) end_term(len - 1, p_last);

        double p_total = rem_sum, b_sum = rem_sum * eps_log;
        for (std::size_t g = 0; g < nq; ++g) {
          p_total += gsum[g];
          b_sum += gsum[g] * log_q(v[g], qs[g]);
        }
        kl = (a_sum - b_sum) / p_total + std::log(q_total) - std::log(p_total);
      }
    }
    if (!(kl >= best_kl)) {  // first minimum (NaN best_kl: the first candidate)
      best_kl = kl;
      best_start = s;
      best_end = e;
    }
  }
  range r{h.edges[best_start], h.edges[best_end]};
  if (r.min < h.min) r.min = h.min;
  if (r.max > h.max) r.max = h.max;
  return r;
}

/// pytorch-quantization's (TensorRT-style) entropy amax on a histogram of |x| (see the header
/// comment). Not clamped to the data, as in the reference.
///
///     quench::calib::histogram_options o;
///     o.absolute = true;
///     quench::calib::histogram_observer obs("x", o);
///     ...
///     double amax = quench::calib::trt_entropy_amax(obs.histogram());
inline double trt_entropy_amax(const histogram& h, const trt_entropy_options& opt = {}) {
  h.validate("entropy calibration");
  const std::size_t n = h.counts.size();
  if (opt.num_bits < 1 || opt.num_bits > 16 || opt.stride == 0)
    throw_error(errc::invalid_argument, "entropy calibration", "expected num_bits in [1, 16] and stride > 0");
  if (opt.start_bin > n || opt.start_bin == 0)
    throw_error(errc::invalid_argument, "entropy calibration",
                "start_bin " + std::to_string(opt.start_bin) + " is outside [1, " + std::to_string(n) +
                    "]: no candidate threshold");
  std::vector<std::int64_t> bins = h.counts;
  if (n >= 2) bins[0] = bins[1];
  const std::size_t nb = std::size_t{1} << (opt.num_bits - 1 + (opt.is_unsigned ? 1 : 0));
  std::vector<std::int64_t> pc(n + 1, 0), pnz(n + 1, 0);
  std::vector<double> pcl(n + 1, 0);
  for (std::size_t j = 0; j < n; ++j) {
    pc[j + 1] = pc[j] + bins[j];
    pnz[j + 1] = pnz[j] + (bins[j] != 0);
    const double b = static_cast<double>(bins[j]);
    pcl[j + 1] = pcl[j] + (bins[j] ? b * std::log(b) : 0.0);
  }
  const std::int64_t total = pc[n];
  double best_kl = std::numeric_limits<double>::quiet_NaN();
  std::size_t best = 0, index = 0;
  for (std::size_t i = opt.start_bin; i <= n; i += opt.stride, ++index) {
    const std::int64_t outliers = total - pc[i];
    const std::int64_t last = bins[i - 1];
    double kl = HUGE_VAL;
    const bool q_zero_at_p = last == 0 && outliers > 0;
    if (total > 0 && pc[i] > 0 && !q_zero_at_p) {
      const std::int64_t p_last = last + outliers;
      double a_sum = pcl[i - 1] + (p_last ? static_cast<double>(p_last) * std::log(static_cast<double>(p_last)) : 0.0);
      double b_sum = 0;
      const std::size_t g_last = (i - 1) * nb / i;
      for (std::size_t g = 0; g < nb; ++g) {
        const std::size_t lo = (g * i + nb - 1) / nb, hi = std::min(((g + 1) * i + nb - 1) / nb, i);
        if (hi <= lo) continue;
        const std::int64_t sum = pc[hi] - pc[lo], nnz = pnz[hi] - pnz[lo];
        if (!nnz) continue;
        const double lq = std::log(static_cast<double>(sum) / static_cast<double>(nnz));
        b_sum += static_cast<double>(sum) * lq;
        if (g == g_last && last != 0) b_sum += static_cast<double>(outliers) * lq;
      }
      const double p = static_cast<double>(total), q = static_cast<double>(pc[i]);
      kl = (a_sum - b_sum) / p + std::log(q) - std::log(p);
    }
    if (!(kl > best_kl)) {  // last minimum
      best_kl = kl;
      best = index;
    }
  }
  return h.edges[best * opt.stride + opt.start_bin];
}

}  // namespace quench::calib
