#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/ort_histogram_observer.hpp"

using quench::calib::ort_histogram_kind;
using quench::calib::ort_histogram_observer;
using quench::calib::ort_histogram_options;

namespace {

ort_histogram_observer collect(const std::string& name, const std::vector<float>& x,
                               const std::vector<std::size_t>& sizes, ort_histogram_options o) {
  ort_histogram_observer obs(name, o);
  std::size_t at = 0;
  for (auto n : sizes) {
    obs.observe(x.data() + at, quench::shape{static_cast<std::int64_t>(n)});
    at += n;
  }
  return obs;
}

}  // namespace

TEST_CASE("ORT collect_value and collect_absolute_value: numpy's counts and edge bits, batch by batch") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto x = calib_test::read_f32(c.at("file", "ref").as_string("ref"));
    const auto sizes = calib_test::batch_sizes(c);
    for (std::size_t bins : {2048u, 128u}) {
      for (auto kind : {ort_histogram_kind::value, ort_histogram_kind::absolute_value}) {
        const bool value = kind == ort_histogram_kind::value;
        const auto& want = c.at((value ? "ort_value_" : "ort_absolute_") + std::to_string(bins), "ref");
        const auto wh = calib_test::ref_histogram(want);
        const auto h = collect(name, x, sizes, {kind, bins}).histogram();
        INFO(name << (value ? " value " : " absolute ") << bins);
        CHECK(h.counts == wh.counts);
        REQUIRE(h.edges.size() == wh.edges.size());
        std::size_t bad = 0;
        for (std::size_t k = 0; k < h.edges.size(); ++k) bad += h.edges[k] != wh.edges[k];
        CHECK(bad == 0);
        CHECK(h.min == wh.min);
        CHECK(h.max == wh.max);
      }
    }
  });
}

TEST_CASE("ORT-compatible histograms refuse to merge and reject NaN-only batches") {
  ort_histogram_observer a("t"), b("t");
  CHECK_THROWS_WITH_AS(a.merge(b), doctest::Contains("batch order"), quench::error);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x{nan, 1.0f, -2.0f, HUGE_VALF};
  a.observe(x.data(), quench::shape{4});
  CHECK(a.histogram().total() == 2);
  CHECK(a.nonfinite().nan == 1);
  CHECK(a.nonfinite().pos_inf == 1);
  const std::vector<float> bad{nan};
  CHECK_THROWS_AS(a.observe(bad.data(), quench::shape{1}), quench::error);
  auto t = quench::tensor::from<double>({1}, {1.0});
  CHECK_THROWS_AS(a.observe(t), quench::error);
  CHECK(ort_histogram_options::entropy().num_bins == 128);
  CHECK(ort_histogram_options::percentile().kind == ort_histogram_kind::absolute_value);
  CHECK(ort_histogram_options::percentile(false).kind == ort_histogram_kind::value);
}

TEST_CASE("an all-zero first batch and growth from it follow ORT's threshold == 0 path") {
  const std::vector<float> z(10, 0.0f), y{1.0f, -0.5f, 0.25f};
  ort_histogram_observer o("t", {ort_histogram_kind::value, 8});
  o.observe(z.data(), quench::shape{10});
  auto h = o.histogram();
  CHECK(h.edges.front() == -0.5);  // numpy widens an empty range by 0.5
  CHECK(h.counts[4] == 10);
  o.observe(y.data(), quench::shape{3});
  h = o.histogram();
  CHECK(h.edges.front() == -1.0);
  CHECK(h.total() == 13);
  CHECK(h.counts[4] == 10);  // old counts added bin by bin; 0.25 lands in bin 5, -0.5 in bin 2
}
