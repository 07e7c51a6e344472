#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "qat_test_util.hpp"
#include "quant/quant_test_util.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/qat/observer.hpp"

using quench::dtype;
using quench::integer_range;
using quench::observer_options;
using quench::shape;
using quench::simd_target;
using qat_test::hex;

namespace {

observer_options opts(dtype t, bool symmetric, bool reduce_range = false) {
  observer_options o;
  o.type = t;
  o.symmetric = symmetric;
  o.reduce_range = reduce_range;
  return o;
}

bool range_is(integer_range r, int lo, int hi) { return r.min == lo && r.max == hi; }

quench::errc error_of(const observer_options& o) {
  try {
    quench::observer_quant_range(o);
  } catch (const quench::error& e) {
    MESSAGE(std::string(e.what()));
    return e.code();
  }
  return quench::errc{};
}

}  // namespace

TEST_CASE("observer ranges are torch's calculate_qmin_qmax") {
  CHECK(range_is(quench::observer_quant_range(opts(dtype::int8, false)), -128, 127));
  CHECK(range_is(quench::observer_quant_range(opts(dtype::int8, false, true)), -64, 63));
  CHECK(range_is(quench::observer_quant_range(opts(dtype::uint8, false)), 0, 255));
  CHECK(range_is(quench::observer_quant_range(opts(dtype::uint8, false, true)), 0, 127));
  CHECK(range_is(quench::observer_quant_range(opts(dtype::uint4, false)), 0, 15));
  auto o = opts(dtype::int8, false, true);
  o.range = integer_range{-127, 127};
  CHECK(range_is(quench::observer_quant_range(o), -64, 63));  // Python's floor division: -127 // 2 = -64
  o.range = integer_range{-8, 7};
  CHECK(range_is(quench::observer_quant_range(o), -4, 3));
  o.reduce_range = false;
  CHECK(range_is(quench::observer_quant_range(o), -8, 7));
}

TEST_CASE("observer options torch would reject, or mishandle, are errors") {
  CHECK(error_of(opts(dtype::int16, false)) == quench::errc::unsupported_dtype);
  CHECK(error_of(opts(dtype::float32, false)) == quench::errc::unsupported_dtype);
  auto o = opts(dtype::uint8, false);
  o.range = integer_range{1, 255};  // must contain 0
  CHECK(error_of(o) == quench::errc::invalid_argument);
  o.range = integer_range{0, 0};
  CHECK(error_of(o) == quench::errc::invalid_argument);
  o.range = integer_range{0, 256};
  CHECK(error_of(o) == quench::errc::out_of_range);
  o.range = integer_range{-1, 255};
  CHECK(error_of(o) == quench::errc::out_of_range);
  o.range.reset();
  o.averaging_constant = std::numeric_limits<float>::quiet_NaN();
  CHECK(error_of(o) == quench::errc::invalid_argument);
  o.averaging_constant = 1.5f;
  CHECK(error_of(o) == quench::errc::invalid_argument);
  o.averaging_constant = 0.01f;
  o.eps = 0.f;
  CHECK(error_of(o) == quench::errc::invalid_argument);
  CHECK(error_of(opts(dtype::uint8, true, true)) == quench::errc::invalid_argument);
  CHECK_THROWS_AS(quench::moving_average_minmax_observer(opts(dtype::int4, true)), quench::error);
}

TEST_CASE("qparams of a range: symmetric divides by (qmax - qmin) / 2, affine rounds the zero point") {
  auto o = opts(dtype::int8, true);
  auto sz = quench::observer_qparams(-1.f, 2.55f, o);
  CHECK(sz.scale == 2.55f / 127.5f);
  CHECK(sz.zero_point == 0);
  o = opts(dtype::uint8, true);
  CHECK(quench::observer_qparams(-1.f, 0.5f, o).zero_point == 128);
  o.range = integer_range{0, 15};
  CHECK(quench::observer_qparams(-1.f, 0.5f, o).zero_point == 7);
  CHECK(quench::observer_qparams(-1.f, 0.5f, o).scale == 1.f / 7.5f);
  o = opts(dtype::uint4, true);
  CHECK(quench::observer_qparams(-1.f, 0.5f, o).zero_point == 0);  // torch: only quint8 gets a midpoint
  o = opts(dtype::uint8, false);
  sz = quench::observer_qparams(-1.f, 3.f, o);
  CHECK(sz.scale == 4.f / 255.f);
  CHECK(sz.zero_point == static_cast<std::int32_t>(0 - std::nearbyint(-1.f / (4.f / 255.f))));
  // Positive-only data: min_neg = 0, zero point = qmin. Zero range: scale = eps.
  CHECK(quench::observer_qparams(2.f, 3.f, o).zero_point == 0);
  CHECK(quench::observer_qparams(0.f, 0.f, o).scale == o.eps);
  o.eps = 0.25f;
  CHECK(quench::observer_qparams(-0.1f, 0.1f, o).scale == 0.25f);
}

