#pragma once
// Structured pruning masks, as torch.nn.utils.prune's ln_structured / LnStructured computes them:
// whole slices along `dim` (filters along 0, input channels along 1 of a Conv or Linear weight)
// ranked by their Ln norm over all other dimensions (torch.norm(t, p=n, dim=all but dim)); the
// round(amount * channels) smallest are zeroed (torch keeps topk(norm, channels - k)).
//
// Composition is PruningContainer's: given a previous mask, channels it pruned entirely are out of
// the running (the amount is a fraction of the channels left), norms are taken of the masked
// weight (torch prunes `module.weight`, which is weight_orig * mask), and the new mask is the
// channel mask times the previous one, so entries pruned before stay pruned.
//
// Norms (computed in double): n = 1, 2, any p > 0 ((sum |x|^p)^(1/p)), +inf (max |x|), -inf
// (min |x|), 0 (count of non-zeros) -- torch.norm's vector norms. Ties between equal norms prune
// the lower channel index first (torch leaves that to topk).
//
//     // prune 25 % of a Conv's output filters by L2 norm
//     quench::tensor m = quench::prune::ln_structured(w, quench::prune::prune_amount::fraction(0.25), 2, 0);
//
// Thread safety: all functions are reentrant.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/prune/amount.hpp"
#include "quench/prune/unstructured.hpp"
#include "quench/sparsity/nm_mask.hpp"

namespace quench::prune {

/// The Ln norm of every slice of `w` (float32 values, layout [outer, channels, inner] around the
/// channel axis) over all other dimensions, masked by `mask` when not null.
inline std::vector<double> channel_norms(const float* w, const std::uint8_t* mask, std::size_t outer, std::size_t channels,
                                         std::size_t inner, double n) {
  std::vector<double> acc(channels, n == -std::numeric_limits<double>::infinity() ? std::numeric_limits<double>::infinity() : 0.0);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < inner; ++i) {
        const std::size_t at = (o * channels + c) * inner + i;
        const double x = mask && !mask[at] ? 0.0 : std::fabs(static_cast<double>(w[at]));
        double& a = acc[c];
        if (n == 1) a += x;
        else if (n == 2) a += x * x;
        else if (std::isinf(n)) a = n > 0 ? std::max(a, x) : std::min(a, x);
        else if (n == 0) a += x != 0 ? 1.0 : 0.0;
        else a += std::pow(x, n);
      }
  for (double& a : acc) {
    if (n == 2) a = std::sqrt(a);
    else if (n != 1 && n != 0 && !std::isinf(n)) a = std::pow(a, 1.0 / n);
  }
  return acc;
}

/// Throws invalid_argument unless `n` is 0, > 0 or +-inf.
inline void check_norm(double n, const std::string& context = "norm") {
  if (std::isnan(n) || (n < 0 && !std::isinf(n)))
    throw_invalid_argument(context, "an Ln norm with n >= 0 or n = +-inf", std::to_string(n));
}

/// The channel mask of ln_structured: which of the `norms.size()` channels `w` keeps (1) after
/// pruning `a` of the channels still in `live` (1 = not yet pruned), smallest norm first.
inline std::vector<std::uint8_t> prune_channels(const std::vector<double>& norms, std::vector<std::uint8_t> live,
                                                const prune_amount& a, const std::string& context = {}) {
  std::int64_t remaining = 0;
  for (auto l : live) remaining += l ? 1 : 0;
  const std::int64_t k = units_to_prune(a, remaining, context);
  // A stable sort on the norm: among equal norms the lower channel comes first.
  std::vector<std::size_t> order;
  for (std::size_t c = 0; c < norms.size(); ++c)
    if (live[c]) order.push_back(c);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return norms[x] < norms[y]; });
  for (std::int64_t i = 0; i < k; ++i) live[order[static_cast<std::size_t>(i)]] = 0;
  return live;
}

/// The mask pruning `a` of the slices of `w` along `dim` (negative counts from the end) by Ln norm
/// `n`, composed with `previous` (see the header comment). `w` is float32, float16 or bfloat16 of
/// rank >= 2; throws invalid_argument (bad n, count above the channels left), out_of_range (dim)
/// and shape_mismatch (rank < 2, mask shape), naming the tensor.
inline tensor ln_structured(const tensor& w, const prune_amount& a, double n, std::int64_t dim, const tensor* previous = nullptr) {
  const std::string ctx = tensor_context(w.name());
  check_norm(n, ctx);
  if (w.rank() < 2) throw_shape_mismatch(ctx, "a tensor of rank >= 2 for structured pruning", "rank " + std::to_string(w.rank()));
  const std::size_t axis = normalize_axis(dim, w.rank(), ctx);
  const std::vector<float> values = sparsity::float_values(w);
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::isnan(values[i])) throw_error(errc::not_finite, ctx, "element " + std::to_string(i) + " is NaN; pruning ranks finite norms");
  const std::uint8_t* prev = detail::prune_previous_mask(previous, w);
  const std::size_t outer = w.shape().outer(axis), channels = static_cast<std::size_t>(w.shape()[axis]), inner = w.shape().inner(axis);
  // Channels the previous mask removed entirely are out of the running (torch: mask.sum(others) != 0).
  std::vector<std::uint8_t> live(channels, prev ? 0 : 1);
  if (prev)
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t i = 0; i < inner; ++i)
          if (prev[(o * channels + c) * inner + i]) live[c] = 1;
  const std::vector<double> norms = channel_norms(values.data(), prev, outer, channels, inner, n);
  const std::vector<std::uint8_t> keep = prune_channels(norms, live, a, ctx);
  tensor mask(dtype::uint8, w.shape(), w.name().empty() ? std::string{} : w.name() + "_mask");
  auto* m = reinterpret_cast<std::uint8_t*>(mask.bytes());
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < inner; ++i) {
        const std::size_t at = (o * channels + c) * inner + i;
        m[at] = keep[c] && (!prev || prev[at]) ? 1 : 0;
      }
  return mask;
}

}  // namespace quench::prune
