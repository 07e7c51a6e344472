#pragma once
// Channel permutation for N:M sparsity (Pool & Yu, "Channel Permutations for N:M Sparsity",
// NeurIPS 2021; apex ASP's permutation_lib): reorder the input channels of a weight -- and the
// producer's output channels with them, so the network computes the same function -- such that the
// N:M mask keeps more magnitude.
//
// The weight is seen as ASP sees it: a matrix of `rows` x C whose groups of M run along C (for a
// Conv [K, C, R, S], rows = K*R*S). A permutation p puts original column p[j] at position j;
// stripe s holds positions sM .. sM+M-1, and the retained magnitude is the sum over rows and
// stripes of the N largest |w| in the stripe.
//
// Search: ASP's "channel swaps" (permutation_search_kernels/channel_swap.py): repeatedly swap two
// columns of different stripes where that helps most, many swaps per round on disjoint stripes,
// until no swap helps (or the time limit). quench evaluates every swap in O(1) from tables that
// depend only on one stripe: with the other M-1 columns of stripe s fixed, their top-N sum base[r]
// and their N-th largest value t[r] give the top-N sum with any column x swapped in as
// base[r] + max(0, x[r] - t[r]). So S_si(x) = sum_r max(0, x[r] - t_si[r]) for all (stripe, slot,
// column) is one C x C x rows pass (vectorised, detail/permutation_kernels.hpp), every swap gain is
// two table lookups, and after a round only the swapped stripes' rows are recomputed. A 1024 x 1024
// layer takes seconds, where the Python search takes minutes without a GPU.
//
// The result reports the retained magnitude before and after, and the per-row unstructured
// bound (the N/M largest of every row, which no permutation can beat), from which ASP's
// "efficacy" (after - before) / (bound - before) follows.
//
//     std::vector<float> m = ...;                          // [rows][C] row-major weights
//     auto r = quench::sparsity::search_permutation(m.data(), rows, c);
//     // r.permutation: new column j = old column r.permutation[j]; r.magnitude_after >= r.magnitude_before
//
// Deterministic: the same matrix gives the same permutation on every SIMD target.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/sparsity/detail/permutation_kernels.hpp"
#include "quench/sparsity/nm_pattern.hpp"

namespace quench::sparsity {

struct permutation_options {
  nm_pattern pattern;
  double time_limit_seconds = 60;  ///< stop after the round that passes this
  int max_rounds = 100000;
  /// A swap must gain more than this fraction of the mean retained magnitude per stripe: float
  /// sums are not exact, and an improvement below it is noise.
  double min_relative_gain = 1e-6;
  /// Moves out of a local optimum (the least harmful swap) before giving up. Each costs a
  /// round; on 1024 x 1024 normal weights 100 of them add 0.03 % retained magnitude for 2.5x the
  /// time, so none by default (ASP's Channel_Swap also defaults to none; its callers ask for 100).
  int escape_attempts = 0;
  /// Rounds during which the two columns of an escape may not move again.
  int escape_tabu_rounds = 4;
  simd_target target = best_simd_target();
};

struct permutation_result {
  std::vector<std::int64_t> permutation;  ///< new column j = old column permutation[j]
  double magnitude_total = 0;   ///< sum |w|
  double magnitude_before = 0;  ///< kept by the N:M mask in the original order
  double magnitude_after = 0;   ///< kept by the N:M mask after the permutation
  double magnitude_bound = 0;   ///< kept by an unstructured N/M mask of every row
  std::int64_t swaps = 0, rounds = 0;
  double seconds = 0;
  bool timed_out = false;

