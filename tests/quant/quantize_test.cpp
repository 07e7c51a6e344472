#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "quant_test_util.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/quant/quantize.hpp"

using quench::dtype;
using quench::qparams;
using quench::shape;
using quench::simd_target;
using quench_test::hex;

namespace {

template <class Q>
std::vector<Q> quantize_vec(const std::vector<float>& x, const qparams& p, const shape& s) {
  std::vector<Q> y(x.size());
  quench::quantize(quench::const_tensor_view<float>(x.data(), s), p, y.data(), y.size() * sizeof(Q));
  return y;
}

/// Quantizes on a forced target.
std::vector<std::uint8_t> run_kernel(const std::vector<float>& x, const qparams& p, const shape& s, simd_target target) {
  std::vector<std::uint8_t> y(quench::storage_bytes(p.type, x.size()), 0);
  quench::quantize(quench::const_tensor_view<float>(x.data(), s), p, y.data(), y.size(), target);
  return y;
}

void check_all_targets_equal(const std::vector<float>& x, const qparams& p, const shape& s) {
  const auto ref = run_kernel(x, p, s, simd_target::scalar);
  for (auto target : quench::supported_simd_targets()) {
    const auto got = run_kernel(x, p, s, target);
    CAPTURE(quench::simd_target_name(target));
    CAPTURE(quench::to_string(p.type));
    REQUIRE(got.size() == ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      if (got[i] != ref[i]) {
        const std::size_t e = quench::is_sub_byte(p.type) ? 2 * i : i / ((quench::bit_width(p.type) + 7) / 8);
        INFO("byte ", i, " element ~", e, " x=", hex(quench_test::to_bits(x[e < x.size() ? e : 0])), " got ",
             int(got[i]), " want ", int(ref[i]));
        CHECK(got[i] == ref[i]);
        return;
      }
    }
  }
}

}  // namespace

TEST_CASE("quantize rounds half to even after a true division") {
  // 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, -2.5 -> -2 (scale 1, zp 0)
  const std::vector<float> x{0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f};
  auto y = quantize_vec<std::int8_t>(x, qparams::per_tensor(dtype::int8, 1.f), {8});
  CHECK(y == std::vector<std::int8_t>{0, 2, 2, 0, -2, -2, 4, -4});
  // With a zero point the tie is decided before adding it: round(2.5) + 3 = 5, not round(5.5) = 6.
  auto u = quantize_vec<std::uint8_t>({2.5f, 3.5f}, qparams::per_tensor(dtype::uint8, 1.f, 3), {2});
  CHECK(u == std::vector<std::uint8_t>{5, 7});

  // x * (1/s) is not x / s: find inputs where the two round differently and require the division.
  const float s = 0.1f;
  const float inv = 1.f / s;
  std::vector<float> xs;
  for (int k = -2000; k <= 2000 && xs.size() < 16; ++k) {
    // Floats a few ulps around (k + 0.5) * s, where the two quotients straddle the tie.
    const std::uint32_t mid = quench_test::to_bits((static_cast<float>(k) + 0.5f) * s);
    for (std::uint32_t u = mid - 3; u <= mid + 3; ++u) {
      const float v = quench_test::from_bits(u);
      if (std::nearbyint(v / s) != std::nearbyint(v * inv)) xs.push_back(v);
    }
  }
  REQUIRE(!xs.empty());
  const auto p = qparams::per_tensor(dtype::int16, s);
  const auto q = quantize_vec<std::int16_t>(xs, p, {static_cast<std::int64_t>(xs.size())});
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(hex(quench_test::to_bits(xs[i])));
    CHECK(q[i] == static_cast<std::int16_t>(std::nearbyint(xs[i] / s)));
  }
  check_all_targets_equal(xs, p, {static_cast<std::int64_t>(xs.size())});
}

TEST_CASE("quantize saturates far out-of-range values, Inf and NaN") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x{1e30f, -1e30f, inf, -inf, nan, -nan, 127.4f, -128.6f, 3.4e38f};
  const shape s{9};
  CHECK(quantize_vec<std::int8_t>(x, qparams::per_tensor(dtype::int8, 1.f), s) ==
        std::vector<std::int8_t>{127, -128, 127, -128, -128, -128, 127, -128, 127});
  CHECK(quantize_vec<std::uint8_t>(x, qparams::per_tensor(dtype::uint8, 1.f, 10), s) ==
        std::vector<std::uint8_t>{255, 0, 255, 0, 0, 0, 137, 0, 255});
  CHECK(quantize_vec<std::int16_t>(x, qparams::per_tensor(dtype::int16, 0.001f), s) ==
        std::vector<std::int16_t>{32767, -32768, 32767, -32768, -32768, -32768, 32767, -32768, 32767});
  CHECK(quantize_vec<std::uint16_t>(x, qparams::per_tensor(dtype::uint16, 1.f, 7), s) ==
        std::vector<std::uint16_t>{65535, 0, 65535, 0, 0, 0, 134, 0, 65535});
  // A huge quotient: x / scale overflows to Inf and still saturates.
  CHECK(quantize_vec<std::int8_t>({3e38f, -3e38f}, qparams::per_tensor(dtype::int8, 1e-10f), {2}) ==
        std::vector<std::int8_t>{127, -128});
}

