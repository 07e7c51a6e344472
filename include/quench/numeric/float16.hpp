#pragma once
// IEEE 754 binary16 ("half"): 1 sign, 5 exponent, 10 mantissa bits, bias 15.
//
// float -> float16 rounds to nearest, ties to even; values whose rounded magnitude exceeds 65504
// (that is |x| >= 65520) become +-Inf; float subnormal inputs round to zero or a half subnormal.
// NaN stays NaN, with its sign, its top 9 payload bits and the quiet bit set: the result of the
// F16C instruction vcvtps2ph and of torch. (numpy's astype(float16) agrees on every quiet NaN but
// keeps signalling NaNs signalling; quench always returns a quiet NaN.)
//
// float16 -> float is exact; a NaN keeps sign and payload unchanged, signalling or not, as numpy's
// astype(float32) does. (F16C's vcvtph2ps sets the quiet bit; the SIMD converters correct for it.)
// So every non-NaN and every quiet-NaN pattern survives float16 -> float -> float16 unchanged,
// and a signalling NaN pattern comes back with the quiet bit set.

#include <cstdint>

#include "quench/core/dtype.hpp"
#include "quench/numeric/bits.hpp"

namespace quench {

namespace detail {

inline std::uint16_t float_to_half_bits(float f) noexcept {
  const std::uint32_t x = float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)  // NaN: quiet, payload truncated
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 and Inf
  if (ax >= 0x38800000u) {  // normal half range [2^-14, 65520)
    // Rebias 127 -> 15 and drop 13 bits; adding 0xfff plus the lowest kept bit first rounds half
    // to even without a data-dependent branch. A carry out of the mantissa correctly bumps the
    // exponent; 65519.99 stays at 0x7bff.
    const std::uint32_t lsb = (ax >> 13) & 1u;
    return static_cast<std::uint16_t>(sign | ((ax - 0x38000000u + 0xfffu + lsb) >> 13));
  }
  // Half subnormal: value = sig * 2^(e - 150), half quantum 2^-24, so shift by 126 - e.
  const std::uint32_t e = ax >> 23;
  if (e < 102) return sign;  // below 2^-25 (incl. float subnormals): rounds to zero
  const std::uint32_t sig = (ax & 0x7fffffu) | 0x800000u;
  return static_cast<std::uint16_t>(sign | shift_right_rne(sig, 126 - e));
}

inline float half_bits_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  std::uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m << 13));  // Inf, NaN keeps its payload
  if (e != 0) return bits_float(sign | ((e + 112) << 23) | (m << 13));
  if (m == 0) return bits_float(sign);
  // Subnormal half: normalise into a float normal.
  std::uint32_t exp = 113;
  while (!(m & 0x400u)) {
    m <<= 1;
    --exp;
  }
  return bits_float(sign | (exp << 23) | ((m & 0x3ffu) << 13));
}

}  // namespace detail

/// A half-precision value; arithmetic is the user's business (convert to float).
struct float16 {
  std::uint16_t storage = 0;

  constexpr float16() noexcept = default;
  explicit float16(float f) noexcept : storage(detail::float_to_half_bits(f)) {}
  static constexpr float16 from_bits(std::uint16_t b) noexcept {
    float16 h;
    h.storage = b;
    return h;
  }
  constexpr std::uint16_t bits() const noexcept { return storage; }
  explicit operator float() const noexcept { return detail::half_bits_to_float(storage); }
  float to_float() const noexcept { return detail::half_bits_to_float(storage); }

  constexpr bool is_nan() const noexcept { return (storage & 0x7fffu) > 0x7c00u; }
  constexpr bool is_inf() const noexcept { return (storage & 0x7fffu) == 0x7c00u; }

  static constexpr float16 max() noexcept { return from_bits(0x7bff); }  ///< 65504
  static constexpr float16 lowest() noexcept { return from_bits(0xfbff); }
  static constexpr float16 infinity() noexcept { return from_bits(0x7c00); }
  static constexpr float16 quiet_nan() noexcept { return from_bits(0x7e00); }

  /// Bitwise equality (distinguishes +0/-0, equates identical NaN patterns).
  friend constexpr bool same_bits(float16 a, float16 b) noexcept { return a.storage == b.storage; }
};

static_assert(sizeof(float16) == 2, "float16 must be two bytes to alias ONNX float16 data");

QUENCH_DETAIL_DTYPE_OF(float16, float16);

}  // namespace quench
