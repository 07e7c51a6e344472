#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "quench/numeric/int4.hpp"

TEST_CASE("int4: the first element goes to the low nibble (onnx.proto, docs/technical/int4.md)") {
  const std::int8_t values[] = {1, -2, 7, -8, 3};
  std::uint8_t packed[3] = {0xaa, 0xaa, 0xaa};
  quench::pack_4bit(values, 5, packed);
  CHECK(packed[0] == 0xe1);  // (second << 4) | first = (0xe << 4) | 0x1
  CHECK(packed[1] == 0x87);
  CHECK(packed[2] == 0x03);  // odd count: high nibble of the last byte is zero
  std::vector<int> back(5);
  quench::unpack_4bit(packed, 5, true, back.data());
  CHECK(back == std::vector<int>{1, -2, 7, -8, 3});
}

TEST_CASE("int4: every nibble, signed and unsigned") {
  for (int v = 0; v < 16; ++v) {
    const std::uint8_t packed[1] = {static_cast<std::uint8_t>(v | (15 - v) << 4)};
    CAPTURE(v);
    CHECK(quench::get_uint4(packed, 0) == v);
    CHECK(quench::get_uint4(packed, 1) == 15 - v);
    CHECK(quench::get_int4(packed, 0) == (v < 8 ? v : v - 16));
    CHECK(quench::get_int4(packed, 1) == (15 - v < 8 ? 15 - v : 15 - v - 16));
  }
}

TEST_CASE("int4: set_nibble leaves the other half of the byte alone") {
  std::uint8_t packed[2] = {0x00, 0xff};
  quench::set_nibble(packed, 0, 0x5);
  quench::set_nibble(packed, 3, 0x1);
  CHECK(packed[0] == 0x05);
  CHECK(packed[1] == 0x1f);
  quench::set_nibble(packed, 1, 0xfa);  // only the low 4 bits are used
  CHECK(packed[0] == 0xa5);
}

TEST_CASE("int4: uint4 round trip of every value, even and odd counts") {
  for (std::size_t n : {0u, 1u, 2u, 15u, 16u, 17u}) {
    std::vector<std::uint8_t> values(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = static_cast<std::uint8_t>(i % 16);
    std::vector<std::uint8_t> packed((n + 1) / 2, 0xff);
    quench::pack_4bit(values.data(), n, packed.data());
    std::vector<std::uint8_t> back(n);
    quench::unpack_4bit(packed.data(), n, false, back.data());
    CAPTURE(n);
    CHECK(back == values);
    if (n & 1) CHECK((packed.back() >> 4) == 0);
  }
}

TEST_CASE("int4: limits and dtypes") {
  CHECK(quench::int4::min == -8);
  CHECK(quench::int4::max == 7);
  CHECK(quench::uint4::max == 15);
  CHECK(quench::dtype_of_v<quench::int4> == quench::dtype::int4);
  CHECK(quench::dtype_of_v<quench::uint4> == quench::dtype::uint4);
}
