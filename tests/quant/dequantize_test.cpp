#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "quant_test_util.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

using quench::dtype;
using quench::qparams;
using quench::shape;
using quench::simd_target;
using quench_test::hex;
using quench_test::to_bits;

namespace {

std::vector<float> run_kernel(const std::vector<std::uint8_t>& x, const qparams& p, const shape& s, simd_target target) {
  std::vector<float> y(s.numel());
  quench::dequantize(x.data(), x.size(), p, quench::tensor_view<float>(y.data(), s), target);
  return y;
}

void check_all_targets_equal(const std::vector<std::uint8_t>& x, const qparams& p, const shape& s) {
  const auto ref = run_kernel(x, p, s, simd_target::scalar);
  for (auto target : quench::supported_simd_targets()) {
    const auto got = run_kernel(x, p, s, target);
    CAPTURE(quench::simd_target_name(target));
    CAPTURE(quench::to_string(p.type));
    for (std::size_t i = 0; i < ref.size(); ++i) {
      if (to_bits(got[i]) != to_bits(ref[i])) {
        INFO("element ", i, " got ", hex(to_bits(got[i])), " want ", hex(to_bits(ref[i])));
        CHECK(to_bits(got[i]) == to_bits(ref[i]));
        return;
      }
    }
  }
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  quench_test::rng r(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(r.next() >> 56);
  return v;
}

}  // namespace

TEST_CASE("dequantize is (x - zero_point) * scale in float32") {
  const std::vector<std::int8_t> q{-128, -1, 0, 1, 127};
  std::vector<float> y(5);
  quench::dequantize(quench::const_tensor_view<std::int8_t>(q.data(), {5}), qparams::per_tensor(dtype::int8, 0.1f, -3),
                     quench::tensor_view<float>(y.data(), {5}));
  for (std::size_t i = 0; i < 5; ++i) {
    const float want = static_cast<float>(q[i] + 3) * 0.1f;
    CAPTURE(i);
    CHECK(to_bits(y[i]) == to_bits(want));
  }

  // int32 (bias): large values round once when converted to float.
  const std::vector<std::int32_t> b{16777217, -2147483647 - 1, 2147483647, 7};
  std::vector<float> yb(4);
  quench::dequantize(quench::const_tensor_view<std::int32_t>(b.data(), {4}), qparams::per_tensor(dtype::int32, 0.5f),
                     quench::tensor_view<float>(yb.data(), {4}));
  CHECK(yb[0] == 8388608.f);
  CHECK(yb[1] == -1073741824.f);
  CHECK(yb[2] == 1073741824.f);
  CHECK(yb[3] == 3.5f);
}

TEST_CASE("dequantize 4-bit and float8") {
  const std::vector<std::uint8_t> packed{0x8f, 0x07, 0x01};  // int4: -1, -8, 7, 0, 1
  std::vector<float> y(5);
  quench::dequantize(packed.data(), packed.size(), qparams::per_tensor(dtype::int4, 2.f, 1),
                     quench::tensor_view<float>(y.data(), {5}));
  CHECK(y == std::vector<float>{-4.f, -18.f, 12.f, -2.f, 0.f});
  quench::dequantize(packed.data(), packed.size(), qparams::per_tensor(dtype::uint4, 2.f, 1),
                     quench::tensor_view<float>(y.data(), {5}));
  CHECK(y == std::vector<float>{28.f, 14.f, 12.f, -2.f, 0.f});

  const std::vector<std::uint8_t> f8{0x38, 0xfe, 0x7f, 0x80, 0x01};
  quench::dequantize(f8.data(), f8.size(), qparams::per_tensor(dtype::float8e4m3fn, 0.5f),
                     quench::tensor_view<float>(y.data(), {5}));
  CHECK(y[0] == 0.5f);
  CHECK(y[1] == -224.f);
  CHECK(std::isnan(y[2]));
  CHECK(to_bits(y[3]) == 0x80000000u);  // -0 stays -0
  CHECK(y[4] == std::ldexp(1.f, -9) * 0.5f);
  quench::dequantize(f8.data(), f8.size(), qparams::per_tensor(dtype::float8e4m3fnuz, 1.f),
                     quench::tensor_view<float>(y.data(), {5}));
  CHECK(std::isnan(y[3]));  // 0x80 is FNUZ's only NaN
  CHECK(y[0] == 0.5f);
}

TEST_CASE("quantize then dequantize is within half a step") {
  quench_test::rng r(5);
  std::vector<float> x(1000);
  for (auto& v : x) v = r.uniform(-3.f, 5.f);
  const auto p = qparams::per_tensor(dtype::uint8, 8.f / 255.f, 96);
  std::vector<std::uint8_t> q(x.size());
  quench::quantize(quench::const_tensor_view<float>(x.data(), {1000}), p, q.data(), q.size());
  std::vector<float> back(x.size());
  quench::dequantize(q.data(), q.size(), p, quench::tensor_view<float>(back.data(), {1000}));
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(back[i] - x[i]) <= 0.5f * p.scales[0] * 1.0001f);
}

