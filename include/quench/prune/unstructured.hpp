#pragma once
// Unstructured pruning masks, as torch.nn.utils.prune computes them:
//
//   l1_unstructured      zero the k entries of smallest |w| (L1Unstructured: topk(|t|, k, largest=False))
//   random_unstructured  zero k entries chosen uniformly at random (RandomUnstructured), seeded
//   global_unstructured  l1 over several tensors at once, as if concatenated (global_unstructured)
//
// Iterative pruning composes as torch's PruningContainer does: given the previous mask, the new
// amount applies to the entries still unpruned (a fraction of the remaining entries, not of the
// tensor), and previously pruned entries stay pruned. Masks are uint8 tensors (1 keep, 0 prune)
// shaped like the weight.
//
// Ties: torch.topk leaves the choice among equal magnitudes to its selection algorithm; quench
// prunes the lower flat index first (in concatenation order for global pruning), so masks are
// deterministic. random_unstructured uses quench's own generator (splitmix64): torch's generator
// cannot be reproduced, so its masks are compared by their statistics, not entry by entry.
// NaN magnitudes are refused (errc::not_finite, naming the tensor).
//
//     quench::tensor m1 = quench::prune::l1_unstructured(w, quench::prune::prune_amount::fraction(0.5));
//     quench::tensor m2 = quench::prune::l1_unstructured(w, quench::prune::prune_amount::fraction(0.5), &m1);
//     // m2 keeps 25 % of w: half of the half that m1 kept
//
// Thread safety: all functions are reentrant.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/prune/amount.hpp"
#include "quench/sparsity/nm_mask.hpp"

namespace quench::detail {

/// A previous mask's bytes, checked against the weight; null for "nothing pruned yet".
inline const std::uint8_t* prune_previous_mask(const tensor* previous, const tensor& w) {
  if (!previous) return nullptr;
  if (previous->shape() != w.shape())
    throw_shape_mismatch(tensor_context(w.name()), "a previous mask of shape " + to_string(w.shape()), to_string(previous->shape()));
  if (previous->dtype() != dtype::uint8 && previous->dtype() != dtype::bool_)
    throw_error(errc::dtype_mismatch, tensor_context(previous->name()), "expected a uint8 or bool mask, found " + to_string(previous->dtype()));
  return reinterpret_cast<const std::uint8_t*>(previous->bytes());
}

/// Zeroes in `mask` the `k` entries of smallest score among those with mask == 1, the lower index
/// first among equal scores. O(n): one selection for the k-th score, one pass.
inline void prune_smallest(const float* score, std::uint8_t* mask, std::size_t n, std::int64_t k) {
  if (k <= 0) return;
  std::vector<float> live;
  live.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (mask[i]) live.push_back(score[i]);
  const auto kk = static_cast<std::size_t>(k);
  std::nth_element(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(kk - 1), live.end());
  const float t = live[kk - 1];  // the k-th smallest live score
  std::size_t below = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (mask[i] && score[i] < t) ++below;
  std::size_t at_threshold = kk - below;
  for (std::size_t i = 0; i < n; ++i) {
    if (!mask[i]) continue;
    if (score[i] < t) mask[i] = 0;
    else if (score[i] == t && at_threshold > 0) mask[i] = 0, --at_threshold;
  }
}

/// splitmix64 (Steele, Lea, Flood 2014): a small generator with the same sequence everywhere.
struct prune_rng {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, range), range >= 1, without modulo bias (rejection below 2^64 mod range).
  std::uint64_t below(std::uint64_t range) noexcept {
    const std::uint64_t reject = (0 - range) % range;
    std::uint64_t x = next();
    while (x < reject) x = next();
    return x % range;
  }
};

inline void prune_check_finite(const std::vector<float>& s, const std::string& name) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (std::isnan(s[i]))
      throw_error(errc::not_finite, tensor_context(name), "element " + std::to_string(i) + " is NaN; pruning ranks finite magnitudes");
}

inline tensor prune_start_mask(const tensor& w, const tensor* previous) {
  tensor mask(dtype::uint8, w.shape(), w.name().empty() ? std::string{} : w.name() + "_mask");
  const std::uint8_t* prev = prune_previous_mask(previous, w);
  auto* m = reinterpret_cast<std::uint8_t*>(mask.bytes());
  for (std::size_t i = 0; i < w.size(); ++i) m[i] = prev ? (prev[i] != 0) : 1;
  return mask;
}

