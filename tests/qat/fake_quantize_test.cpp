#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "qat_test_util.hpp"
#include "quant/quant_test_util.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/qat/fake_quantize.hpp"

using quench::fake_quant_params;
using quench::integer_range;
using quench::shape;
using quench::simd_target;
using qat_test::hex;
using qat_test::same_bits;

namespace {

const float k_inf = std::numeric_limits<float>::infinity();
const float k_nan = std::numeric_limits<float>::quiet_NaN();

struct fq_result {
  std::vector<float> y;
  std::vector<std::uint8_t> mask;
};

fq_result run_fq(const std::vector<float>& x, const shape& s, const fake_quant_params& p,
                 simd_target t = quench::best_simd_target()) {
  fq_result r{std::vector<float>(x.size()), std::vector<std::uint8_t>(x.size(), 0xee)};
  quench::fake_quantize(quench::const_tensor_view<float>(x.data(), s), p, quench::tensor_view<float>(r.y.data(), s),
                        quench::tensor_view<std::uint8_t>(r.mask.data(), s), t);
  return r;
}

std::vector<float> run_fq1(const std::vector<float>& x, const fake_quant_params& p) {
  return run_fq(x, {static_cast<std::int64_t>(x.size())}, p).y;
}

/// Every supported target against the scalar path, forward (with and without mask), both
/// backward forms, on `x` of shape `s` starting at `x.data() + offset`.
void check_targets(const std::vector<float>& xbuf, std::size_t offset, const shape& s, const fake_quant_params& p) {
  const std::size_t n = s.numel();
  REQUIRE(offset + n <= xbuf.size());
  const float* x = xbuf.data() + offset;
  std::vector<float> dybuf(xbuf.size());
  quench_test::rng r(n * 31 + offset);
  for (auto& v : dybuf) v = r.uniform(-2.f, 2.f);
  const float* dy = dybuf.data() + offset;
  const quench::const_tensor_view<float> xv(x, s), dyv(dy, s);

  std::vector<float> y_ref(n + 1), y(n + 1), y_nomask(n + 1), dx_ref(n + 1), dx(n + 1), dx2(n + 1);
  std::vector<std::uint8_t> m_ref(n + 1), m(n + 1);
  quench::fake_quantize(xv, p, quench::tensor_view<float>(y_ref.data(), s),
                        quench::tensor_view<std::uint8_t>(m_ref.data(), s), simd_target::scalar);
  quench::fake_quantize_backward(dyv, quench::const_tensor_view<std::uint8_t>(m_ref.data(), s),
                                 quench::tensor_view<float>(dx_ref.data(), s), simd_target::scalar);
  for (auto t : quench::supported_simd_targets()) {
    CAPTURE(quench::simd_target_name(t));
    CAPTURE(n);
    CAPTURE(offset);
    quench::fake_quantize(xv, p, quench::tensor_view<float>(y.data(), s), quench::tensor_view<std::uint8_t>(m.data(), s),
                          t);
    quench::fake_quantize(xv, p, quench::tensor_view<float>(y_nomask.data(), s), t);
    quench::fake_quantize_backward(dyv, quench::const_tensor_view<std::uint8_t>(m.data(), s),
                                   quench::tensor_view<float>(dx.data(), s), t);
    quench::fake_quantize_backward(dyv, xv, p, quench::tensor_view<float>(dx2.data(), s), t);
    for (std::size_t i = 0; i < n; ++i) {
      if (!same_bits(y[i], y_ref[i]) || !same_bits(y_nomask[i], y_ref[i]) || m[i] != m_ref[i] ||
          !same_bits(dx[i], dx_ref[i]) || !same_bits(dx2[i], dx_ref[i])) {
        INFO("element ", i, " x=", hex(x[i]), " y=", hex(y[i]), " want ", hex(y_ref[i]), " mask ", int(m[i]),
             " want ", int(m_ref[i]), " dx=", hex(dx[i]), " / ", hex(dx2[i]), " want ", hex(dx_ref[i]));
        CHECK(false);
        return;
      }
    }
  }
}

fake_quant_params channel_params(std::int64_t axis, std::size_t channels, integer_range r, std::uint64_t seed) {
  quench_test::rng g(seed);
  std::vector<float> s(channels);
  std::vector<std::int32_t> z(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    s[c] = c % 3 == 0 ? 0.0625f : g.uniform(0.01f, 0.7f);
    z[c] = r.min + static_cast<std::int32_t>(g.below(static_cast<std::uint32_t>(r.max - r.min + 1)));
  }
  return fake_quant_params::per_channel(axis, s, z, r);
}

}  // namespace

