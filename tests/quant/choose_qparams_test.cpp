#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "quant_test_util.hpp"
#include "quench/quant/choose_qparams.hpp"

using quench::dtype;
using quench::range_options;
using quench_test::from_bits;
using quench_test::hex;
using quench_test::to_bits;

namespace {

range_options sym() {
  range_options o;
  o.symmetric = true;
  return o;
}

}  // namespace

TEST_CASE("target ranges follow ORT's get_qmin_qmax_for_qType") {
  auto r = quench::target_range(dtype::int8);
  CHECK((r.min == -128 && r.max == 127));
  r = quench::target_range(dtype::int8, sym());
  CHECK((r.min == -127 && r.max == 127));
  r = quench::target_range(dtype::uint8, sym());
  CHECK((r.min == 0 && r.max == 254));
  r = quench::target_range(dtype::int4, sym());  // ORT has no narrow table for 4-bit
  CHECK((r.min == -8 && r.max == 7));
  range_options red;
  red.reduce_range = true;
  r = quench::target_range(dtype::int8, red);
  CHECK((r.min == -64 && r.max == 64));
  r = quench::target_range(dtype::uint8, red);
  CHECK((r.min == 0 && r.max == 127));
  red.symmetric = true;  // reduce_range wins over the narrow range
  r = quench::target_range(dtype::int16, red);
  CHECK((r.min == -16384 && r.max == 16384));
  range_options narrow;
  narrow.narrow_range = true;
  r = quench::target_range(dtype::int4, narrow);
  CHECK((r.min == -7 && r.max == 7));
  r = quench::target_range(dtype::uint4, narrow);
  CHECK((r.min == 0 && r.max == 14));
  narrow.narrow_range = false;
  narrow.symmetric = true;
  r = quench::target_range(dtype::int8, narrow);
  CHECK((r.min == -128 && r.max == 127));
  CHECK_THROWS_AS(quench::target_range(dtype::float32), quench::error);
  CHECK_THROWS_AS(quench::target_range(dtype::int32), quench::error);
}

TEST_CASE("asymmetric and symmetric parameters") {
  auto sz = quench::choose_scale_zero_point(-1.f, 3.f, dtype::uint8);
  CHECK(sz.scale == static_cast<float>(4.0 / 255.0));
  CHECK(sz.zero_point == 64);
  // The range is widened to include 0.
  sz = quench::choose_scale_zero_point(2.f, 6.f, dtype::uint8);
  CHECK(sz.scale == static_cast<float>(6.0 / 255.0));
  CHECK(sz.zero_point == 0);
  sz = quench::choose_scale_zero_point(-6.f, -2.f, dtype::int8);
  CHECK(sz.zero_point == 127);
  // Symmetric: zero point from (qmin + qmax) / 2, scale from 2 * absmax.
  sz = quench::choose_scale_zero_point(-0.5f, 2.f, dtype::int8, sym());
  CHECK(sz.scale == static_cast<float>(4.0 / 254.0));
  CHECK(sz.zero_point == 0);
  sz = quench::choose_scale_zero_point(-0.5f, 2.f, dtype::uint8, sym());
  CHECK(sz.zero_point == 127);
  sz = quench::choose_scale_zero_point(-0.5f, 2.f, dtype::uint4, sym());
  CHECK(sz.zero_point == 8);  // (0 + 15) / 2 = 7.5 -> 8
  sz = quench::choose_scale_zero_point(-0.5f, 2.f, dtype::int4, sym());
  CHECK(sz.zero_point == 0);  // -0.5 -> -0
  CHECK(sz.scale == static_cast<float>(4.0 / 15.0));
}

TEST_CASE("zero-width and tiny ranges give scale 1 and zero point 0 (no division by zero)") {
  for (dtype t : {dtype::int8, dtype::uint8, dtype::int16, dtype::uint16, dtype::int4, dtype::uint4}) {
    for (auto opt : {range_options{}, sym()}) {
      auto sz = quench::choose_scale_zero_point(0.f, 0.f, t, opt);
      CHECK(sz.scale == 1.f);
      CHECK(sz.zero_point == 0);
      sz = quench::choose_scale_zero_point(-1e-40f, 1e-40f, t, opt);  // scale below FLT_MIN
      CHECK(sz.scale == 1.f);
      CHECK(sz.zero_point == 0);
    }
  }
  // A positive-only or negative-only constant still spans [0, c].
  auto sz = quench::choose_scale_zero_point(5.f, 5.f, dtype::uint8);
  CHECK(sz.scale == static_cast<float>(5.0 / 255.0));
  auto f8 = quench::choose_scale_zero_point(0.f, 0.f, dtype::float8e4m3fn);
  CHECK(f8.scale == 1.f);
}

