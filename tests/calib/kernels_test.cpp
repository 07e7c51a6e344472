// The observer kernels on every SIMD target this CPU has, bit for bit against the scalar path
// (include/quench/calib/detail/calib_kernels*.hpp).

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/detail/calib_kernels.hpp"

namespace {

/// Values that stress the bin and scan definitions: normals at several scales, exact grid
/// edges, zeros of both signs, subnormals, NaN, +-Inf, and values next to them.
std::vector<float> hard_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<float> v(n);
  for (auto& x : v) {
    switch (pick(rng)) {
      case 0: x = 0.0f; break;
      case 1: x = -0.0f; break;
      case 2: x = std::ldexp(static_cast<float>(static_cast<int>(nd(rng) * 300)), -7); break;  // on the grid
      case 3: x = std::ldexp(nd(rng), -140); break;                                              // subnormal
      case 4: x = std::numeric_limits<float>::quiet_NaN(); break;
      case 5: x = nd(rng) > 0 ? HUGE_VALF : -HUGE_VALF; break;
      case 6: x = std::nextafter(std::ldexp(1.0f, 3), 0.0f) * (nd(rng) > 0 ? 1.f : -1.f); break;
      default: x = nd(rng) * 2.5f; break;
    }
  }
  return v;
}

}  // namespace

TEST_CASE("scan: every target finds the scalar extremes and NaN/Inf count") {
  for (std::size_t n : {0u, 1u, 7u, 31u, 32u, 33u, 1000u, 4099u}) {
    const auto x = hard_values(n, 11u + static_cast<unsigned>(n));
    quench::detail::scan_stats ref;
    quench::detail::scan_float_ref(x.data(), n, ref);
    for (auto t : quench::supported_simd_targets()) {
      quench::detail::scan_stats s;
      quench::detail::scan_float(x.data(), n, s, t);
      INFO("target " << quench::simd_target_name(t) << " n " << n);
      CHECK(calib_test::to_bits(s.min) == calib_test::to_bits(ref.min));
      CHECK(calib_test::to_bits(s.max) == calib_test::to_bits(ref.max));
      CHECK(s.nonfinite == ref.nonfinite);
    }
  }
  // zeros enter as +0 whatever their sign
  const std::vector<float> z{-0.0f, -0.0f};
  for (auto t : quench::supported_simd_targets()) {
    quench::detail::scan_stats s;
    quench::detail::scan_float(z.data(), z.size(), s, t);
    CHECK(!std::signbit(s.min));
    CHECK(!std::signbit(s.max));
  }
}

TEST_CASE("scan_bin: every target gives the scalar extremes and bins; count_bins spreads over the copies") {
  const std::size_t n = 5003;
  const auto x = hard_values(n, 7);
  for (int bins : {4, 64, 2048}) {
    for (bool absolute : {false, true}) {
      for (int se : {-126, -20, -1, 0, 3, 7, 60, 127}) {
        const float scale = std::ldexp(1.0f, se);
        const std::int32_t half = absolute ? 0 : bins / 2;
        for (std::size_t len : {n, std::size_t{13}, std::size_t{2048}}) {
          std::vector<std::uint32_t> ref(len);
          quench::detail::scan_stats rs;
          quench::detail::scan_bin_float_ref(x.data(), len, rs, scale, half, bins, ref.data());
          for (auto t : quench::supported_simd_targets()) {
            std::vector<std::uint32_t> got(len, 0xdeadbeef);
            quench::detail::scan_stats gs;
            quench::detail::scan_bin_float(x.data(), len, gs, scale, half, bins, got.data(), t);
            INFO("target " << quench::simd_target_name(t) << " bins " << bins << " absolute " << absolute
                           << " scale 2^" << se << " n " << len);
            CHECK(got == ref);
            CHECK(calib_test::to_bits(gs.min) == calib_test::to_bits(rs.min));
            CHECK(calib_test::to_bits(gs.max) == calib_test::to_bits(rs.max));
            CHECK(gs.nonfinite == rs.nonfinite);
          }
        }
      }
    }
  }
  const std::vector<std::uint32_t> idx{0, 1, 1, 3, 2, 2, 0};
  const std::size_t stride = 5;
  std::vector<std::uint32_t> sub(4 * stride, 0);
  quench::detail::count_bins(idx.data(), idx.size(), sub.data(), stride);
  CHECK(sub == std::vector<std::uint32_t>{1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0});
}

TEST_CASE("bin_pow2: the definition floor(x * 2^s) (+ bins/2), float and double alike") {
  // exact cases, including a negative product that underflows to -0
  const float s3 = 8.0f;
  CHECK(quench::detail::bin_pow2_one(0.0f, s3, 8, 16) == 8u);
  CHECK(quench::detail::bin_pow2_one(-0.0f, s3, 8, 16) == 8u);
  CHECK(quench::detail::bin_pow2_one(0.125f, s3, 8, 16) == 9u);
  CHECK(quench::detail::bin_pow2_one(-0.125f, s3, 8, 16) == 7u);
  CHECK(quench::detail::bin_pow2_one(std::nextafter(-0.125f, 0.0f), s3, 8, 16) == 7u);
  CHECK(quench::detail::bin_pow2_one(-1.0f, s3, 8, 16) == 0u);
  const float tiny = std::numeric_limits<float>::denorm_min();
  CHECK(quench::detail::bin_pow2_one(-tiny, std::ldexp(1.0f, -10), 8, 16) == 7u);  // -tiny * 2^-10 == -0
  CHECK(quench::detail::bin_pow2_one(tiny, std::ldexp(1.0f, -10), 8, 16) == 8u);
  CHECK(quench::detail::bin_pow2_one(-2.5f, 1.0f, 0, 16) == 2u);  // absolute
  const auto x = hard_values(2000, 3);
  for (float v : x) {
    if (!std::isfinite(v) || std::fabs(v) >= 8.0f) continue;
    for (int se : {-3, 0, 5}) {
      CHECK(quench::detail::bin_pow2_one(v, std::ldexp(1.0f, se), 1024, 2048) ==
            static_cast<std::uint32_t>(quench::detail::bin_pow2_double(v, se, 1024, 2048)));
      CHECK(quench::detail::bin_pow2_one(v, std::ldexp(1.0f, se), 0, 2048) ==
            static_cast<std::uint32_t>(quench::detail::bin_pow2_double(v, se, 0, 2048)));
    }
  }
}
