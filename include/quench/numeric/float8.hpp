#pragma once
// The four 8-bit float formats of ONNX (opset 19, docs/Operators.md "Cast" and
// docs/technical/float8.md), from "FP8 Formats for Deep Learning" (Micikevicius et al. 2022) and
// the FNUZ variants of Graphcore/AMD:
//
//   type       exp/man bias  Inf  NaN                     -0   max finite
//   e4m3fn     4/3     7     no   S.1111.111              yes  448
//   e4m3fnuz   4/3     8     no   0x80 (only)             no   240
//   e5m2       5/2     15    yes  S.11111.{01,10,11}      yes  57344
//   e5m2fnuz   5/2     16    no   0x80 (only)             no   57344
//
// float -> float8 rounds to nearest, ties to even. A value whose rounded magnitude exceeds the max
// finite value overflows; what it becomes follows the ONNX table:
//
//   saturate=true   +-Inf and overflow -> +-max (NaN stays NaN), except that Inf -> NaN for FNUZ
//   saturate=false  overflow and +-Inf -> NaN, except e5m2 where they become +-Inf
//
// The ONNX table writes "FLT_MAX" for E5M2 with saturate and Inf input; quench keeps the sign
// (-Inf -> -57344), as the onnx reference implementation and ONNX Runtime do.
//
// -0 becomes +0 in the FNUZ types (they have no negative zero), and so does a negative value that
// rounds to zero. Float subnormals are far below every float8 subnormal and round to (signed) zero.
//
// NaN: ONNX says only "NaN". quench writes the canonical S.1111.111 (e4m3fn) or S.11111.11 (e5m2)
// with the input's sign, and 0x80 for FNUZ, as ONNX Runtime, the onnx reference implementation
// (for quiet NaNs) and torch do. float8 -> float gives the float quiet NaN 0x7fc00000 with the
// code's sign. So all 256 codes of e4m3fn, e4m3fnuz and e5m2fnuz survive float8 -> float ->
// float8, and of e5m2 all but the non-canonical NaNs S.11111.01 and S.11111.10, which come back
// as S.11111.11.

#include <cstdint>

#include "quench/core/dtype.hpp"
#include "quench/numeric/bits.hpp"

