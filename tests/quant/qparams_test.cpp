#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "quench/quant/qparams.hpp"

using quench::dtype;
using quench::errc;
using quench::qparams;
using quench::shape;

namespace {

/// The error code `f` throws, checking the message has the "expected ..., found ..." form.
template <class F>
errc error_of(F&& f, const char* must_contain = "expected") {
  try {
    f();
  } catch (const quench::error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find(must_contain) != std::string::npos);
    return e.code();
  }
  FAIL("no quench::error was thrown");
  return errc::invalid_argument;
}

}  // namespace

TEST_CASE("type ranges") {
  CHECK(quench::full_range(dtype::int8).min == -128);
  CHECK(quench::full_range(dtype::uint4).max == 15);
  CHECK(quench::full_range(dtype::int4).min == -8);
  CHECK(quench::full_range(dtype::uint16).max == 65535);
  CHECK(quench::is_quantized_type(dtype::float8e5m2fnuz));
  CHECK_FALSE(quench::is_quantized_type(dtype::float32));
}

TEST_CASE("unusable scales are invalid_value and name the entry") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float s : {0.f, -0.f, -1.f, nan, inf, -inf}) {
    CAPTURE(s);
    CHECK(error_of([&] { quench::validate(qparams::per_tensor(dtype::int8, s)); }, "scale[0]") == errc::invalid_value);
  }
  CHECK(error_of([&] { quench::validate(qparams::per_axis(dtype::int8, 0, {1.f, 2.f, 0.f})); }, "scale[2]") ==
        errc::invalid_value);
  // Subnormal scales are positive and finite: allowed (the quotient may overflow, and saturates).
  quench::validate(qparams::per_tensor(dtype::int8, std::numeric_limits<float>::denorm_min()));
}

TEST_CASE("zero points outside the type's range are invalid_value") {
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::int8, 1.f, 128)); }, "[-128, 127]") ==
        errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::uint8, 1.f, -1)); }, "found -1") ==
        errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::uint4, 1.f, 16)); }) == errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::int4, 1.f, -9)); }) == errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::uint16, 1.f, 65536)); }) == errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::int32, 1.f, 5)); }) == errc::invalid_value);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::float8e4m3fn, 1.f, 0x38)); }) ==
        errc::invalid_value);
  quench::validate(qparams::per_tensor(dtype::int16, 1.f, -32768));
  quench::validate(qparams::per_tensor(dtype::uint8, 1.f, 255));
}

TEST_CASE("scale and zero-point shapes must agree with each other and the input") {
  // Zero points not one per scale.
  CHECK(error_of([] { quench::validate(qparams::per_axis(dtype::int8, 0, {1.f, 2.f}, {0, 0, 0})); }) ==
        errc::shape_mismatch);
  // Per-axis scale count vs D[axis].
  CHECK(error_of([] { quench::validate(qparams::per_axis(dtype::int8, 1, {1.f, 2.f}), shape{4, 3}); },
                 "expected shape [3]") == errc::shape_mismatch);
  quench::validate(qparams::per_axis(dtype::int8, 1, {1.f, 2.f, 3.f}), shape{4, 3});
  quench::validate(qparams::per_axis(dtype::int8, -1, {1.f, 2.f, 3.f}), shape{4, 3});
  // Axis out of range.
  CHECK(error_of([] { quench::validate(qparams::per_axis(dtype::int8, 2, {1.f}), shape{4, 1}); }, "axis 2") ==
        errc::out_of_range);
  CHECK(error_of([] { quench::validate(qparams::per_axis(dtype::int8, -3, {1.f}), shape{1, 4}); }, "axis -3") ==
        errc::out_of_range);
  // param_shape disagreeing with the scale count.
  qparams p = qparams::per_axis(dtype::int8, 0, {1.f, 2.f});
  p.param_shape = shape{3};
  CHECK(error_of([&] { quench::validate(p); }) == errc::shape_mismatch);
  // Per-tensor with more than one scale.
  p = qparams::per_tensor(dtype::int8, 1.f);
  p.scales.push_back(2.f);
  CHECK(error_of([&] { quench::validate(p); }) == errc::shape_mismatch);
}