  /// ASP's efficacy: the share of the possible improvement that was found (1 if none possible).
  double efficacy() const noexcept {
    const double room = magnitude_bound - magnitude_before;
    return room > 0 ? (magnitude_after - magnitude_before) / room : 1.0;
  }
  bool is_identity() const noexcept {
    for (std::size_t j = 0; j < permutation.size(); ++j)
      if (permutation[j] != static_cast<std::int64_t>(j)) return false;
    return true;
  }
};

namespace detail_perm {

/// Top-n sum and n-th largest of `m` values (m <= 16).
inline void top_n(const float* v, int m, int n, double& sum, float& nth) noexcept {
  float s[16];
  std::copy(v, v + m, s);
  std::partial_sort(s, s + n, s + m, [](float a, float b) { return a > b; });
  sum = 0;
  for (int i = 0; i < n; ++i) sum += s[i];
  nth = s[n - 1];
}

inline void excess(const float* a, std::size_t columns, std::size_t rows, const float* t, float* s, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512: return quench::detail::perm_excess_avx512(a, columns, rows, t, s);
    case simd_target::avx2: return quench::detail::perm_excess_avx2(a, columns, rows, t, s);
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  quench::detail::perm_excess_ref(a, columns, rows, t, s);
}

}  // namespace detail_perm

/// N:M retained magnitude of a [rows][c] row-major matrix with its columns in `order` (identity
/// if empty), in double.
inline double retained_nm(const float* m, std::size_t rows, std::size_t c, nm_pattern p, const std::vector<std::int64_t>& order = {}) {
  double total = 0;
  float g[16];
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t s = 0; s < c / static_cast<std::size_t>(p.m); ++s) {
      for (int i = 0; i < p.m; ++i) {
        const std::size_t col = s * static_cast<std::size_t>(p.m) + static_cast<std::size_t>(i);
        g[i] = std::fabs(m[r * c + (order.empty() ? col : static_cast<std::size_t>(order[col]))]);
      }
      double sum;
      float nth;
      detail_perm::top_n(g, p.m, p.n, sum, nth);
      total += sum;
    }
  return total;
}

