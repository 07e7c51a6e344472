#pragma once
// Multidirectional (numpy-style) broadcasting, as ONNX defines it (docs/Broadcasting.md), and a
// loop over the broadcast output that hands each kernel contiguous inner runs.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"

namespace quench::runtime {

/// The broadcast of `shapes`; throws shape_mismatch naming `context`.
inline shape broadcast_shapes(const std::vector<const shape*>& shapes, const std::string& context) {
  std::size_t rank = 0;
  for (const shape* s : shapes) rank = std::max(rank, s->rank());
  std::vector<std::int64_t> out(rank, 1);
  for (const shape* s : shapes) {
    const std::size_t off = rank - s->rank();
    for (std::size_t i = 0; i < s->rank(); ++i) {
      const std::int64_t d = (*s)[i];
      std::int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const shape* t : shapes) all += (all.empty() ? "" : " and ") + to_string(*t);
      throw_shape_mismatch(context, "broadcastable shapes", all);
    }
  }
  return shape(std::move(out));
}

/// Element strides of `s` viewed as broadcast to `out` (0 along broadcast dimensions).
inline std::vector<std::size_t> broadcast_strides(const shape& s, const shape& out) {
  std::vector<std::size_t> st(out.rank(), 0);
  const std::size_t off = out.rank() - s.rank();
  std::size_t stride = 1;
  for (std::size_t i = s.rank(); i-- > 0;) {
    if (s[i] != 1) st[off + i] = stride;
    stride *= static_cast<std::size_t>(s[i]);
  }
  return st;
}

/// Calls `f(out_offset, in_offsets, inner_count, inner_strides)` for each run along the last
/// axis of `out`: elements out_offset + j and in_offsets[k] + j * inner_strides[k], j < count.
template <std::size_t N, class F>
void for_each_broadcast_run(const shape& out, const std::vector<std::size_t> (&strides)[N], F&& f) {
  const std::size_t total = out.numel();
  if (total == 0) return;
  const std::size_t rank = out.rank();
  if (rank == 0) {
    std::size_t offs[N] = {};
    std::size_t inner[N] = {};
    f(std::size_t{0}, offs, std::size_t{1}, inner);
    return;
  }
  const std::size_t inner_n = static_cast<std::size_t>(out[rank - 1]);
  std::size_t inner[N];
  for (std::size_t k = 0; k < N; ++k) inner[k] = strides[k][rank - 1];
  std::vector<std::size_t> idx(rank, 0);
  std::size_t offs[N] = {};
  for (std::size_t base = 0; base < total; base += inner_n) {
    f(base, offs, inner_n, inner);
    // Advance the outer index (all axes but the last), updating each input offset.
    for (std::size_t ax = rank - 1; ax-- > 0;) {
      if (++idx[ax] < static_cast<std::size_t>(out[ax])) {
        for (std::size_t k = 0; k < N; ++k) offs[k] += strides[k][ax];
        break;
      }
      for (std::size_t k = 0; k < N; ++k) offs[k] -= strides[k][ax] * (idx[ax] - 1);
      idx[ax] = 0;
    }
  }
}

}  // namespace quench::runtime