TEST_CASE("blocked layout: block_size and scale shape") {
  // x [4, 10], blocks of 4 along axis 1: scale [4, 3].
  auto ok = qparams::blocked(dtype::int4, 1, 4, {4, 3}, std::vector<float>(12, 1.f));
  quench::validate(ok, shape{4, 10});
  for (std::int64_t b : {0, -2}) {
    auto p = ok;
    p.block_size = b;
    CHECK(error_of([&] { quench::validate(p, shape{4, 10}); }, "block_size") == errc::invalid_argument);
  }
  auto wrong = qparams::blocked(dtype::int4, 1, 4, {4, 2}, std::vector<float>(8, 1.f));
  CHECK(error_of([&] { quench::validate(wrong, shape{4, 10}); }, "expected shape [4, 3]") == errc::shape_mismatch);
  auto wrong_other_dim = qparams::blocked(dtype::int4, 1, 4, {2, 3}, std::vector<float>(6, 1.f));
  CHECK(error_of([&] { quench::validate(wrong_other_dim, shape{4, 10}); }) == errc::shape_mismatch);
  auto wrong_rank = qparams::blocked(dtype::int4, 1, 4, {3}, std::vector<float>(3, 1.f));
  CHECK(error_of([&] { quench::validate(wrong_rank, shape{4, 10}); }) == errc::shape_mismatch);
  // block_size on a per-axis layout is a mistake, not ignored.
  auto pa = qparams::per_axis(dtype::int8, 0, {1.f});
  pa.block_size = 4;
  CHECK(error_of([&] { quench::validate(pa); }) == errc::invalid_argument);
}

TEST_CASE("unsupported types") {
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::float32, 1.f)); }) == errc::unsupported_dtype);
  CHECK(error_of([] { quench::validate(qparams::per_tensor(dtype::int64, 1.f)); }) == errc::unsupported_dtype);
}

TEST_CASE("qparams_from_tensors decides the layout as ONNX does") {
  using quench::tensor;
  auto s0 = tensor::from<float>({}, {0.5f}, "s");
  auto z0 = tensor::from<std::uint8_t>({}, {3}, "z");
  auto p = quench::qparams_from_tensors(s0, &z0, dtype::uint8, 1, 0);
  CHECK(p.granularity == quench::quant_granularity::per_tensor);
  CHECK(p.zero_point(0) == 3);

  auto s1 = tensor::from<float>({1}, {0.5f});
  CHECK(quench::qparams_from_tensors(s1, nullptr, dtype::int8, 1, 0).granularity ==
        quench::quant_granularity::per_tensor);

  auto s3 = tensor::from<float>({3}, {0.5f, 1.f, 2.f}, "s");
  auto z3 = tensor::from<std::int8_t>({3}, {0, -1, 1}, "z");
  p = quench::qparams_from_tensors(s3, &z3, dtype::int8, 0, 0);
  CHECK(p.granularity == quench::quant_granularity::per_axis);
  CHECK(p.zero_point(1) == -1);

  // Scale and zero point of different shapes, or types.
  auto z2 = tensor::from<std::int8_t>({2}, {0, 0}, "z");
  CHECK(error_of([&] { quench::qparams_from_tensors(s3, &z2, dtype::int8, 0, 0); }, "tensor 'z'") ==
        errc::shape_mismatch);
  CHECK(error_of([&] { quench::qparams_from_tensors(s3, &z3, dtype::uint8, 0, 0); }) == errc::dtype_mismatch);
  // Rank-2 scale without block_size.
  auto s22 = tensor::from<float>({2, 2}, {1.f, 1.f, 1.f, 1.f});
  CHECK(error_of([&] { quench::qparams_from_tensors(s22, nullptr, dtype::int8, 0, 0); }) == errc::shape_mismatch);
  p = quench::qparams_from_tensors(s22, nullptr, dtype::int8, 0, 3);
  CHECK(p.granularity == quench::quant_granularity::blocked);
  quench::validate(p, shape{6, 2});

  // Packed int4 zero points and float16 scales.
  quench::tensor s4(dtype::float16, {3});
  for (std::size_t i = 0; i < 3; ++i) s4.view<quench::float16>()[i] = quench::float16(0.25f);
  quench::tensor z4(dtype::int4, {3});
  reinterpret_cast<std::uint8_t*>(z4.bytes())[0] = 0xf7;  // 7, -1
  reinterpret_cast<std::uint8_t*>(z4.bytes())[1] = 0x08;  // -8
  p = quench::qparams_from_tensors(s4, &z4, dtype::int4, 0, 0);
  CHECK(p.scales[2] == 0.25f);
  CHECK(p.zero_points == std::vector<std::int32_t>{7, -1, -8});
}
