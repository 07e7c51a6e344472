#pragma once
// Scalar bulk converters: the reference every SIMD kernel is tested against bit for bit, and the
// code that runs where no SIMD target is available. Always compiled.

#include <cstddef>
#include <cstdint>

#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"

namespace quench::detail {

inline void float_to_half_ref(const float* src, float16* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = float16::from_bits(float_to_half_bits(src[i]));
}

inline void half_to_float_ref(const float16* src, float* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = half_bits_to_float(src[i].bits());
}

inline void float_to_bfloat16_ref(const float* src, bfloat16* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = bfloat16::from_bits(float_to_bfloat16_bits(src[i]));
}

inline void bfloat16_to_float_ref(const bfloat16* src, float* dst, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = bfloat16_bits_to_float(src[i].bits());
}

template <class Float8>
inline void float_to_float8_ref(const float* src, Float8* dst, std::size_t n, bool saturate) noexcept {
  using format = typename Float8::format;
  for (std::size_t i = 0; i < n; ++i)
    dst[i] = Float8::from_bits(float_to_float8_bits<format>(src[i], saturate));
}

/// All 256 codes decoded once, at compile time: decoding is then one load per element.
template <class Format>
struct float8_decode_table {
  std::uint32_t bits[256];
  constexpr float8_decode_table() noexcept : bits() {
    for (int c = 0; c < 256; ++c) bits[c] = float8_bits_to_float_bits<Format>(static_cast<std::uint8_t>(c));
  }
};

template <class Format>
inline constexpr float8_decode_table<Format> float8_decode_table_v{};

template <class Float8>
inline void float8_to_float_ref(const Float8* src, float* dst, std::size_t n) noexcept {
  const std::uint32_t* table = float8_decode_table_v<typename Float8::format>.bits;
  for (std::size_t i = 0; i < n; ++i) dst[i] = bits_float(table[src[i].bits()]);
}

}  // namespace quench::detail