TEST_CASE("int4 and uint4 are packed low nibble first, with a zero pad nibble") {
  const std::vector<float> x{1.f, -2.f, 7.6f, -9.f, 3.f};  // int4 -> 1, -2, 7, -8, 3
  std::vector<std::uint8_t> y(3, 0xff);
  quench::quantize(quench::const_tensor_view<float>(x.data(), {5}), qparams::per_tensor(dtype::int4, 1.f), y.data(),
                   y.size());
  CHECK(y == std::vector<std::uint8_t>{0xe1, 0x87, 0x03});
  for (std::size_t i = 0; i < 5; ++i) CAPTURE(quench::get_int4(y.data(), i));
  CHECK(quench::get_int4(y.data(), 3) == -8);

  std::vector<std::uint8_t> u(3, 0xff);
  quench::quantize(quench::const_tensor_view<float>(x.data(), {5}), qparams::per_tensor(dtype::uint4, 1.f, 8), u.data(),
                   u.size());
  // 9, 6, 15 (16 saturates), 0 (-1 saturates), 11
  CHECK(u == std::vector<std::uint8_t>{0x69, 0x0f, 0x0b});
}

TEST_CASE("float8 quantization follows the ONNX saturate table") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x{1.f, 1000.f, -1000.f, inf, -inf, 0.5f, -0.f};
  const shape s{7};
  qparams p = qparams::per_tensor(dtype::float8e4m3fn, 2.f);
  auto y = quantize_vec<std::uint8_t>(x, p, s);
  // 0.5 = 0x30, +-448 = 0x7e/0xfe, 0.25 = 0x28, -0 keeps its sign
  CHECK(y == std::vector<std::uint8_t>{0x30, 0x7e, 0xfe, 0x7e, 0xfe, 0x28, 0x80});
  p.saturate = false;
  y = quantize_vec<std::uint8_t>(x, p, s);
  CHECK(y == std::vector<std::uint8_t>{0x30, 0x7f, 0xff, 0x7f, 0xff, 0x28, 0x80});
  p = qparams::per_tensor(dtype::float8e4m3fnuz, 2.f);
  y = quantize_vec<std::uint8_t>(x, p, s);
  // FNUZ: Inf -> NaN (0x80) even when saturating; -0 -> +0.
  CHECK(y == std::vector<std::uint8_t>{0x38, 0x7f, 0xff, 0x80, 0x80, 0x30, 0x00});
  p = qparams::per_tensor(dtype::float8e5m2, 2.f);
  p.saturate = false;
  y = quantize_vec<std::uint8_t>({1e6f, -inf}, p, {2});
  CHECK(y == std::vector<std::uint8_t>{0x7c, 0xfc});
}

TEST_CASE("per-axis and blocked layouts pick the right scale for every element") {
  // x[2][3][2]; per-axis on axis 1 with scales 1, 2, 4 and zero points 0, 1, -1.
  std::vector<float> x(12);
  for (std::size_t i = 0; i < 12; ++i) x[i] = static_cast<float>(i) * 2.f;
  const shape s{2, 3, 2};
  auto p = qparams::per_axis(dtype::int8, 1, {1.f, 2.f, 4.f}, {0, 1, -1});
  auto y = quantize_vec<std::int8_t>(x, p, s);
  CHECK(y == std::vector<std::int8_t>{0, 2, 3, 4, 1, 1, 12, 14, 9, 10, 4, 5});
  p.axis = -2;  // the same axis counted from the back
  CHECK(quantize_vec<std::int8_t>(x, p, s) == y);

  // Blocked on axis 1 (D = 3) with block 2: blocks {0, 1} and {2}; scale shape [2, 2, 2].
  auto b = qparams::blocked(dtype::int8, 1, 2, {2, 2, 2}, {1, 1, 2, 2, 4, 4, 8, 8});
  auto yb = quantize_vec<std::int8_t>(x, b, s);
  // o = 0: rows d = 0, 1 use scale 1; d = 2 uses 2. o = 1: d = 0, 1 use 4; d = 2 uses 8.
  CHECK(yb == std::vector<std::int8_t>{0, 2, 4, 6, 4, 5, 3, 4, 4, 4, 2, 3});

  // Blocked on the last axis (inner = 1), with a short last block: D = 5, B = 2 -> 3 blocks.
  std::vector<float> r{1, 2, 3, 4, 5, 10, 20, 30, 40, 50};
  auto bl = qparams::blocked(dtype::int16, -1, 2, {2, 3}, {1, 2, 4, 10, 20, 40}, {0, 0, 0, 1, 2, 3});
  CHECK(quantize_vec<std::int16_t>(r, bl, {2, 5}) == std::vector<std::int16_t>{1, 2, 2, 2, 1, 2, 3, 4, 4, 4});
}

