#pragma once
// 4-bit integers as ONNX stores them (onnx.proto TensorProto, docs/technical/int4.md): two
// elements per byte, the first element in the LOW nibble, `byte = (second << 4) | (first & 0xF)`;
// an odd element count leaves the high nibble of the last byte zero.

#include <cstddef>
#include <cstdint>

#include "quench/core/dtype.hpp"

namespace quench {

/// One signed 4-bit value in [-8, 7], unpacked.
struct int4 {
  std::int8_t value = 0;
  static constexpr int min = -8;
  static constexpr int max = 7;
};
/// One unsigned 4-bit value in [0, 15], unpacked.
struct uint4 {
  std::uint8_t value = 0;
  static constexpr int min = 0;
  static constexpr int max = 15;
};

QUENCH_DETAIL_DTYPE_OF(int4, int4);
QUENCH_DETAIL_DTYPE_OF(uint4, uint4);

/// Raw nibble `i` (0..15) of packed storage.
inline std::uint8_t get_nibble(const std::uint8_t* packed, std::size_t i) noexcept {
  const std::uint8_t b = packed[i >> 1];
  return (i & 1) ? static_cast<std::uint8_t>(b >> 4) : static_cast<std::uint8_t>(b & 0x0f);
}

/// Writes the low 4 bits of `v` to nibble `i`, leaving the other nibble of that byte alone.
inline void set_nibble(std::uint8_t* packed, std::size_t i, std::uint8_t v) noexcept {
  std::uint8_t& b = packed[i >> 1];
  b = (i & 1) ? static_cast<std::uint8_t>((b & 0x0f) | ((v & 0x0f) << 4))
              : static_cast<std::uint8_t>((b & 0xf0) | (v & 0x0f));
}

/// Element `i` of a packed int4 tensor, sign-extended.
inline int get_int4(const std::uint8_t* packed, std::size_t i) noexcept {
  // Two's complement sign extension without the implementation-defined narrowing to int8_t.
  return (get_nibble(packed, i) ^ 8) - 8;
}
/// Element `i` of a packed uint4 tensor.
inline int get_uint4(const std::uint8_t* packed, std::size_t i) noexcept { return get_nibble(packed, i); }

/// Packs `n` values (already in the 4-bit range; only the low 4 bits are used) into
/// `(n + 1) / 2` bytes.
template <class Int>
inline void pack_4bit(const Int* values, std::size_t n, std::uint8_t* packed) noexcept {
  for (std::size_t i = 0; i + 1 < n; i += 2)
    packed[i >> 1] = static_cast<std::uint8_t>((static_cast<unsigned>(values[i]) & 0x0f) |
                                               ((static_cast<unsigned>(values[i + 1]) & 0x0f) << 4));
  if (n & 1) packed[n >> 1] = static_cast<std::uint8_t>(static_cast<unsigned>(values[n - 1]) & 0x0f);
}

/// Unpacks `n` elements; `is_signed` chooses int4 (sign-extended) or uint4.
template <class Int>
inline void unpack_4bit(const std::uint8_t* packed, std::size_t n, bool is_signed, Int* values) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    values[i] = static_cast<Int>(is_signed ? get_int4(packed, i) : get_uint4(packed, i));
}

}  // namespace quench
