#pragma once
// Portable N:M mask kernels: the reference every SIMD target must match byte for byte.
//
// A weight is viewed as [outer, reduce, inner] (row-major): groups are M consecutive indices of the
// reduce axis, for every (outer, inner) pair, so element j of group g at (o, i) lives at
// ((o * reduce) + g * M + j) * inner + i. That covers ASP's layouts without copying: a Linear
// weight [K, C] is [K, C, 1]; a Conv weight [K, C, R, S] grouped along C is [K, C, R*S]; an ONNX
// MatMul weight [C, N] grouped along C is [1, C, N].
//
// Scores are ASP's: |w| summed over a pattern's kept positions in float32, the first maximum in
// ASP's pattern order winning (detail/asp_pattern_order.hpp). For N = 1 and N = 2 every pattern
// score is one float or the float sum of two, which torch.matmul computes identically whatever its
// accumulation order (the other terms are exact zeros), so the masks equal ASP's bit for bit,
// rounding-induced ties included. For N >= 3 torch's float32 sum of N terms depends on its BLAS's
// order; quench ranks by exact magnitudes instead (the N largest |w|, ties in ASP's order), which
// equals ASP whenever its float sums do not round two different subsets to one value.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace quench::detail {

/// Groups along the middle axis of [outer, reduce, inner]; reduce is a multiple of M.
struct nm_layout {
  std::size_t outer = 1, reduce = 0, inner = 1;
  std::size_t size() const noexcept { return outer * reduce * inner; }
};

/// Mask bytes of the six 2:4 patterns in ASP's order, byte j = 1 when element j is kept
/// (little-endian: element 0 is the low byte).
inline constexpr std::uint32_t pattern_bytes_2_4[6] = {0x01000100u, 0x00000101u, 0x00010100u,
                                                       0x00010001u, 0x01000001u, 0x01010000u};

inline bool nm_is_finite(float f) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return (b & 0x7f800000u) != 0x7f800000u;
}

/// The 2:4 choice for magnitudes a0..a3 (non-negative): ASP's six sums in its order, first maximum.
inline std::uint32_t select_2_4(float a0, float a1, float a2, float a3) noexcept {
  const float s[6] = {a1 + a3, a0 + a1, a1 + a2, a0 + a2, a0 + a3, a2 + a3};
  int best = 0;
  for (int k = 1; k < 6; ++k)
    if (s[k] > s[best]) best = k;
  return pattern_bytes_2_4[best];
}

/// The kept bit pattern (bit j = element j kept) for M magnitudes `a`, given ASP's pattern ranks.
inline std::uint32_t select_n_m(const float* a, int n, int m, const std::uint16_t* rank) noexcept {
  std::uint32_t best = 0;
  if (n == 1 || n == 2) {
    // Every score is exactly ASP's float32 score: a[i], or a[i] + a[j].
    float top = -1.f;
    for (int i = 0; i < m; ++i) {
      if (n == 1) {
        const std::uint32_t p = 1u << i;
        if (a[i] > top || (a[i] == top && rank[p] < rank[best])) top = a[i], best = p;
        continue;
      }
      for (int j = i + 1; j < m; ++j) {
        const float s = a[i] + a[j];
        const std::uint32_t p = (1u << i) | (1u << j);
        if (s > top || (s == top && rank[p] < rank[best])) top = s, best = p;
      }
    }
    return best;
  }
  // N >= 3: the N largest magnitudes; a tie at the N-th value is settled by ASP's order.
  float sorted[16];
  std::copy(a, a + m, sorted);
  std::nth_element(sorted, sorted + (n - 1), sorted + m, [](float x, float y) { return x > y; });
  const float t = sorted[n - 1];
  std::uint32_t must = 0, tie = 0;
  for (int i = 0; i < m; ++i) {
    if (a[i] > t) must |= 1u << i;
    else if (a[i] == t) tie |= 1u << i;
  }
  const int k = n - __builtin_popcount(must);
  if (__builtin_popcount(tie) == k) return must | tie;
  std::uint16_t best_rank = 0xffff;
  for (std::uint32_t sub = tie;; sub = (sub - 1) & tie) {  // every subset of the tied positions
    if (__builtin_popcount(sub) == k && rank[must | sub] < best_rank) best_rank = rank[must | sub], best = must | sub;
    if (sub == 0) break;
  }
  return best;
}

/// 2:4 over a layout; false if some element is NaN or Inf (the mask is then incomplete).
inline bool nm_mask_2_4_ref(const float* w, std::uint8_t* mask, const nm_layout& l) noexcept {
  bool finite = true;
  const std::size_t groups = l.reduce / 4, stride = l.inner;
  for (std::size_t o = 0; o < l.outer; ++o)
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t base = (o * l.reduce + g * 4) * stride;
      for (std::size_t i = 0; i < stride; ++i) {
        const float* p = w + base + i;
        const float v0 = p[0], v1 = p[stride], v2 = p[2 * stride], v3 = p[3 * stride];
        finite = finite && nm_is_finite(v0) && nm_is_finite(v1) && nm_is_finite(v2) && nm_is_finite(v3);
        const std::uint32_t keep = select_2_4(std::fabs(v0), std::fabs(v1), std::fabs(v2), std::fabs(v3));
        std::uint8_t* q = mask + base + i;
        q[0] = keep & 1u;
        q[stride] = (keep >> 8) & 1u;
        q[2 * stride] = (keep >> 16) & 1u;
        q[3 * stride] = keep >> 24;
      }
    }
  return finite;
}

/// Any N:M over a layout with ASP's pattern ranks (asp_pattern_ranks(n, m)); false on NaN/Inf.
inline bool nm_mask_ref(const float* w, std::uint8_t* mask, const nm_layout& l, int n, int m,
                        const std::uint16_t* rank) noexcept {
  bool finite = true;
  const std::size_t groups = l.reduce / static_cast<std::size_t>(m), stride = l.inner;
  float a[16];
  for (std::size_t o = 0; o < l.outer; ++o)
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t base = (o * l.reduce + g * static_cast<std::size_t>(m)) * stride;
      for (std::size_t i = 0; i < stride; ++i) {
        bool group_finite = true;
        for (int j = 0; j < m; ++j) {
          const float v = w[base + i + static_cast<std::size_t>(j) * stride];
          group_finite = group_finite && nm_is_finite(v);
          a[j] = std::fabs(v);
        }
        finite = finite && group_finite;
        // NaN would break nth_element's ordering; the caller throws for such a tensor anyway.
        const std::uint32_t keep = group_finite ? select_n_m(a, n, m, rank) : 0u;
        for (int j = 0; j < m; ++j) mask[base + i + static_cast<std::size_t>(j) * stride] = (keep >> j) & 1u;
      }
    }
  return finite;
}

}  // namespace quench::detail