TEST_CASE("power-of-two scales round up and keep the range representable") {
  range_options o;
  o.power_of_two_scale = true;
  auto sz = quench::choose_scale_zero_point(-1.f, 3.f, dtype::uint8, o);
  CHECK(sz.scale == 0.03125f);  // 4/255 = 0.01569 is just above 2^-6, so 2^-5
  // Zero point recomputed from the new scale: round(0 - (-1) / 2^-5) = 32.
  CHECK(sz.zero_point == 32);
  sz = quench::choose_scale_zero_point(-1.f, 1.f, dtype::int8, o);
  CHECK(sz.scale == 0.015625f);  // 2/255 = 0.00784 -> 2^-7 = 0.0078125 is smaller, so 2^-6
  sz = quench::choose_scale_zero_point(-127.f, 127.f, dtype::int8, [] {
    range_options s = sym();
    s.power_of_two_scale = true;
    return s;
  }());
  CHECK(sz.scale == 1.f);  // exactly a power of two already
  CHECK(sz.zero_point == 0);
  sz = quench::choose_scale_zero_point(-3.f, 0.f, dtype::float8e4m3fn, o);
  CHECK(sz.scale == 0.0078125f);  // 3/448 = 0.0067 -> 2^-7
  // Every value of the range still quantizes without clipping.
  for (float lo : {-5.f, -0.3f, 0.f}) {
    for (float hi : {0.f, 0.7f, 9.f}) {
      sz = quench::choose_scale_zero_point(lo, hi, dtype::uint8, o);
      const float qlo = std::nearbyint(lo / sz.scale) + static_cast<float>(sz.zero_point);
      const float qhi = std::nearbyint(hi / sz.scale) + static_cast<float>(sz.zero_point);
      CHECK(qlo >= 0.f);
      CHECK(qhi <= 255.f);
      int e = 0;
      CHECK(std::frexp(sz.scale, &e) == 0.5f);
    }
  }
}

TEST_CASE("float8 scale is absmax over the largest finite value") {
  auto sz = quench::choose_scale_zero_point(-896.f, 100.f, dtype::float8e4m3fn);
  CHECK(sz.scale == 2.f);
  CHECK(sz.zero_point == 0);
  sz = quench::choose_scale_zero_point(-1.f, 480.f, dtype::float8e4m3fnuz);
  CHECK(sz.scale == 2.f);
  sz = quench::choose_scale_zero_point(0.f, 57344.f, dtype::float8e5m2);
  CHECK(sz.scale == 1.f);
  range_options red;
  red.reduce_range = true;
  CHECK_THROWS_AS(quench::choose_scale_zero_point(0.f, 1.f, dtype::float8e5m2, red), quench::error);
}

TEST_CASE("bad ranges are errors") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto code = [](auto f) {
    try {
      f();
    } catch (const quench::error& e) {
      return e.code();
    }
    return quench::errc::invalid_argument;
  };
  bool threw = false;
  try {
    quench::choose_scale_zero_point(nan, 1.f, dtype::int8);
  } catch (const quench::error& e) {
    threw = true;
    CHECK(e.code() == quench::errc::not_finite);
    CHECK(std::string(e.what()).find("expected a finite range, found [NaN, 1]") != std::string::npos);
  }
  CHECK(threw);
  CHECK(code([&] { quench::choose_scale_zero_point(-inf, 1.f, dtype::int8); }) == quench::errc::not_finite);
  CHECK_THROWS_AS(quench::choose_scale_zero_point(2.f, 1.f, dtype::int8), quench::error);
  CHECK_THROWS_AS(quench::choose_scale_zero_point(0.f, 1.f, dtype::int32), quench::error);
  // rmax - rmin overflows float32: ORT would return an infinite scale.
  CHECK(code([&] { quench::choose_scale_zero_point(-3e38f, 3e38f, dtype::int8); }) == quench::errc::invalid_value);
  range_options neg;
  neg.min_real_range = -1.f;
  CHECK_THROWS_AS(quench::choose_scale_zero_point(0.f, 1.f, dtype::int8, neg), quench::error);
}