TEST_CASE("fake_quantize rounds x * (1 / scale) half to even and adds the zero point after") {
  // scale 1, zp 0: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -2.5 -> -2
  CHECK(run_fq1({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f}, fake_quant_params::per_tensor(1.f, 0, {-128, 127})) ==
        std::vector<float>{0.f, 2.f, 2.f, 0.f, -2.f, -2.f});
  // zp 3: round(2.5) + 3 = 5 -> (5 - 3) * 1 = 2; rounding 5.5 instead would give 3.
  CHECK(run_fq1({2.5f, 3.5f}, fake_quant_params::per_tensor(1.f, 3, {0, 255})) == std::vector<float>{2.f, 4.f});
  // -0 and small negative values come out as +0, as torch's int64 round trip gives.
  const auto y = run_fq1({-0.f, -0.2f}, fake_quant_params::per_tensor(0.5f, 0, {-128, 127}));
  CHECK(qat_test::to_bits(y[0]) == 0u);
  CHECK(qat_test::to_bits(y[1]) == 0u);

  // torch multiplies by the float reciprocal: find x where x * (1/s) and x / s round differently.
  const float s = 0.1f, inv = 1.f / s;
  std::vector<float> xs;
  for (int k = -1000; k <= 1000 && xs.size() < 32; ++k) {
    const std::uint32_t mid = qat_test::to_bits((static_cast<float>(k) + 0.5f) * s);
    for (std::uint32_t u = mid - 3; u <= mid + 3; ++u) {
      const float v = qat_test::from_bits(u);
      if (std::nearbyint(v / s) != std::nearbyint(v * inv)) xs.push_back(v);
    }
  }
  REQUIRE(!xs.empty());
  const auto p = fake_quant_params::per_tensor(s, 0, {-32768, 32767});
  const auto q = run_fq(xs, {static_cast<std::int64_t>(xs.size())}, p);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(hex(xs[i]));
    CHECK(q.y[i] == std::nearbyint(xs[i] * inv) * s);
  }
  check_targets(xs, 0, {static_cast<std::int64_t>(xs.size())}, p);
}

TEST_CASE("the mask is taken on the rounded value before clamping, as torch's cachemask") {
  const auto p = fake_quant_params::per_tensor(1.f, 0, {-128, 127});
  // 127.4 rounds to 127 (in range), 127.5 to 128 (out), -128.5 to -128 (in: ties to even), -128.6 out.
  const auto r = run_fq({127.4f, 127.5f, 128.f, -128.5f, -128.6f, -129.5f, 0.f}, {7}, p);
  CHECK(r.y == std::vector<float>{127.f, 127.f, 127.f, -128.f, -128.f, -128.f, 0.f});
  CHECK(r.mask == std::vector<std::uint8_t>{1, 0, 0, 1, 0, 0, 1});
  // With a zero point at the top of the range every positive quotient saturates.
  const auto z = run_fq({0.4f, 0.6f, -300.f}, {3}, fake_quant_params::per_tensor(1.f, 255, {0, 255}));
  CHECK(z.y == std::vector<float>{0.f, 0.f, -255.f});
  CHECK(z.mask == std::vector<std::uint8_t>{1, 0, 0});
}

