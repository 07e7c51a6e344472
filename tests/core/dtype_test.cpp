#include <doctest/doctest.h>

#include "quench/core/dtype.hpp"

using quench::dtype;

TEST_CASE("dtype numbers are ONNX TensorProto.DataType") {
  CHECK(static_cast<int>(dtype::float32) == 1);
  CHECK(static_cast<int>(dtype::uint8) == 2);
  CHECK(static_cast<int>(dtype::int8) == 3);
  CHECK(static_cast<int>(dtype::int64) == 7);
  CHECK(static_cast<int>(dtype::float16) == 10);
  CHECK(static_cast<int>(dtype::bfloat16) == 16);
  CHECK(static_cast<int>(dtype::float8e4m3fn) == 17);
  CHECK(static_cast<int>(dtype::float8e4m3fnuz) == 18);
  CHECK(static_cast<int>(dtype::float8e5m2) == 19);
  CHECK(static_cast<int>(dtype::float8e5m2fnuz) == 20);
  CHECK(static_cast<int>(dtype::uint4) == 21);
  CHECK(static_cast<int>(dtype::int4) == 22);
}

TEST_CASE("bit widths and storage of packed types") {
  CHECK(quench::bit_width(dtype::int4) == 4);
  CHECK(quench::bit_width(dtype::float16) == 16);
  CHECK(quench::bit_width(dtype::float64) == 64);
  CHECK(quench::storage_bytes(dtype::int4, 5) == 3);
  CHECK(quench::storage_bytes(dtype::uint4, 4) == 2);
  CHECK(quench::storage_bytes(dtype::float32, 5) == 20);
  CHECK(quench::is_float8(dtype::float8e5m2fnuz));
  CHECK_FALSE(quench::is_float8(dtype::float16));
  CHECK(quench::is_signed(dtype::int4));
  CHECK_FALSE(quench::is_signed(dtype::uint4));
  CHECK(quench::is_integral(dtype::uint16));
}

TEST_CASE("names round-trip and unknown numbers are errors") {
  for (int i = 1; i <= 22; ++i) {
    if (!quench::is_known_dtype(i) || i == 8) continue;
    auto t = static_cast<dtype>(i);
    CHECK(quench::dtype_from_name(quench::dtype_name(t)) == t);
  }
  CHECK(quench::dtype_from_name("fp16") == dtype::float16);
  CHECK_THROWS_AS(quench::dtype_from_name("float7"), quench::error);
  CHECK_THROWS_WITH(quench::dtype_from_onnx(14, "tensor 'x'"),
                    "[quench.unsupported_dtype] tensor 'x': ONNX element type 14 is not supported by quench");
  CHECK(quench::dtype_from_onnx(22) == dtype::int4);
}

TEST_CASE("dtype_of maps C++ types") {
  static_assert(quench::dtype_of_v<float> == dtype::float32);
  static_assert(quench::dtype_of_v<const std::int8_t> == dtype::int8);
  static_assert(quench::dtype_of_v<bool> == dtype::bool_);
  static_assert(quench::dtype_of_v<std::uint64_t> == dtype::uint64);
}
