#pragma once
// Bit casts between float and its integer pattern, usable in C++17 (std::bit_cast is C++20).

#include <cstdint>
#include <cstring>

namespace quench::detail {

inline std::uint32_t float_bits(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// Shifts `v` right by `shift` bits rounding to nearest, ties to even (IEEE 754 default rounding).
/// `shift` may be 0..63.
constexpr std::uint64_t shift_right_rne(std::uint64_t v, unsigned shift) noexcept {
  if (shift == 0) return v;
  const std::uint64_t kept = v >> shift;
  const std::uint64_t rem = v & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  return kept + ((rem > half || (rem == half && (kept & 1))) ? 1 : 0);
}

}  // namespace quench::detail
