#pragma once
// bfloat16: the top 16 bits of an IEEE binary32 (1 sign, 8 exponent, 7 mantissa bits).
//
// float -> bfloat16 rounds to nearest, ties to even, on the full float range including float
// subnormals (AVX-512 BF16's vcvtneps2bf16 flushes those to zero, so quench does not use it);
// values beyond the largest finite bfloat16 round to +-Inf (FLT_MAX itself rounds to Inf). NaN
// becomes `(bits >> 16) | 0x40`: sign and top payload bits kept, quiet bit set, as vcvtneps2bf16
// does; a signalling NaN therefore never truncates to Inf. References differ only on NaN:
// c10::BFloat16 returns 0x7fc0 (sign dropped), torch's vectorised CPU cast returns 0xffff for
// every NaN, Eigen returns 0x7fc0/0xffc0.
//
// bfloat16 -> float is exact (a 16-bit shift); every bfloat16 pattern, signalling NaNs included,
// keeps its bits.

#include <cstdint>

#include "quench/core/dtype.hpp"
#include "quench/numeric/bits.hpp"

namespace quench {

namespace detail {

inline std::uint16_t float_to_bfloat16_bits(float f) noexcept {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry into the exponent is the
  // correct result, up to and including overflow to Inf.
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bfloat16_bits_to_float(std::uint16_t b) noexcept {
  return bits_float(static_cast<std::uint32_t>(b) << 16);
}

}  // namespace detail

struct bfloat16 {
  std::uint16_t storage = 0;

  constexpr bfloat16() noexcept = default;
  explicit bfloat16(float f) noexcept : storage(detail::float_to_bfloat16_bits(f)) {}
  static constexpr bfloat16 from_bits(std::uint16_t b) noexcept {
    bfloat16 h;
    h.storage = b;
    return h;
  }
  constexpr std::uint16_t bits() const noexcept { return storage; }
  explicit operator float() const noexcept { return detail::bfloat16_bits_to_float(storage); }
  float to_float() const noexcept { return detail::bfloat16_bits_to_float(storage); }

  constexpr bool is_nan() const noexcept { return (storage & 0x7fffu) > 0x7f80u; }
  constexpr bool is_inf() const noexcept { return (storage & 0x7fffu) == 0x7f80u; }

  static constexpr bfloat16 max() noexcept { return from_bits(0x7f7f); }
  static constexpr bfloat16 lowest() noexcept { return from_bits(0xff7f); }
  static constexpr bfloat16 infinity() noexcept { return from_bits(0x7f80); }
  static constexpr bfloat16 quiet_nan() noexcept { return from_bits(0x7fc0); }

  /// Bitwise equality (distinguishes +0/-0, equates identical NaN patterns).
  friend constexpr bool same_bits(bfloat16 a, bfloat16 b) noexcept { return a.storage == b.storage; }
};

static_assert(sizeof(bfloat16) == 2, "bfloat16 must be two bytes to alias ONNX bfloat16 data");

QUENCH_DETAIL_DTYPE_OF(bfloat16, bfloat16);

}  // namespace quench
