#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "quench/sparsity/permutation.hpp"

namespace sp = quench::sparsity;
using quench::simd_target;

namespace {
std::vector<float> normal_matrix(std::size_t rows, std::size_t c, std::uint32_t seed) {
  std::vector<float> m(rows * c);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  for (auto& v : m) v = d(rng);
  return m;
}

bool is_permutation(const std::vector<std::int64_t>& p) {
  std::vector<std::int64_t> s = p;
  std::sort(s.begin(), s.end());
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}
}  // namespace

TEST_CASE("search_permutation: a valid permutation that keeps more magnitude, the same on every SIMD target") {
  for (auto [rows, c] : {std::pair<std::size_t, std::size_t>{64, 64}, {37, 128}, {256, 32}, {9, 16}}) {
    CAPTURE(rows);
    CAPTURE(c);
    const auto m = normal_matrix(rows, c, static_cast<std::uint32_t>(rows * c));
    sp::permutation_options o;
    o.target = simd_target::scalar;
    const auto want = sp::search_permutation(m.data(), rows, c, o);
    CHECK(is_permutation(want.permutation));
    CHECK(want.magnitude_after > want.magnitude_before);
    CHECK(want.magnitude_after <= want.magnitude_bound);
    CHECK(want.magnitude_after == doctest::Approx(sp::retained_nm(m.data(), rows, c, o.pattern, want.permutation)).epsilon(1e-12));
    CHECK(want.efficacy() > 0);
    CHECK(want.efficacy() <= 1);
    for (simd_target t : quench::supported_simd_targets()) {
      o.target = t;
      const auto got = sp::search_permutation(m.data(), rows, c, o);
      CHECK_MESSAGE(got.permutation == want.permutation, quench::simd_target_name(t));
    }
  }
}

TEST_CASE("search_permutation: finds the optimum when the stripes are badly mixed") {
  // Two large columns per row belong in each stripe; the original order puts all four large ones in
  // stripe 0, so a 2:4 mask drops two of them in every row. Swapping fixes it completely.
  const std::size_t rows = 16, c = 8;
  std::vector<float> m(rows * c);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t x = 0; x < c; ++x) m[r * c + x] = (x < 4 ? 10.f : 1.f) + 0.01f * static_cast<float>((r * 7 + x * 3) % 5);
  const auto res = sp::search_permutation(m.data(), rows, c);
  CHECK(res.magnitude_after == doctest::Approx(res.magnitude_bound));
  CHECK(res.magnitude_after > res.magnitude_before * 1.5);
  CHECK(res.swaps >= 2);
  // 4:8 and 1:2 work the same way.
  sp::permutation_options o;
  o.pattern = {1, 2};
  const auto half = sp::search_permutation(m.data(), rows, c, o);
  CHECK(half.magnitude_after == doctest::Approx(half.magnitude_bound));
}

TEST_CASE("search_permutation: an identity when nothing can be gained; refusals") {
  std::vector<float> m(8 * 16, 1.f);
  const auto res = sp::search_permutation(m.data(), 8, 16);
  CHECK(res.is_identity());
  CHECK(res.magnitude_after == res.magnitude_before);
  CHECK_THROWS_AS(sp::search_permutation(m.data(), 8, 15), quench::error);
  m[5] = std::nanf("");
  CHECK_THROWS_WITH_AS(sp::search_permutation(m.data(), 8, 16), doctest::Contains("element [0, 5] is not finite"), quench::error);
  sp::permutation_options o;
  o.pattern = {3, 2};
  CHECK_THROWS_AS(sp::search_permutation(m.data(), 8, 16, o), quench::error);
}

TEST_CASE("search_permutation: a 512-channel layer in well under the time limit") {
  const std::size_t rows = 512, c = 512;
  const auto m = normal_matrix(rows, c, 11);
  const auto res = sp::search_permutation(m.data(), rows, c);
  MESSAGE("512 x 512: retained " << res.magnitude_before << " -> " << res.magnitude_after << " (+"
                                  << 100 * (res.magnitude_after / res.magnitude_before - 1) << " %), efficacy " << res.efficacy() << ", "
                                  << res.swaps << " swaps in " << res.rounds << " rounds, " << res.seconds << " s");
  CHECK(!res.timed_out);
  CHECK(res.magnitude_after > res.magnitude_before * 1.005);
}

TEST_CASE("search_permutation: escapes from the local optimum never end worse than the plain search") {
  const auto m = normal_matrix(64, 64, 21);
  sp::permutation_options o;
  const auto plain = sp::search_permutation(m.data(), 64, 64, o);
  o.escape_attempts = 50;
  const auto escaped = sp::search_permutation(m.data(), 64, 64, o);
  CHECK(escaped.magnitude_after >= plain.magnitude_after);
  CHECK(escaped.magnitude_after == doctest::Approx(sp::retained_nm(m.data(), 64, 64, o.pattern, escaped.permutation)).epsilon(1e-12));
  CHECK(is_permutation(escaped.permutation));
  for (simd_target t : quench::supported_simd_targets()) {
    o.target = t;
    CHECK(sp::search_permutation(m.data(), 64, 64, o).permutation == escaped.permutation);
  }
}