/// Searches a column permutation of the [rows][c] row-major matrix `m` that raises its N:M retained
/// magnitude (see the header comment). Throws invalid_argument for c not a multiple of M and
/// not_finite for NaN/Inf.
inline permutation_result search_permutation(const float* m, std::size_t rows, std::size_t c, const permutation_options& opt = {}) {
  check_nm_pattern(opt.pattern, "permutation");
  const auto M = static_cast<std::size_t>(opt.pattern.m);
  const int N = opt.pattern.n;
  if (c % M != 0) throw_invalid_argument("permutation", "a channel count that is a multiple of " + std::to_string(M), std::to_string(c));
  const auto start = std::chrono::steady_clock::now();
  const std::size_t stripes = c / M;
  const std::size_t padded = (rows + 15) / 16 * 16;  // zero rows add nothing to any sum
  // a[x]: column x of |m|, contiguous, in the original order.
  std::vector<float> a(c * padded, 0.f);
  permutation_result res;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t x = 0; x < c; ++x) {
      const float v = m[r * c + x];
      if (!std::isfinite(v)) throw_error(errc::not_finite, "permutation", "element [" + std::to_string(r) + ", " + std::to_string(x) + "] is not finite");
      a[x * padded + r] = std::fabs(v);
      res.magnitude_total += std::fabs(v);
    }
  {
    std::vector<float> row(c);
    const auto keep = c * static_cast<std::size_t>(N) / M;
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t x = 0; x < c; ++x) row[x] = a[x * padded + r];
      std::nth_element(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(keep - 1), row.end(), std::greater<float>());
      for (std::size_t i = 0; i < keep; ++i) res.magnitude_bound += row[i];
    }
  }
  std::vector<std::int64_t> col(c);  // position -> original column
  for (std::size_t j = 0; j < c; ++j) col[j] = static_cast<std::int64_t>(j);

  // Per position p = (stripe, slot): t_p (N-th largest of the other M-1 columns, per row), base_p
  // (their top-N sum); per stripe f (top-N sum of all M). S[p][x] = sum_r max(0, a[x][r] - t_p[r]).
  std::vector<float> t(c * padded, 0.f), S(c * c);
  std::vector<double> base(c), f(stripes);
  auto refresh = [&](std::size_t s) {
    float g[16], others[16];
    f[s] = 0;
    for (std::size_t i = 0; i < M; ++i) base[s * M + i] = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t i = 0; i < M; ++i) g[i] = a[static_cast<std::size_t>(col[s * M + i]) * padded + r];
      double sum;
      float nth;
      detail_perm::top_n(g, static_cast<int>(M), N, sum, nth);
      f[s] += sum;
      for (std::size_t i = 0; i < M; ++i) {
        int k = 0;
        for (std::size_t j = 0; j < M; ++j)
          if (j != i) others[k++] = g[j];
        detail_perm::top_n(others, static_cast<int>(M) - 1, N, sum, nth);
        base[s * M + i] += sum;
        t[(s * M + i) * padded + r] = nth;
      }
    }
    for (std::size_t i = 0; i < M; ++i)
      detail_perm::excess(a.data(), c, padded, t.data() + (s * M + i) * padded, S.data() + (s * M + i) * c, opt.target);
  };
  for (std::size_t s = 0; s < stripes; ++s) refresh(s);
  for (double v : f) res.magnitude_before += v;
  const double eps = opt.min_relative_gain * std::max(res.magnitude_before, 1e-30) / static_cast<double>(std::max<std::size_t>(stripes, 1));

  // D_p(x): the change of stripe(p)'s retained magnitude when column x replaces position p.
  auto delta = [&](std::size_t p, std::int64_t x) {
    return base[p] + static_cast<double>(S[p * c + static_cast<std::size_t>(x)]) - f[p / M];
  };
  struct candidate {
    double gain;
    std::size_t p, q;
  };
  std::vector<candidate> best(stripes > 1 ? stripes * (stripes - 1) / 2 : 0);
  std::vector<char> used(stripes);
  // Escapes from local optima (Pool & Yu's bounded regressions): when no swap helps, take the
  // least harmful one whose columns were not moved by a recent escape, keep those two columns
  // out of further swaps for a few rounds so the next round cannot just undo it, and remember
  // the best permutation seen.
  std::vector<std::int64_t> tabu_until(c, 0);
  double current = res.magnitude_before, best_total = current;
  std::vector<std::int64_t> best_col = col;
  int escapes = 0;
  while (stripes > 1 && res.rounds < opt.max_rounds) {
    ++res.rounds;
    // The best swap of every stripe pair, then disjoint pairs greedily by gain.
    std::size_t k = 0;
    candidate least_harm{-HUGE_VAL, 0, 0};
    for (std::size_t s = 0; s < stripes; ++s)
      for (std::size_t u = s + 1; u < stripes; ++u, ++k) {
        candidate b{-HUGE_VAL, 0, 0};
        for (std::size_t i = 0; i < M; ++i)
          for (std::size_t j = 0; j < M; ++j) {
            const std::size_t p = s * M + i, q = u * M + j;
            if (tabu_until[static_cast<std::size_t>(col[p])] > res.rounds || tabu_until[static_cast<std::size_t>(col[q])] > res.rounds)
              continue;
            const double g = delta(p, col[q]) + delta(q, col[p]);
            if (g > b.gain) b = candidate{g, p, q};
          }
        best[k] = b;
        if (b.gain > least_harm.gain) least_harm = b;
      }
    std::vector<candidate> order;
    for (const auto& b : best)
      if (b.gain > eps) order.push_back(b);
    if (order.empty()) {
      if (escapes >= opt.escape_attempts || least_harm.gain == -HUGE_VAL) break;
      ++escapes;
      order.push_back(least_harm);
      tabu_until[static_cast<std::size_t>(col[least_harm.p])] = tabu_until[static_cast<std::size_t>(col[least_harm.q])] =
          res.rounds + opt.escape_tabu_rounds;
    }
    std::sort(order.begin(), order.end(), [](const candidate& x, const candidate& y) {
      return std::tie(y.gain, x.p, x.q) < std::tie(x.gain, y.p, y.q);
    });
    std::fill(used.begin(), used.end(), 0);
    std::vector<std::size_t> touched;
    for (const auto& b : order) {
      const std::size_t s = b.p / M, u = b.q / M;
      if (used[s] || used[u]) continue;
      used[s] = used[u] = 1;
      std::swap(col[b.p], col[b.q]);
      touched.push_back(s);
      touched.push_back(u);
      ++res.swaps;
    }
    for (std::size_t s : touched) refresh(s);
    current = 0;
    for (double v : f) current += v;
    if (current > best_total) best_total = current, best_col = col;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > opt.time_limit_seconds) {
      res.timed_out = true;
      break;
    }
  }
  res.permutation = best_col;
  col = best_col;
  res.magnitude_after = retained_nm(m, rows, c, opt.pattern, col);
  // Float tables can mislead by a rounding error; the exact sums decide.
  if (res.magnitude_after < res.magnitude_before) {
    for (std::size_t j = 0; j < c; ++j) res.permutation[j] = static_cast<std::int64_t>(j);
    res.magnitude_after = retained_nm(m, rows, c, opt.pattern);
  }
  res.magnitude_before = retained_nm(m, rows, c, opt.pattern);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

}  // namespace quench::sparsity