TEST_CASE("moving average: first batch sets the range, later ones move it by c, each step rounded") {
  auto o = opts(dtype::uint8, false);
  o.averaging_constant = 0.1f;
  quench::moving_average_minmax_observer obs(o);
  CHECK(!obs.observed());
  CHECK(obs.calculate_qparams().scales == std::vector<float>{1.f});
  CHECK(obs.calculate_qparams().zero_point(0) == 0);
  std::vector<float> a{-1.f, 0.5f, 2.f}, b{-3.f, 7.f};
  obs.observe(quench::tensor_view<float>(a.data(), {3}));
  CHECK(obs.min_val() == -1.f);
  CHECK(obs.max_val() == 2.f);
  obs.observe(quench::tensor_view<float>(b.data(), {2}));
  const float c = 0.1f;
  volatile float d1 = -3.f - -1.f, p1 = c * d1, d2 = 7.f - 2.f, p2 = c * d2;
  CHECK(obs.min_val() == -1.f + p1);
  CHECK(obs.max_val() == 2.f + p2);
  // A batch with NaN or Inf is refused and changes nothing.
  std::vector<float> bad{1.f, std::numeric_limits<float>::quiet_NaN()}, worse{std::numeric_limits<float>::infinity()};
  const float mn = obs.min_val(), mx = obs.max_val();
  CHECK_THROWS_AS(obs.observe(quench::tensor_view<float>(bad.data(), {2})), quench::error);
  CHECK_THROWS_AS(obs.observe(quench::tensor_view<float>(worse.data(), {1})), quench::error);
  CHECK(obs.min_val() == mn);
  CHECK(obs.max_val() == mx);
  obs.observe(quench::tensor_view<float>(bad.data(), {0}));  // empty: ignored
  CHECK(obs.min_val() == mn);
  obs.reset();
  CHECK(!obs.observed());
}

TEST_CASE("per-channel observer: channel count is fixed by the first batch; -0 extremes are +0") {
  auto o = opts(dtype::int8, true);
  o.ch_axis = -1;
  quench::moving_average_per_channel_minmax_observer obs(o);
  CHECK(obs.calculate_qparams().scales.size() == 1);  // torch's unobserved default
  std::vector<float> x{-0.f, 1.f, -2.f, -0.f, 3.f, 4.f};
  obs.observe(quench::tensor_view<float>(x.data(), {2, 3}));
  CHECK(obs.min_vals() == std::vector<float>{-0.f, 1.f, -2.f});
  CHECK(qat_test::to_bits(obs.min_vals()[0]) == 0u);
  CHECK(obs.max_vals() == std::vector<float>{0.f, 3.f, 4.f});
  CHECK_THROWS_AS(obs.observe(quench::tensor_view<float>(x.data(), {3, 2})), quench::error);
  CHECK_THROWS_AS(obs.observe(quench::tensor_view<float>(x.data(), {6})), quench::error);
  const auto p = obs.calculate_qparams();
  CHECK(p.granularity == quench::quant_granularity::per_axis);
  CHECK(p.axis == -1);
  CHECK(p.scales.size() == 3);
}

TEST_CASE("min/max kernels: every target equals the scalar path") {
  const std::vector<float> x = quench_test::hard_floats(5000, 1.f, 100.f, 9);
  std::vector<float> finite;
  for (float v : x)
    if (std::isfinite(v)) finite.push_back(v);
  for (std::size_t n = 0; n <= 200; ++n) {
    float mn0 = std::numeric_limits<float>::infinity(), mx0 = -mn0;
    const bool f0 = quench::detail::minmax_run(finite.data() + n % 3, n, mn0, mx0, simd_target::scalar);
    for (auto t : quench::supported_simd_targets()) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      const bool f = quench::detail::minmax_run(finite.data() + n % 3, n, mn, mx, t);
      CHECK(f == f0);
      CHECK(quench::detail::positive_zero(mn) == quench::detail::positive_zero(mn0));
      CHECK(quench::detail::positive_zero(mx) == quench::detail::positive_zero(mx0));
      std::vector<float> a(n, 1.f), b(n, -1.f), a0(n, 1.f), b0(n, -1.f);
      CHECK(quench::detail::minmax_rows(finite.data(), n, a.data(), b.data(), t) ==
            quench::detail::minmax_rows(finite.data(), n, a0.data(), b0.data(), simd_target::scalar));
      for (std::size_t i = 0; i < n; ++i) {
        CHECK(qat_test::same_bits(a[i], a0[i]));
        CHECK(qat_test::same_bits(b[i], b0[i]));
      }
      // One NaN or Inf anywhere is found.
      if (n > 0) {
        std::vector<float> v(finite.begin(), finite.begin() + static_cast<std::ptrdiff_t>(n));
        v[n / 2] = n % 2 ? std::numeric_limits<float>::quiet_NaN() : -std::numeric_limits<float>::infinity();
        float p = 0, q = 0;
        CHECK(!quench::detail::minmax_run(v.data(), n, p, q, t));
        std::vector<float> r1(n, 0.f), r2(n, 0.f);
        CHECK(!quench::detail::minmax_rows(v.data(), n, r1.data(), r2.data(), t));
      }
    }
  }
}