namespace quench {

namespace detail {

/// Format description; one instantiation per float8 type.
template <int ExpBits, int ManBits, int Bias, bool Fnuz>
struct float8_format {
  static constexpr int exp_bits = ExpBits;
  static constexpr int man_bits = ManBits;
  static constexpr int bias = Bias;
  static constexpr bool fnuz = Fnuz;
  static constexpr bool has_inf = !Fnuz && ExpBits == 5;
  /// Largest finite code of the positive half.
  static constexpr std::uint8_t max_code = Fnuz ? 0x7f : (ExpBits == 4 ? 0x7e : 0x7b);
  static constexpr std::uint8_t nan_code = Fnuz ? 0x80 : 0x7f;  // sign bit is added for non-FNUZ
  static constexpr std::uint8_t inf_code = 0x7c;                // e5m2 only
};

using e4m3fn_format = float8_format<4, 3, 7, false>;
using e4m3fnuz_format = float8_format<4, 3, 8, true>;
using e5m2_format = float8_format<5, 2, 15, false>;
using e5m2fnuz_format = float8_format<5, 2, 16, true>;

template <class Format>
inline std::uint8_t float_to_float8_bits(float f, bool saturate) noexcept {
  const std::uint32_t x = float_bits(f);
  const std::uint8_t sign = static_cast<std::uint8_t>((x >> 24) & 0x80u);
  const std::uint32_t ax = x & 0x7fffffffu;
  auto nan = [&]() -> std::uint8_t {
    return Format::fnuz ? Format::nan_code : static_cast<std::uint8_t>(sign | Format::nan_code);
  };
  auto overflow = [&]() -> std::uint8_t {
    if (saturate) return static_cast<std::uint8_t>(sign | Format::max_code);
    if (Format::has_inf) return static_cast<std::uint8_t>(sign | Format::inf_code);
    return nan();
  };
  if (ax > 0x7f800000u) return nan();
  if (ax == 0x7f800000u) return (saturate && Format::fnuz) ? nan() : overflow();

  const int e = static_cast<int>(ax >> 23);
  auto zero = [&]() -> std::uint8_t { return Format::fnuz ? 0 : sign; };
  if (e == 0) return zero();
  const int unbiased = e - 127;
  constexpr int min_normal = 1 - Format::bias;
  // Significand 1.m as a 24-bit integer; drop the bits below the target quantum.
  const std::uint64_t sig = (ax & 0x7fffffu) | 0x800000u;
  const int target_exp = unbiased < min_normal ? min_normal : unbiased;
  const int shift = 23 - Format::man_bits + (target_exp - unbiased);
  if (shift > 25) return zero();  // below half the smallest subnormal
  std::uint64_t rounded = shift_right_rne(sig, static_cast<unsigned>(shift));
  std::uint32_t code;
  if (unbiased < min_normal) {
    // Subnormal: the rounded count of quanta is the code itself; 2^man_bits is the smallest normal.
    code = static_cast<std::uint32_t>(rounded);
  } else {
    int biased = target_exp + Format::bias;
    if (rounded >> (Format::man_bits + 1)) {  // rounding carried into the next binade
      rounded >>= 1;
      ++biased;
    }
    if (biased >= (1 << Format::exp_bits)) return overflow();
    code = (static_cast<std::uint32_t>(biased) << Format::man_bits) |
           static_cast<std::uint32_t>(rounded & ((1u << Format::man_bits) - 1));
  }
  if (code > Format::max_code) return overflow();
  if (code == 0) return zero();
  return static_cast<std::uint8_t>(sign | code);
}

/// The float bit pattern of float8 code `b`; constexpr so that lookup tables are constants.
template <class Format>
constexpr std::uint32_t float8_bits_to_float_bits(std::uint8_t b) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(b & 0x80u) << 24;
  const std::uint32_t mag = b & 0x7fu;
  if (Format::fnuz) {
    if (b == 0x80) return 0x7fc00000u;
  } else if (Format::has_inf) {
    if (mag == Format::inf_code) return sign | 0x7f800000u;
    if (mag > Format::inf_code) return sign | 0x7fc00000u;
  } else if (mag == 0x7f) {
    return sign | 0x7fc00000u;
  }
  const std::uint32_t e = mag >> Format::man_bits;
  std::uint32_t m = mag & ((1u << Format::man_bits) - 1);
  if (e != 0) return sign | ((e - Format::bias + 127) << 23) | (m << (23 - Format::man_bits));
  if (m == 0) return sign;
  // Subnormal: normalise.
  int exp = 1 - Format::bias + 127;
  while (!(m & (1u << Format::man_bits))) {
    m <<= 1;
    --exp;
  }
  return sign | (static_cast<std::uint32_t>(exp) << 23) |
         ((m & ((1u << Format::man_bits) - 1)) << (23 - Format::man_bits));
}

template <class Format>
inline float float8_bits_to_float(std::uint8_t b) noexcept {
  return bits_float(float8_bits_to_float_bits<Format>(b));
}

/// The value type shared by the four formats; the dtype parameter keeps them distinct types.
template <class Format, dtype Type>
struct float8_base {
  using format = Format;
  static constexpr dtype type = Type;
  std::uint8_t storage = 0;

  constexpr float8_base() noexcept = default;
  /// Rounds to nearest even; `saturate` as ONNX Cast/QuantizeLinear (default true).
  explicit float8_base(float f, bool saturate = true) noexcept
      : storage(float_to_float8_bits<Format>(f, saturate)) {}
  static constexpr float8_base from_bits(std::uint8_t b) noexcept {
    float8_base v;
    v.storage = b;
    return v;
  }
  constexpr std::uint8_t bits() const noexcept { return storage; }
  explicit operator float() const noexcept { return float8_bits_to_float<Format>(storage); }
  float to_float() const noexcept { return float8_bits_to_float<Format>(storage); }
  bool is_nan() const noexcept {
    if (Format::fnuz) return storage == 0x80;
    if (Format::has_inf) return (storage & 0x7f) > Format::inf_code;
    return (storage & 0x7f) == 0x7f;
  }
  static constexpr float8_base max() noexcept { return from_bits(Format::max_code); }
  static constexpr float8_base lowest() noexcept {
    return from_bits(static_cast<std::uint8_t>(0x80 | Format::max_code));
  }
};

}  // namespace detail

using float8e4m3fn = detail::float8_base<detail::e4m3fn_format, dtype::float8e4m3fn>;
using float8e4m3fnuz = detail::float8_base<detail::e4m3fnuz_format, dtype::float8e4m3fnuz>;
using float8e5m2 = detail::float8_base<detail::e5m2_format, dtype::float8e5m2>;
using float8e5m2fnuz = detail::float8_base<detail::e5m2fnuz_format, dtype::float8e5m2fnuz>;

static_assert(sizeof(float8e4m3fn) == 1, "float8 values must be one byte to alias ONNX data");

QUENCH_DETAIL_DTYPE_OF(float8e4m3fn, float8e4m3fn);
QUENCH_DETAIL_DTYPE_OF(float8e4m3fnuz, float8e4m3fnuz);
QUENCH_DETAIL_DTYPE_OF(float8e5m2, float8e5m2);
QUENCH_DETAIL_DTYPE_OF(float8e5m2fnuz, float8e5m2fnuz);

}  // namespace quench
