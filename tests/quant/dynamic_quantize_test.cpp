#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "quench/quant/dynamic_quantize.hpp"

using quench::tensor;

TEST_CASE("DynamicQuantizeLinear follows ONNX Runtime's float32 formula") {
  // The ONNX operator documentation's example: x = [0, 2, -3, -2.5, 1.34, 0.5].
  auto x = tensor::from<float>({6}, {0.f, 2.f, -3.f, -2.5f, 1.34f, 0.5f});
  auto r = quench::dynamic_quantize_linear(x);
  const float scale = (2.f - -3.f) / 255.f;
  CHECK(r.scale == scale);
  CHECK(r.zero_point == 153);
  const auto y = r.y.view<std::uint8_t>();
  CHECK(y[0] == 153);
  CHECK(y[1] == 255);
  CHECK(y[2] == 0);
  CHECK(y[3] == 26);   // -2.5 / scale = -127.49999 in float32
  CHECK(y[4] == 221);
  CHECK(y[5] == 179);  // 0.5 / scale = 25.5 exactly: ties to 26
}

TEST_CASE("DynamicQuantizeLinear: the range always includes 0, an all-zero input gets scale 1") {
  auto pos = tensor::from<float>({3}, {1.f, 2.f, 3.f});
  auto r = quench::dynamic_quantize_linear(pos);
  CHECK(r.zero_point == 0);
  CHECK(r.scale == 3.f / 255.f);
  auto zeros = tensor::from<float>({2}, {0.f, -0.f});
  r = quench::dynamic_quantize_linear(zeros);
  CHECK(r.scale == 1.f);
  CHECK(r.zero_point == 0);
  CHECK(r.y.view<std::uint8_t>()[1] == 0);
  auto neg = tensor::from<float>({2}, {-1.f, -4.f});
  r = quench::dynamic_quantize_linear(neg);
  CHECK(r.zero_point == 255);
}

TEST_CASE("DynamicQuantizeLinear rejects NaN and Inf and non-float input") {
  auto x = tensor::from<float>({2}, {1.f, std::numeric_limits<float>::quiet_NaN()});
  try {
    quench::dynamic_quantize_linear(x);
    FAIL("NaN accepted");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::not_finite);
  }
  auto i = tensor::from<std::int32_t>({1}, {1});
  CHECK_THROWS_AS(quench::dynamic_quantize_linear(i), quench::error);
}