TEST_CASE("float16 and bfloat16 outputs are the float32 result rounded once") {
  const auto bytes = random_bytes(300, 11);
  const auto p = qparams::per_axis(dtype::int8, 0, std::vector<float>(300, 0.1f));
  std::vector<float> f(300);
  std::vector<quench::float16> h(300);
  std::vector<quench::bfloat16> b(300);
  quench::dequantize(bytes.data(), bytes.size(), p, quench::tensor_view<float>(f.data(), {300}));
  quench::dequantize(bytes.data(), bytes.size(), p, quench::tensor_view<quench::float16>(h.data(), {300}));
  quench::dequantize(bytes.data(), bytes.size(), p, quench::tensor_view<quench::bfloat16>(b.data(), {300}));
  for (std::size_t i = 0; i < 300; ++i) {
    CHECK(h[i].bits() == quench::float16(f[i]).bits());
    CHECK(b[i].bits() == quench::bfloat16(f[i]).bits());
  }
}

TEST_CASE("every SIMD target gives the scalar path's bits (dequantize)") {
  const dtype types[] = {dtype::int8, dtype::uint8, dtype::int16, dtype::uint16, dtype::int32, dtype::int4, dtype::uint4};
  for (dtype t : types) {
    const auto full = quench::full_range(t);
    const std::int32_t zp = t == dtype::int32 ? 0 : full.max / 3 + 1;
    for (std::size_t n : {1u, 7u, 8u, 15u, 16u, 17u, 33u, 100u, 257u}) {
      CAPTURE(n);
      const auto x = random_bytes(quench::storage_bytes(t, n), n);
      check_all_targets_equal(x, qparams::per_tensor(t, 0.0371f, zp), shape{static_cast<std::int64_t>(n)});
    }
    const shape s3{3, 5, 37};
    const auto x3 = random_bytes(quench::storage_bytes(t, s3.numel()), 17);
    std::vector<float> sc5{0.5f, 0.1f, 2.f, 0.037f, 1.f};
    std::vector<std::int32_t> zp5(5, 0);
    if (t != dtype::int32) zp5 = {0, full.max / 3, full.min / 2, 1, full.max};
    check_all_targets_equal(x3, qparams::per_axis(t, 1, sc5, zp5), s3);
    std::vector<float> sc37(37);
    std::vector<std::int32_t> zp37(37, 0);
    for (std::size_t i = 0; i < 37; ++i) {
      sc37[i] = 0.01f * static_cast<float>(i + 1);
      if (t != dtype::int32) zp37[i] = full.min + static_cast<std::int32_t>(i * 7) % (full.max - full.min + 1);
    }
    check_all_targets_equal(x3, qparams::per_axis(t, -1, sc37, zp37), s3);
    std::vector<float> bs(3 * 2 * 37);
    for (std::size_t i = 0; i < bs.size(); ++i) bs[i] = 0.05f * static_cast<float>(i % 11 + 1);
    check_all_targets_equal(x3, qparams::blocked(t, 1, 3, {3, 2, 37}, bs), s3);
  }
}

TEST_CASE("dequantize validates") {
  const std::vector<std::int8_t> q{1, 2};
  std::vector<float> y(2);
  CHECK_THROWS_AS(quench::dequantize(quench::const_tensor_view<std::int8_t>(q.data(), {2}),
                                     qparams::per_tensor(dtype::uint8, 1.f), quench::tensor_view<float>(y.data(), {2})),
                  quench::error);
  CHECK_THROWS_AS(quench::dequantize(q.data(), 1, qparams::per_tensor(dtype::int8, 1.f),
                                     quench::tensor_view<float>(y.data(), {2})),
                  quench::error);
  CHECK_THROWS_AS(quench::dequantize(q.data(), 2, qparams::per_tensor(dtype::int8, -1.f),
                                     quench::tensor_view<float>(y.data(), {2})),
                  quench::error);
  auto t = quench::tensor::from<std::int8_t>({2}, {1, 2}, "w_q");
  auto out = quench::dequantize(t, qparams::per_tensor(dtype::int8, 0.5f));
  CHECK(out.dtype() == dtype::float32);
  CHECK(out.view<float>()[1] == 1.f);
  CHECK_THROWS_AS(quench::dequantize(t, qparams::per_tensor(dtype::int8, 0.5f), dtype::int8), quench::error);
}
