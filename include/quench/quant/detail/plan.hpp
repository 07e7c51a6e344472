#pragma once
// The layout of a validated qparams over an input shape, reduced to runs of contiguous elements
// that share one scale ("const" runs) or take consecutive scales ("vec" runs). Quantize and
// dequantize walk the same runs, so the index arithmetic exists once.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "quench/core/shape.hpp"
#include "quench/quant/qparams.hpp"

namespace quench::detail {

struct quant_plan {
  quant_granularity granularity = quant_granularity::per_tensor;
  std::size_t count = 0;  ///< elements of the input
  std::size_t outer = 1;  ///< product of dims before axis
  std::size_t dim = 1;    ///< D[axis]
  std::size_t inner = 1;  ///< product of dims after axis
  std::size_t block = 0;  ///< block_size (blocked)
  std::size_t blocks = 0; ///< ceil(dim / block) (blocked)
  const float* scale = nullptr;
  const std::int32_t* zero_point = nullptr;  ///< null: all zero
};

/// `p` must already be validated against `input`.
inline quant_plan make_plan(const qparams& p, const shape& input) noexcept {
  quant_plan plan;
  plan.granularity = p.granularity;
  plan.count = input.numel();
  plan.scale = p.scales.data();
  plan.zero_point = p.zero_points.empty() ? nullptr : p.zero_points.data();
  if (p.granularity == quant_granularity::per_tensor) {
    plan.dim = plan.count;
    return plan;
  }
  const auto r = static_cast<std::int64_t>(input.rank());
  const auto axis = static_cast<std::size_t>(p.axis < 0 ? p.axis + r : p.axis);
  plan.outer = input.outer(axis);
  plan.dim = static_cast<std::size_t>(input[axis]);
  plan.inner = input.inner(axis);
  if (p.granularity == quant_granularity::blocked) {
    plan.block = static_cast<std::size_t>(p.block_size);
    plan.blocks = (plan.dim + plan.block - 1) / plan.block;
  }
  return plan;
}

/// Calls `on_const(offset, length, param)` for a run of `length` elements starting at element
/// `offset` that all use parameter index `param`, and `on_vec(offset, length, param)` for a run
/// whose element j uses parameter index `param + j`. Runs are visited in increasing offset and
/// cover every element once.
template <class OnConst, class OnVec>
inline void for_each_run(const quant_plan& p, OnConst&& on_const, OnVec&& on_vec) {
  if (p.count == 0) return;
  switch (p.granularity) {
    case quant_granularity::per_tensor: on_const(std::size_t{0}, p.count, std::size_t{0}); return;
    case quant_granularity::per_axis:
      if (p.inner == 1) {
        // Axis is the last dim: the scales themselves are contiguous along each row.
        for (std::size_t o = 0; o < p.outer; ++o) on_vec(o * p.dim, p.dim, std::size_t{0});
      } else {
        for (std::size_t o = 0; o < p.outer; ++o)
          for (std::size_t c = 0; c < p.dim; ++c) on_const((o * p.dim + c) * p.inner, p.inner, c);
      }
      return;
    case quant_granularity::blocked:
      if (p.inner == 1) {
        for (std::size_t o = 0; o < p.outer; ++o)
          for (std::size_t b = 0; b < p.blocks; ++b) {
            const std::size_t start = b * p.block;
            on_const(o * p.dim + start, std::min(p.block, p.dim - start), o * p.blocks + b);
          }
      } else {
        // Scale shape [outer, blocks, inner]: row d uses the inner-long scale row of block d / B.
        for (std::size_t o = 0; o < p.outer; ++o)
          for (std::size_t d = 0; d < p.dim; ++d)
            on_vec((o * p.dim + d) * p.inner, p.inner, (o * p.blocks + d / p.block) * p.inner);
      }
      return;
  }
}

}  // namespace quench::detail
