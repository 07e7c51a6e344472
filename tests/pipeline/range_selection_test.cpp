#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "quench/calib/histogram_observer.hpp"
#include "quench/pipeline/range_selection.hpp"

using quench::dtype;

namespace {
/// A signed histogram of `n` values drawn by `draw`.
template <typename Draw>
quench::calib::histogram histogram_of(std::size_t n, Draw draw) {
  quench::tensor x(dtype::float32, {static_cast<std::int64_t>(n)}, "t");
  for (auto& v : x.view<float>()) v = draw();
  quench::calib::histogram_options o;
  o.num_bins = 2048;
  quench::calib::histogram_observer obs("t", o);
  obs.observe(x);
  return obs.histogram();
}
}  // namespace

TEST_CASE("range_selection: the error model; a heavy tail is clipped, a uniform tensor keeps min-max") {
  std::mt19937 rng(1);
  SUBCASE("uniform data: min-max (or a tie with it) wins") {
    std::uniform_real_distribution<float> u(0.f, 4.f);
    const auto h = histogram_of(100000, [&] { return u(rng); });
    const auto c = quench::pipeline::range_candidates(h, dtype::uint8, false);
    const auto& minmax = *std::find_if(c.begin(), c.end(), [](const auto& k) { return k.method == "minmax"; });
    CHECK(minmax.error <= c.front().error * 1.05);
    // The estimate matches uniform rounding noise: step^2 / 12 with step = 4 / 255.
    const double step = 4.0 / 255;
    CHECK(minmax.error == doctest::Approx(step * step / 12).epsilon(0.1));
  }
  SUBCASE("Laplace data with rare large values: a clipped range beats min-max") {
    std::exponential_distribution<float> e(1.f);
    const auto h = histogram_of(200000, [&] { return e(rng) - e(rng); });
    const auto c = quench::pipeline::range_candidates(h, dtype::int8, true);
    const auto& minmax = *std::find_if(c.begin(), c.end(), [](const auto& k) { return k.method == "minmax"; });
    CHECK(c.front().method != "minmax");
    CHECK(c.front().error < 0.8 * minmax.error);
    CHECK(c.front().range.amax() < minmax.range.amax());
    for (std::size_t i = 1; i < c.size(); ++i) CHECK(c[i - 1].error <= c[i].error);
  }
}