inline std::int64_t prune_count_ones(const tensor& mask) {
  const auto* m = reinterpret_cast<const std::uint8_t*>(mask.bytes());
  return static_cast<std::int64_t>(std::count_if(m, m + mask.size(), [](std::uint8_t b) { return b != 0; }));
}

}  // namespace quench::detail

namespace quench::prune {

/// The mask pruning `a` of the entries of `w` still kept by `previous` (all if null), smallest
/// |w| first (torch's l1_unstructured / L1Unstructured, iterated through PruningContainer). `w` is
/// float32, float16 or bfloat16; throws invalid_argument when a count exceeds the remaining
/// entries and not_finite for NaN.
inline tensor l1_unstructured(const tensor& w, const prune_amount& a, const tensor* previous = nullptr) {
  std::vector<float> score = sparsity::float_values(w);
  for (float& s : score) s = std::fabs(s);
  detail::prune_check_finite(score, w.name());
  tensor mask = detail::prune_start_mask(w, previous);
  const std::int64_t k = units_to_prune(a, detail::prune_count_ones(mask), tensor_context(w.name()));
  detail::prune_smallest(score.data(), reinterpret_cast<std::uint8_t*>(mask.bytes()), score.size(), k);
  return mask;
}

/// The mask pruning `a` of the entries still kept by `previous`, chosen uniformly at random by a
/// generator seeded with `seed` (the same seed gives the same mask on every platform).
inline tensor random_unstructured(const tensor& w, const prune_amount& a, std::uint64_t seed, const tensor* previous = nullptr) {
  tensor mask = detail::prune_start_mask(w, previous);
  auto* m = reinterpret_cast<std::uint8_t*>(mask.bytes());
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < mask.size(); ++i)
    if (m[i]) live.push_back(i);
  const std::int64_t k = units_to_prune(a, static_cast<std::int64_t>(live.size()), tensor_context(w.name()));
  detail::prune_rng rng{seed};
  // The first k steps of a Fisher-Yates shuffle: a uniform k-subset.
  for (std::size_t i = 0; i < static_cast<std::size_t>(k); ++i) {
    const std::size_t j = i + static_cast<std::size_t>(rng.below(live.size() - i));
    std::swap(live[i], live[j]);
    m[live[i]] = 0;
  }
  return mask;
}

/// One mask per tensor, pruning `a` of all their still-unpruned entries together by |w| (torch's
/// global_unstructured with L1Unstructured): a fraction counts the remaining entries of all
/// tensors. `previous` is empty or one (possibly null) mask per tensor.
///
///     auto masks = quench::prune::global_unstructured({&w1, &w2, &w3}, quench::prune::prune_amount::fraction(0.2));
inline std::vector<tensor> global_unstructured(const std::vector<const tensor*>& ws, const prune_amount& a,
                                               const std::vector<const tensor*>& previous = {}) {
  if (!previous.empty() && previous.size() != ws.size())
    throw_invalid_argument("global_unstructured", std::to_string(ws.size()) + " previous masks (or none)", std::to_string(previous.size()));
  std::vector<float> score;
  std::vector<std::uint8_t> mask;
  std::vector<tensor> masks;
  for (std::size_t t = 0; t < ws.size(); ++t) {
    if (!ws[t]) throw_invalid_argument("global_unstructured", "a tensor", "null");
    std::vector<float> s = sparsity::float_values(*ws[t]);
    for (float& v : s) v = std::fabs(v);
    detail::prune_check_finite(s, ws[t]->name());
    masks.push_back(detail::prune_start_mask(*ws[t], previous.empty() ? nullptr : previous[t]));
    score.insert(score.end(), s.begin(), s.end());
    const auto* m = reinterpret_cast<const std::uint8_t*>(masks.back().bytes());
    mask.insert(mask.end(), m, m + masks.back().size());
  }
  const auto live = static_cast<std::int64_t>(std::count(mask.begin(), mask.end(), std::uint8_t{1}));
  const std::int64_t k = units_to_prune(a, live, "global_unstructured");
  detail::prune_smallest(score.data(), mask.data(), score.size(), k);
  std::size_t at = 0;
  for (tensor& m : masks) {
    std::copy(mask.begin() + static_cast<std::ptrdiff_t>(at), mask.begin() + static_cast<std::ptrdiff_t>(at + m.size()),
              reinterpret_cast<std::uint8_t*>(m.bytes()));
    at += m.size();
  }
  return masks;
}

/// The fraction of zeros in a mask.
inline double mask_sparsity(const tensor& mask) {
  return mask.size() ? 1.0 - static_cast<double>(detail::prune_count_ones(mask)) / static_cast<double>(mask.size()) : 0.0;
}

}  // namespace quench::prune