TEST_CASE("float16 and bfloat16 inputs are divided in float32") {
  std::vector<quench::float16> h;
  std::vector<float> f;
  for (int i = 0; i < 300; ++i) {
    h.push_back(quench::float16(static_cast<float>(i) * 0.37f - 50.f));
    f.push_back(static_cast<float>(h.back()));
  }
  const auto p = qparams::per_tensor(dtype::int8, 0.3f, 4);
  std::vector<std::int8_t> yh(h.size()), yf(h.size());
  quench::quantize(quench::const_tensor_view<quench::float16>(h.data(), {300}), p, yh.data(), yh.size());
  quench::quantize(quench::const_tensor_view<float>(f.data(), {300}), p, yf.data(), yf.size());
  CHECK(yh == yf);

  std::vector<quench::bfloat16> b;
  for (float v : f) b.push_back(quench::bfloat16(v));
  std::vector<float> fb;
  for (auto v : b) fb.push_back(static_cast<float>(v));
  std::vector<std::uint8_t> yb(b.size()), yfb(b.size());
  const auto pu = qparams::per_axis(dtype::uint8, 0, std::vector<float>(300, 0.25f));
  quench::quantize(quench::const_tensor_view<quench::bfloat16>(b.data(), {300}), pu, yb.data(), yb.size());
  quench::quantize(quench::const_tensor_view<float>(fb.data(), {300}), pu, yfb.data(), yfb.size());
  CHECK(yb == yfb);
}

TEST_CASE("every SIMD target gives the scalar path's bits") {
  const dtype types[] = {dtype::int8, dtype::uint8, dtype::int16, dtype::uint16, dtype::int4, dtype::uint4};
  for (dtype t : types) {
    const auto full = quench::full_range(t);
    const std::int32_t zp = t == dtype::int8 ? -3 : (t == dtype::uint8 ? 130 : (t == dtype::int4 ? 1 : full.max / 2));
    for (float scale : {0.25f, 0.1f, 3.7e-3f, 1e-30f}) {
      for (std::size_t n : {1u, 7u, 8u, 15u, 16u, 31u, 32u, 33u, 63u, 64u, 65u, 100u, 257u, 1000u}) {
        CAPTURE(n);
        CAPTURE(scale);
        const auto x = quench_test::hard_floats(n, scale, 200.f, n * 31 + 7);
        const shape s{static_cast<std::int64_t>(n)};
        check_all_targets_equal(x, qparams::per_tensor(t, scale, zp), s);
      }
    }
    // Per-axis with a contiguous run per channel, and with the axis last (per-element scales).
    const shape s3{3, 5, 37};
    const auto x3 = quench_test::hard_floats(3 * 5 * 37, 0.5f, 300.f, 99);
    std::vector<float> sc5{0.5f, 0.1f, 2.f, 0.037f, 1.f};
    std::vector<std::int32_t> zp5{0, full.max / 3, full.min / 2, 1, full.max};
    check_all_targets_equal(x3, qparams::per_axis(t, 1, sc5, zp5), s3);
    std::vector<float> sc37(37);
    std::vector<std::int32_t> zp37(37);
    for (std::size_t i = 0; i < 37; ++i) {
      sc37[i] = 0.01f * static_cast<float>(i + 1);
      zp37[i] = full.min + static_cast<std::int32_t>(i) % (full.max - full.min + 1);
    }
    check_all_targets_equal(x3, qparams::per_axis(t, 2, sc37, zp37), s3);
    check_all_targets_equal(x3, qparams::per_axis(t, 2, sc37), s3);
    // Blocked along a middle axis (vector runs) and the last axis (constant runs).
    std::vector<float> bs(3 * 2 * 37);
    for (std::size_t i = 0; i < bs.size(); ++i) bs[i] = 0.05f * static_cast<float>(i % 11 + 1);
    check_all_targets_equal(x3, qparams::blocked(t, 1, 3, {3, 2, 37}, bs), s3);
    std::vector<float> bl(3 * 5 * 3);
    for (std::size_t i = 0; i < bl.size(); ++i) bl[i] = 0.07f * static_cast<float>(i % 5 + 1);
    check_all_targets_equal(x3, qparams::blocked(t, 2, 16, {3, 5, 3}, bl), s3);
  }
}