// ---- against torch 1.13 ------------------------------------------------------------------------

namespace {

observer_options ref_options(const qat_test::json& o) {
  observer_options r;
  const std::string t = qat_test::str(o, "type");
  r.type = t == "int8" ? dtype::int8 : t == "uint8" ? dtype::uint8 : dtype::uint4;
  r.symmetric = o.at("symmetric", "reference").as_bool("reference");
  r.reduce_range = o.at("reduce_range", "reference").as_bool("reference");
  const auto& rg = o.at("range", "reference");
  if (!rg.is_null()) {
    const auto v = qat_test::ref_ints(rg);
    r.range = integer_range{static_cast<std::int32_t>(v[0]), static_cast<std::int32_t>(v[1])};
  }
  r.averaging_constant = static_cast<float>(o.at("averaging_constant", "reference").as_double("reference"));
  r.eps = static_cast<float>(o.at("eps", "reference").as_double("reference"));
  r.ch_axis = qat_test::num(o, "ch_axis");
  return r;
}

template <class Obs>
void observe_file(Obs& obs, const qat_test::json& b, simd_target t) {
  const shape s = qat_test::ref_shape(b.at("shape", "reference"));
  const std::string d = qat_test::str(b, "dtype");
  if (d == "float32") {
    auto v = qat_test::read_array<float>(qat_test::str(b, "file"));
    obs.observe(quench::tensor_view<const float>(v.data(), s), t);
  } else if (d == "float64") {
    auto v = qat_test::read_array<double>(qat_test::str(b, "file"));
    obs.observe(quench::tensor_view<const double>(v.data(), s), t);
  } else {
    auto v = qat_test::read_array<quench::float16>(qat_test::str(b, "file"));
    obs.observe(quench::tensor_view<const quench::float16>(v.data(), s), t);
  }
}

}  // namespace

TEST_CASE("moving-average observers match torch 1.13 after every batch") {
  std::size_t cases = 0, checks = 0;
  for (const auto& c : qat_test::cases("observers")) {
    const std::string name = qat_test::str(c, "name");
    CAPTURE(name);
    const auto& oj = c.at("options", "reference");
    const observer_options o = ref_options(oj);
    const bool per_channel = oj.at("per_channel", "reference").as_bool("reference");
    const auto& batches = c.at("batches", "reference").as_array("reference");
    const auto& after = c.at("after", "reference").as_array("reference");
    for (auto t : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(t));
      quench::moving_average_minmax_observer pt(o);
      quench::moving_average_per_channel_minmax_observer pc(o);
      for (std::size_t k = 0; k < batches.size(); ++k) {
        CAPTURE(k);
        std::vector<float> mins, maxs;
        quench::fake_quant_params p;
        if (per_channel) {
          observe_file(pc, batches[k], t);
          mins = pc.min_vals();
          maxs = pc.max_vals();
          p = pc.calculate_qparams();
        } else {
          observe_file(pt, batches[k], t);
          mins.assign(1, pt.min_val());
          maxs.assign(1, pt.max_val());
          p = pt.calculate_qparams();
        }
        const auto& a = after[k];
        // min/max compared as values: torch's sign of a zero extreme depends on its reduction order.
        CHECK(mins == qat_test::ref_floats(a.at("min", "reference")));
        CHECK(maxs == qat_test::ref_floats(a.at("max", "reference")));
        const auto ts = qat_test::ref_floats(a.at("scale", "reference"));
        REQUIRE(p.scales.size() == ts.size());
        for (std::size_t i = 0; i < ts.size(); ++i) {
          CAPTURE(i);
          CHECK(qat_test::to_bits(p.scales[i]) == qat_test::to_bits(ts[i]));
        }
        const auto tz = qat_test::ref_ints(a.at("zero_point", "reference"));
        for (std::size_t i = 0; i < tz.size(); ++i) CHECK(p.zero_point(i) == tz[i]);
        CHECK(p.range.min == qat_test::num(a, "quant_min"));
        CHECK(p.range.max == qat_test::num(a, "quant_max"));
        ++checks;
      }
    }
    ++cases;
  }
  CHECK(cases >= 20);
  MESSAGE("torch observers: " << cases << " observer configurations, " << checks
                              << " batch states (min, max, scale bits, zero point) equal on every target");
}