TEST_CASE("NaN gives quant_min, infinities saturate, all with mask 0") {
  const auto p = fake_quant_params::per_tensor(0.5f, 2, {-8, 7});
  const auto r = run_fq({k_nan, -k_nan, -k_inf, k_inf, 3e38f, -3e38f, 1e30f}, {7}, p);
  // (qmin - zp) * s = -5, (qmax - zp) * s = 2.5. torch 1.13 gives -5 for +Inf, 3e38 and 1e30 too
  // (its int64 conversion overflows); quench saturates, as QuantizeLinear and later torch do.
  CHECK(r.y == std::vector<float>{-5.f, -5.f, -5.f, 2.5f, 2.5f, -5.f, 2.5f});
  CHECK(r.mask == std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("the STE backward multiplies by the mask: blocked gradients are signed zeros or NaN") {
  const std::vector<float> dy{-3.f, 2.f, k_nan, k_inf, -k_inf, 5.f};
  const std::vector<std::uint8_t> mask{0, 0, 0, 0, 0, 7};  // any non-zero byte passes
  std::vector<float> dx(6);
  for (auto t : quench::supported_simd_targets()) {
    quench::fake_quantize_backward(quench::const_tensor_view<float>(dy.data(), {6}),
                                   quench::const_tensor_view<std::uint8_t>(mask.data(), {6}),
                                   quench::tensor_view<float>(dx.data(), {6}), t);
    CHECK(qat_test::to_bits(dx[0]) == 0x80000000u);  // -3 * 0 = -0
    CHECK(qat_test::to_bits(dx[1]) == 0u);
    CHECK(std::isnan(dx[2]));
    CHECK(std::isnan(dx[3]));
    CHECK(std::isnan(dx[4]));
    CHECK(dx[5] == 5.f);
  }
}

TEST_CASE("per-channel fake quant on every axis; negative axes count from the back") {
  std::vector<float> x(3 * 4 * 5);
  quench_test::rng g(7);
  for (auto& v : x) v = g.uniform(-6.f, 6.f);
  const shape s{3, 4, 5};
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    const auto channels = static_cast<std::size_t>(s[static_cast<std::size_t>(axis)]);
    auto p = channel_params(axis, channels, {-8, 7}, 100 + static_cast<std::uint64_t>(axis));
    const auto r = run_fq(x, s, p);
    // Against the formula per element.
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t idx[3] = {i / 20, (i / 5) % 4, i % 5};
      const std::size_t c = idx[axis];
      const float inv = 1.f / p.scales[c];
      const float z = static_cast<float>(p.zero_points[c]);
      const float q = std::nearbyint(x[i] * inv) + z;
      const float cl = std::fmin(std::fmax(q, -8.f), 7.f);
      CHECK(same_bits(r.y[i], (cl - z) * p.scales[c]));
      CHECK(r.mask[i] == ((q >= -8.f && q <= 7.f) ? 1 : 0));
    }
    auto pn = p;
    pn.axis = axis - 3;
    const auto rn = run_fq(x, s, pn);
    CHECK(rn.y == r.y);
    CHECK(rn.mask == r.mask);
  }
}

TEST_CASE("fake_quantize works in place") {
  std::vector<float> x = quench_test::hard_floats(1000, 0.05f, 200.f, 3);
  const auto p = fake_quant_params::per_tensor(0.05f, -3, {-128, 127});
  const auto want = run_fq(x, {1000}, p);
  for (auto t : quench::supported_simd_targets()) {
    std::vector<float> v = x;
    quench::tensor_view<float> vv(v.data(), {1000});
    quench::fake_quantize(vv, p, vv, t);
    for (std::size_t i = 0; i < v.size(); ++i) CHECK(same_bits(v[i], want.y[i]));
  }
}

