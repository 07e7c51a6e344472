#pragma once
// nm_pattern: "keep N of every M consecutive elements", NVIDIA's naming (2:4 keeps two of four).
// Intel Neural Compressor's "N:M" counts the pruned elements instead; the two agree only for 2:4.

#include <cstdint>
#include <string>
#include <string_view>

#include "quench/core/error.hpp"

namespace quench::sparsity {

/// N kept of every M. 2:4 is what Ampere-class sparse tensor cores run for fp16, bf16 and int8;
/// others (1:2, 4:8, 2:8, ...) are for experiments and other hardware. 1 <= N < M <= 16.
///
///     quench::sparsity::nm_pattern p = quench::sparsity::parse_nm_pattern("4:8");
struct nm_pattern {
  int n = 2;  ///< kept per group
  int m = 4;  ///< group size

  constexpr bool is_2_4() const noexcept { return n == 2 && m == 4; }
  friend constexpr bool operator==(nm_pattern a, nm_pattern b) noexcept { return a.n == b.n && a.m == b.m; }
  friend constexpr bool operator!=(nm_pattern a, nm_pattern b) noexcept { return !(a == b); }
};

/// "2:4".
inline std::string to_string(nm_pattern p) { return std::to_string(p.n) + ":" + std::to_string(p.m); }

/// Throws invalid_argument unless 1 <= N < M <= 16. The bound is that of the pattern-order table
/// (2^M entries); ASP itself enumerates M! permutations and is impractical beyond M = 10.
inline void check_nm_pattern(nm_pattern p, const std::string& context = {}) {
  if (p.n < 1 || p.m > 16 || p.n >= p.m)
    throw_invalid_argument(context, "an N:M pattern with 1 <= N < M <= 16", to_string(p));
}

/// Parses "N:M" (e.g. "2:4"); throws invalid_argument naming the text otherwise.
inline nm_pattern parse_nm_pattern(std::string_view text) {
  const auto colon = text.find(':');
  auto parse_int = [&](std::string_view s, int& out) {
    if (s.empty() || s.size() > 3) return false;
    int v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = v;
    return true;
  };
  nm_pattern p;
  if (colon == std::string_view::npos || !parse_int(text.substr(0, colon), p.n) ||
      !parse_int(text.substr(colon + 1), p.m))
    throw_invalid_argument("pattern", "N:M such as 2:4", "'" + std::string(text) + "'");
  check_nm_pattern(p, "pattern");
  return p;
}

}  // namespace quench::sparsity