TEST_CASE("per-axis and from-data helpers") {
  auto p = quench::choose_qparams_per_axis({-1.f, 0.f, -2.f}, {1.f, 0.f, 4.f}, dtype::int8, 0, sym());
  CHECK(p.granularity == quench::quant_granularity::per_axis);
  CHECK(p.scales.size() == 3);
  CHECK(p.scales[1] == 1.f);
  CHECK(p.zero_points.empty());  // all symmetric int8 zero points are 0
  CHECK(p.scales[2] == static_cast<float>(8.0 / 254.0));

  // x[2][3]: per-axis 0 and per-tensor from the data.
  std::vector<float> x{-1.f, 0.5f, 2.f, 3.f, 4.f, 5.f};
  const quench::const_tensor_view<float> v(x.data(), {2, 3});
  auto pt = quench::qparams_from_data(v, dtype::uint8);
  CHECK(pt.scales[0] == static_cast<float>(6.0 / 255.0));
  auto pa = quench::qparams_from_data(v, dtype::uint8, 0);
  CHECK(pa.scales[0] == static_cast<float>(3.0 / 255.0));
  CHECK(pa.zero_point(0) == 85);
  CHECK(pa.scales[1] == static_cast<float>(5.0 / 255.0));
  CHECK(pa.zero_point(1) == 0);
  auto pl = quench::qparams_from_data(v, dtype::int8, -1, sym());
  CHECK(pl.scales.size() == 3);
  CHECK(pl.scales[0] == static_cast<float>(6.0 / 254.0));
  x[4] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(quench::qparams_from_data(v, dtype::int8), quench::error);
  CHECK_THROWS_AS(quench::qparams_from_data(v, dtype::int8, 2), quench::error);  // axis out of range
}

TEST_SUITE("ort_reference") {
  TEST_CASE("choose_scale_zero_point reproduces ORT's compute_scale_zp bit for bit") {
    const char* dir = std::getenv("QUENCH_ORT_REFERENCE_DIR");
    if (!dir) {
      MESSAGE("QUENCH_ORT_REFERENCE_DIR is not set: run the ctest entry quant_ort_scale_zp for this comparison");
      return;
    }
    std::ifstream f(std::string(dir) + "/compute_scale_zp.txt");
    REQUIRE(f.good());
    std::string line;
    std::size_t rows = 0, refused = 0;
    while (std::getline(f, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream in(line);
      int qtype, symmetric, reduce;
      std::string mrr, lo, hi, scale;
      long long zp;
      in >> qtype >> symmetric >> reduce >> mrr >> lo >> hi >> scale >> zp;
      REQUIRE(!in.fail());
      range_options o;
      o.symmetric = symmetric != 0;
      o.reduce_range = reduce != 0;
      o.min_real_range = from_bits(static_cast<std::uint32_t>(std::stoul(mrr, nullptr, 16)));
      const float rmin = from_bits(static_cast<std::uint32_t>(std::stoul(lo, nullptr, 16)));
      const float rmax = from_bits(static_cast<std::uint32_t>(std::stoul(hi, nullptr, 16)));
      const float want_scale = from_bits(static_cast<std::uint32_t>(std::stoul(scale, nullptr, 16)));
      CAPTURE(line);
      ++rows;
      if (std::isinf(want_scale)) {
        // ORT returns an infinite scale when rmax - rmin overflows float32; quench refuses.
        CHECK_THROWS_AS(quench::choose_scale_zero_point(rmin, rmax, static_cast<dtype>(qtype), o), quench::error);
        ++refused;
        continue;
      }
      const auto sz = quench::choose_scale_zero_point(rmin, rmax, static_cast<dtype>(qtype), o);
      INFO("scale ", hex(to_bits(sz.scale)), " want ", hex(to_bits(want_scale)));
      CHECK(to_bits(sz.scale) == to_bits(want_scale));
      CHECK(sz.zero_point == zp);
    }
    CHECK(rows > 3000);
    MESSAGE(rows, " rows of ORT's compute_scale_zp compared (", refused,
            " with an infinite ORT scale, which quench refuses with invalid_value)");
  }
}