TEST_CASE("every SIMD target gives the scalar path's bits: float8 and float16 input") {
  for (dtype t : {dtype::float8e4m3fn, dtype::float8e4m3fnuz, dtype::float8e5m2, dtype::float8e5m2fnuz}) {
    for (bool saturate : {true, false}) {
      for (std::size_t n : {1u, 15u, 16u, 33u, 300u, 1000u}) {
        auto p = qparams::per_tensor(t, 0.37f);
        p.saturate = saturate;
        const auto x = quench_test::hard_floats(n, 0.37f, 60000.f, n + 5);
        check_all_targets_equal(x, p, shape{static_cast<std::int64_t>(n)});
      }
      auto pa = qparams::per_axis(t, -1, {0.5f, 1e-3f, 30.f, 1e-36f, 2.f});
      pa.saturate = saturate;
      check_all_targets_equal(quench_test::hard_floats(5 * 61, 1.f, 500.f, 3), pa, shape{61, 5});
    }
  }
  const auto xf = quench_test::hard_floats(1000, 0.1f, 300.f, 8);
  std::vector<quench::float16> h(xf.size());
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = quench::float16(xf[i]);
  const auto p = qparams::per_axis(dtype::uint8, 0, {0.1f, 0.3f, 0.05f, 1.f}, {0, 128, 255, 7});
  std::vector<std::uint8_t> ref(h.size());
  quench::quantize(quench::const_tensor_view<quench::float16>(h.data(), {4, 250}), p, ref.data(), ref.size(),
                   simd_target::scalar);
  for (auto target : quench::supported_simd_targets()) {
    std::vector<std::uint8_t> got(h.size());
    quench::quantize(quench::const_tensor_view<quench::float16>(h.data(), {4, 250}), p, got.data(), got.size(), target);
    CAPTURE(quench::simd_target_name(target));
    CHECK(got == ref);
  }
}

TEST_CASE("quantize validates before writing") {
  const std::vector<float> x{1.f, 2.f};
  std::vector<std::int8_t> y(2, 42);
  auto view = quench::const_tensor_view<float>(x.data(), {2});
  CHECK_THROWS_AS(quench::quantize(view, qparams::per_tensor(dtype::int8, 0.f), y.data(), y.size()), quench::error);
  try {
    quench::quantize(view, qparams::per_tensor(dtype::int8, 0.f), y.data(), y.size());
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::invalid_value);
    CHECK(std::string(e.what()).find("expected a finite value > 0, found 0") != std::string::npos);
  }
  CHECK(y == std::vector<std::int8_t>{42, 42});
  try {
    quench::quantize(view, qparams::per_tensor(dtype::int8, 1.f), y.data(), 1);
    FAIL("too small an output buffer was accepted");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::invalid_argument);
  }
  try {
    quench::quantize(view, qparams::per_tensor(dtype::int32, 1.f), y.data(), 8);
    FAIL("int32 output was accepted");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::unsupported_dtype);
  }
  // Per-axis scales that do not match the input's axis.
  try {
    quench::quantize(view, qparams::per_axis(dtype::int8, 0, {1.f, 2.f, 3.f}), y.data(), y.size());
    FAIL("3 scales for 2 channels were accepted");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::shape_mismatch);
  }
}

TEST_CASE("tensor overloads") {
  auto x = quench::tensor::from<float>({2, 2}, {0.f, 1.f, -1.f, 100.f}, "act");
  auto q = quench::quantize(x, qparams::per_tensor(dtype::uint8, 0.5f, 128));
  CHECK(q.dtype() == dtype::uint8);
  CHECK(q.name() == "act");
  CHECK(q.shape() == x.shape());
  const auto v = q.view<std::uint8_t>();
  CHECK(v[0] == 128);
  CHECK(v[1] == 130);
  CHECK(v[2] == 126);
  CHECK(v[3] == 255);

  quench::tensor wrong(dtype::int8, {2, 2});
  CHECK_THROWS_AS(quench::quantize(x, qparams::per_tensor(dtype::uint8, 0.5f), wrong), quench::error);
  auto bad = quench::tensor::from<std::int32_t>({1}, {1});
  CHECK_THROWS_AS(quench::quantize(bad, qparams::per_tensor(dtype::uint8, 0.5f)), quench::error);

  quench::tensor y8(dtype::int8, {2, 2});
  quench::quantize(x.view<float>(), qparams::per_tensor(dtype::int8, 1.f), y8.view<std::int8_t>());
  CHECK(y8.view<std::int8_t>()[3] == 100);
}