TEST_CASE("every SIMD target gives the scalar path's bits for every length, offset and layout") {
  const std::vector<float> x = quench_test::hard_floats(40000, 0.0625f, 160.f, 11);
  SUBCASE("per tensor") {
    for (const auto& p : {fake_quant_params::per_tensor(0.0625f, 0, {-128, 127}),
                          fake_quant_params::per_tensor(0.1f, 255, {0, 255}),
                          fake_quant_params::per_tensor(1.f / 3.f, -8, {-8, 7}),
                          fake_quant_params::per_tensor(7.f, 100, {-32768, 32767})})
      for (std::size_t n = 0; n <= 140; ++n) check_targets(x, n % 7, {static_cast<std::int64_t>(n)}, p);
    check_targets(x, 3, {39000}, fake_quant_params::per_tensor(0.0625f, 3, {-127, 127}));
  }
  SUBCASE("per channel, inner runs and channel-last rows") {
    for (std::int64_t c = 1; c <= 40; c += 3)
      for (std::int64_t inner : {1, 3, 17, 40}) {
        const shape s{5, c, inner};
        check_targets(x, static_cast<std::size_t>(c % 5), s, channel_params(1, static_cast<std::size_t>(c), {-128, 127}, 5));
        const shape last{inner, 7, c};
        check_targets(x, 1, last, channel_params(2, static_cast<std::size_t>(c), {0, 15}, 9));
      }
  }
}

TEST_CASE("double, float16 and bfloat16 tensors") {
  const std::vector<float> xf = quench_test::hard_floats(3000, 0.0625f, 150.f, 21);
  const shape s{3, 1000};
  auto p = fake_quant_params::per_channel(0, {0.0625f, 0.3f, 0.011f}, {0, -5, 127}, {-128, 127});
  const auto want = run_fq(xf, s, p);
  SUBCASE("double: in double arithmetic, the float32 inverse scale promoted") {
    std::vector<double> x(xf.begin(), xf.end()), y(x.size());
    std::vector<std::uint8_t> m(x.size());
    quench::fake_quantize(quench::const_tensor_view<double>(x.data(), s), p, quench::tensor_view<double>(y.data(), s),
                          quench::tensor_view<std::uint8_t>(m.data(), s));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t c = i / 1000;
      const double inv = static_cast<double>(1.f / p.scales[c]);
      const double z = p.zero_points[c];
      const double q = std::nearbyint(x[i] * inv) + z;
      const double cl = std::isnan(q) ? -128.0 : std::fmin(std::fmax(q, -128.0), 127.0);
      CHECK(qat_test::same_bits(y[i], (cl - z) * static_cast<double>(p.scales[c])));
      CHECK(m[i] == ((q >= -128 && q <= 127) ? 1 : 0));
    }
  }
  SUBCASE("float16 and bfloat16: computed in float, rounded once") {
    std::vector<quench::float16> h(xf.size()), hy(xf.size());
    std::vector<quench::bfloat16> b(xf.size()), by(xf.size());
    for (std::size_t i = 0; i < xf.size(); ++i) {
      h[i] = quench::float16(xf[i]);
      b[i] = quench::bfloat16(xf[i]);
    }
    std::vector<float> hf(xf.size()), bf(xf.size());
    for (std::size_t i = 0; i < xf.size(); ++i) {
      hf[i] = static_cast<float>(h[i]);
      bf[i] = static_cast<float>(b[i]);
    }
    const auto wh = run_fq(hf, s, p), wb = run_fq(bf, s, p);
    for (auto t : quench::supported_simd_targets()) {
      std::vector<std::uint8_t> mh(xf.size()), mb(xf.size());
      quench::fake_quantize(quench::const_tensor_view<quench::float16>(h.data(), s), p,
                            quench::tensor_view<quench::float16>(hy.data(), s),
                            quench::tensor_view<std::uint8_t>(mh.data(), s), t);
      quench::fake_quantize(quench::const_tensor_view<quench::bfloat16>(b.data(), s), p,
                            quench::tensor_view<quench::bfloat16>(by.data(), s),
                            quench::tensor_view<std::uint8_t>(mb.data(), s), t);
      for (std::size_t i = 0; i < xf.size(); ++i) {
        CHECK(hy[i].bits() == quench::float16(wh.y[i]).bits());
        CHECK(by[i].bits() == quench::bfloat16(wb.y[i]).bits());
        CHECK(mh[i] == wh.mask[i]);
        CHECK(mb[i] == wb.mask[i]);
      }
      std::vector<quench::float16> dy(xf.size(), quench::float16(-1.5f)), dx(xf.size());
      quench::fake_quantize_backward(quench::const_tensor_view<quench::float16>(dy.data(), s),
                                     quench::const_tensor_view<std::uint8_t>(mh.data(), s),
                                     quench::tensor_view<quench::float16>(dx.data(), s), t);
      std::vector<quench::float16> dx2(xf.size());
      quench::fake_quantize_backward(quench::const_tensor_view<quench::float16>(dy.data(), s),
                                     quench::const_tensor_view<quench::float16>(h.data(), s), p,
                                     quench::tensor_view<quench::float16>(dx2.data(), s), t);
      for (std::size_t i = 0; i < xf.size(); ++i) {
        CHECK(dx[i].bits() == (mh[i] ? quench::float16(-1.5f).bits() : 0x8000));
        CHECK(dx2[i].bits() == dx[i].bits());
      }
    }
  }
  (void)want;
}

TEST_CASE("bad parameters and shapes are a quench::error naming what is wrong") {
  std::vector<float> x(12), y(12);
  std::vector<std::uint8_t> m(12);
  const shape s{3, 4};
  auto call = [&](const fake_quant_params& p) {
    quench::fake_quantize(quench::const_tensor_view<float>(x.data(), s), p, quench::tensor_view<float>(y.data(), s));
  };
  auto code_of = [&](const fake_quant_params& p) -> quench::errc {
    try {
      call(p);
    } catch (const quench::error& e) {
      MESSAGE(std::string(e.what()));
      return e.code();
    }
    return quench::errc{};
  };
  CHECK(code_of(fake_quant_params::per_tensor(0.f, 0, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_tensor(-1.f, 0, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_tensor(k_nan, 0, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_tensor(k_inf, 0, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_tensor(1.f, 0, {5, 4})) == quench::errc::invalid_argument);
  CHECK(code_of(fake_quant_params::per_tensor(1.f, 0, {0, (1 << 24) + 1})) == quench::errc::out_of_range);
  CHECK(code_of(fake_quant_params::per_tensor(1.f, 256, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_tensor(1.f, -1, {0, 255})) == quench::errc::invalid_value);
  CHECK(code_of(fake_quant_params::per_channel(2, {1.f, 1.f, 1.f}, {0, 0, 0}, {0, 255})) == quench::errc::out_of_range);
  CHECK(code_of(fake_quant_params::per_channel(-3, {1.f, 1.f, 1.f}, {0, 0, 0}, {0, 255})) == quench::errc::out_of_range);
  CHECK(code_of(fake_quant_params::per_channel(1, {1.f, 1.f, 1.f}, {0, 0, 0}, {0, 255})) == quench::errc::shape_mismatch);
  CHECK(code_of(fake_quant_params::per_channel(0, {1.f, 1.f, 1.f}, {0, 0}, {0, 255})) == quench::errc::shape_mismatch);
  CHECK(code_of(fake_quant_params::per_channel(0, {}, {}, {0, 255})) == quench::errc::shape_mismatch);
  auto two = fake_quant_params::per_tensor(1.f, 0, {0, 255});
  two.scales = {1.f, 2.f};
  two.zero_points = {0, 0};
  CHECK(code_of(two) == quench::errc::shape_mismatch);
  auto blocked = fake_quant_params::per_tensor(1.f, 0, {0, 255});
  blocked.granularity = quench::quant_granularity::blocked;
  CHECK(code_of(blocked) == quench::errc::invalid_argument);
  CHECK(code_of(fake_quant_params::per_channel(0, {1.f, 0.5f, 1.f}, {0, 0, 0}, {0, 255})) == quench::errc{});

  const auto ok = fake_quant_params::per_tensor(1.f, 0, {0, 255});
  CHECK_THROWS_AS(quench::fake_quantize(quench::const_tensor_view<float>(x.data(), s), ok,
                                        quench::tensor_view<float>(y.data(), {4, 3})),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize(quench::const_tensor_view<float>(x.data(), s), ok,
                                        quench::tensor_view<float>(y.data(), s),
                                        quench::tensor_view<std::uint8_t>(m.data(), {12})),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize_backward(quench::const_tensor_view<float>(x.data(), s),
                                                 quench::const_tensor_view<std::uint8_t>(m.data(), {2, 6}),
                                                 quench::tensor_view<float>(y.data(), s)),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize_backward(quench::const_tensor_view<float>(x.data(), s),
                                                 quench::const_tensor_view<float>(x.data(), {12}), ok,
                                                 quench::tensor_view<float>(y.data(), s)),
                  quench::error);
  // Nothing to do for an empty tensor, but the parameters are still checked.
  CHECK_NOTHROW(quench::fake_quantize(quench::const_tensor_view<float>(x.data(), {0, 4}), ok,
                                      quench::tensor_view<float>(y.data(), {0, 4})));
  CHECK_THROWS_AS(quench::fake_quantize(quench::const_tensor_view<float>(x.data(), {0, 4}),
                                        fake_quant_params::per_tensor(0.f, 0, {0, 255}),
                                        quench::tensor_view<float>(y.data(), {0, 4})),
                  quench::error);
}

// ---- against torch 1.13 ------------------------------------------------------------------------

namespace {

struct torch_totals {
  std::size_t cases = 0, elements = 0, exact_y = 0, exact_mask = 0, exact_dx = 0, int64_overflow = 0;
};

template <class T>
std::uint64_t bits_of(T v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <class T>
float as_float(T v) {
  return static_cast<float>(v);
}

/// A double rounded to T the way the kernels round their float (or double) result.
template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, double>) return v;
  else return T(static_cast<float>(v));
}

template <class T>
void check_torch_case(const qat_test::json& c, const char* ext, torch_totals& tot) {
  const std::string name = qat_test::str(c, "name");
  CAPTURE(name);
  const shape s = qat_test::ref_shape(c.at("shape", "reference"));
  fake_quant_params p;
  p.range = {static_cast<std::int32_t>(qat_test::num(c, "qmin")), static_cast<std::int32_t>(qat_test::num(c, "qmax"))};
  p.granularity = qat_test::str(c, "granularity") == "per_tensor" ? quench::quant_granularity::per_tensor
                                                                   : quench::quant_granularity::per_axis;
  p.axis = qat_test::num(c, "axis");
  p.scales = qat_test::ref_floats(c.at("scales", "reference"));
  for (auto z : qat_test::ref_ints(c.at("zero_points", "reference"))) p.zero_points.push_back(static_cast<std::int32_t>(z));
  (void)ext;
  const auto x = qat_test::read_array<T>(qat_test::str(c, "x"));
  const auto dy = qat_test::read_array<T>(qat_test::str(c, "dy"));
  const auto ty = qat_test::read_array<T>(qat_test::str(c, "y"));
  const auto tmask = qat_test::read_array<std::uint8_t>(qat_test::str(c, "mask"));
  const auto tdx = qat_test::read_array<T>(qat_test::str(c, "dx"));
  const std::size_t n = s.numel();
  REQUIRE(x.size() == n);
  REQUIRE(ty.size() == n);
  REQUIRE(tmask.size() == n);
  REQUIRE(tdx.size() == n);
  std::vector<bool> overflow(n, false);
  for (auto i : qat_test::ref_ints(c.at("torch_int64_overflow", "reference"))) overflow[static_cast<std::size_t>(i)] = true;

  const quench::integer_range r = p.range;
  const auto channel_of = [&](std::size_t i) -> std::size_t {
    if (p.granularity == quench::quant_granularity::per_tensor) return 0;
    const auto a = static_cast<std::size_t>(p.axis);
    return (i / s.inner(a)) % static_cast<std::size_t>(s[a]);
  };
  bool first_target = true;
  for (auto t : quench::supported_simd_targets()) {
    CAPTURE(quench::simd_target_name(t));
    std::vector<T> y(n), dx(n), dx2(n);
    std::vector<std::uint8_t> m(n);
    quench::fake_quantize(quench::const_tensor_view<T>(x.data(), s), p, quench::tensor_view<T>(y.data(), s),
                          quench::tensor_view<std::uint8_t>(m.data(), s), t);
    quench::fake_quantize_backward(quench::const_tensor_view<T>(dy.data(), s),
                                   quench::const_tensor_view<std::uint8_t>(m.data(), s), quench::tensor_view<T>(dx.data(), s),
                                   t);
    quench::fake_quantize_backward(quench::const_tensor_view<T>(dy.data(), s), quench::const_tensor_view<T>(x.data(), s), p,
                                   quench::tensor_view<T>(dx2.data(), s), t);
    qat_test::mismatch_log log;
    std::size_t ok_y = 0, ok_m = 0, ok_dx = 0, ovf = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (overflow[i]) {
        // torch 1.13: (qmin - z) * scale; quench: (qmax - z) * scale (see fake_quantize.hpp).
        const std::size_t k = channel_of(i);
        const double z = p.zero_point(k);
        const double sc = p.scales[k];
        CHECK(static_cast<double>(as_float(ty[i])) == static_cast<double>(as_float(from_double<T>((r.min - z) * sc))));
        CHECK(static_cast<double>(as_float(y[i])) == static_cast<double>(as_float(from_double<T>((r.max - z) * sc))));
        ++ovf;
      } else if (bits_of(y[i]) == bits_of(ty[i])) {
        ++ok_y;
      } else {
        log.add("y[" + std::to_string(i) + "] x=" + hex(as_float(x[i])) + " got " + hex(as_float(y[i])) + " torch " +
                hex(as_float(ty[i])));
      }
      if (m[i] == tmask[i])
        ++ok_m;
      else
        log.add("mask[" + std::to_string(i) + "] x=" + hex(as_float(x[i])) + " got " + std::to_string(m[i]));
      if (bits_of(dx[i]) == bits_of(tdx[i]) && bits_of(dx2[i]) == bits_of(tdx[i]))
        ++ok_dx;
      else
        log.add("dx[" + std::to_string(i) + "] got " + hex(as_float(dx[i])) + " / " + hex(as_float(dx2[i])) +
                " torch " + hex(as_float(tdx[i])));
    }
    INFO(log.first);
    CHECK(log.count == 0);
    if (first_target) {
      ++tot.cases;
      tot.elements += n;
      tot.exact_y += ok_y;
      tot.exact_mask += ok_m;
      tot.exact_dx += ok_dx;
      tot.int64_overflow += ovf;
      first_target = false;
    }
  }
}

}  // namespace

TEST_CASE("fake_quantize and its STE backward are bit-identical to torch 1.13") {
  torch_totals tot;
  for (const auto& c : qat_test::cases("fake_quant")) {
    const std::string dtype = qat_test::str(c, "dtype");
    if (dtype == "float32") check_torch_case<float>(c, "f32", tot);
    else if (dtype == "float64") check_torch_case<double>(c, "f64", tot);
    else check_torch_case<quench::float16>(c, "f16", tot);
  }
  CHECK(tot.cases >= 60);
  MESSAGE("torch fake_quant: " << tot.cases << " cases, " << tot.elements << " elements; bit-exact y "
                               << tot.exact_y << " (+" << tot.int64_overflow
                               << " where torch 1.13's int64 conversion overflows), mask " << tot.exact_mask
                               << ", dx " << tot.exact_dx << " on every SIMD target");
}
