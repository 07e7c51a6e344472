#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/entropy.hpp"
#include "quench/calib/histogram_observer.hpp"
#include "quench/calib/mse.hpp"
#include "quench/calib/percentile.hpp"

using quench::calib::histogram_observer;
using quench::calib::histogram_options;

namespace {

histogram_options abs_opt(std::size_t bins = 2048) {
  histogram_options o;
  o.num_bins = bins;
  o.absolute = true;
  return o;
}

void observe_all(histogram_observer& h, const float* x, const std::vector<std::size_t>& sizes) {
  std::size_t at = 0;
  for (auto n : sizes) {
    h.observe(x + at, quench::shape{static_cast<std::int64_t>(n)});
    at += n;
  }
}

bool same_state(const histogram_observer& a, const histogram_observer& b) {
  const auto& x = a.state();
  const auto& y = b.state();
  if (x.channels.size() != y.channels.size() || x.nonfinite != y.nonfinite) return false;
  for (std::size_t c = 0; c < x.channels.size(); ++c) {
    const auto& p = x.channels[c];
    const auto& q = y.channels[c];
    if (p.exponent != q.exponent || p.counts != q.counts || p.min != q.min || p.max != q.max) return false;
  }
  return true;
}

/// Data whose range keeps growing, so shards and batch orders disagree on the grid until merged.
std::vector<float> growing_data(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = nd(rng) * std::ldexp(1.0f, static_cast<int>(i * 24 / n) - 12) + (i % 97 == 0 ? 1e-30f : 0.0f);
  v[n / 3] = std::numeric_limits<float>::quiet_NaN();
  v[n / 2] = -HUGE_VALF;
  v[n - 5] = 0.0f;
  return v;
}

}  // namespace

TEST_CASE("power-of-two histogram equals the independent numpy computation on every reference data set") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto x = calib_test::read_f32(c.at("file", "ref").as_string("ref"));
    for (bool absolute : {false, true}) {
      const auto& want = c.at(absolute ? "pow2_absolute" : "pow2_signed", "ref");
      const auto wh = calib_test::ref_histogram(want);
      for (auto t : quench::supported_simd_targets()) {
        histogram_observer h(name, absolute ? abs_opt() : histogram_options{}, t);
        observe_all(h, x.data(), calib_test::batch_sizes(c));
        INFO(name << " absolute " << absolute << " target " << quench::simd_target_name(t));
        CHECK(h.exponent() == want.at("exponent", "ref").as_int64("ref"));
        const auto got = h.histogram();
        CHECK(got.counts == wh.counts);
        CHECK(got.edges == wh.edges);
        CHECK(got.min == wh.min);
        CHECK(got.max == wh.max);
      }
    }
  });
}

TEST_CASE("sharded calibration merges to the single pass bit for bit (n = 1, 2, 3, 7, unequal shards)") {
  const std::size_t n = 200000;
  const auto x = growing_data(n, 17);
  for (bool absolute : {false, true}) {
    const histogram_options opt = absolute ? abs_opt() : histogram_options{};
    histogram_observer single("t", opt);
    observe_all(single, x.data(), {n});
    for (std::size_t shards : {1u, 2u, 3u, 7u}) {
      // unequal cut points, and each shard observes its part in unequal batches
      std::vector<std::size_t> cuts{0};
      for (std::size_t k = 1; k < shards; ++k) cuts.push_back(n * k * k / (shards * shards) + 13 * k);
      cuts.push_back(n);
      std::vector<histogram_observer> parts;
      for (std::size_t k = 0; k < shards; ++k) {
        histogram_observer p("t", opt);
        const std::size_t len = cuts[k + 1] - cuts[k];
        observe_all(p, x.data() + cuts[k], {len / 3, len - len / 3 - len / 5, len / 5});
        parts.push_back(std::move(p));
      }
      // merge in reverse order to show the order does not matter
      histogram_observer merged("t", opt);
      for (std::size_t k = shards; k-- > 0;) merged.merge(parts[k]);
      INFO("absolute " << absolute << " shards " << shards);
      CHECK(same_state(merged, single));
      const auto hm = merged.histogram(), hs = single.histogram();
      if (absolute) {
        CHECK(quench::calib::trt_entropy_amax(hm) == quench::calib::trt_entropy_amax(hs));
        CHECK(quench::calib::trt_mse_amax(hm) == quench::calib::trt_mse_amax(hs));
        CHECK(quench::calib::trt_percentile_amax(hm) == quench::calib::trt_percentile_amax(hs));
      } else {
        CHECK(quench::calib::ort_entropy_range(hm) == quench::calib::ort_entropy_range(hs));
        quench::calib::ort_percentile_options po;
        po.symmetric = false;
        CHECK(quench::calib::ort_percentile_range(hm, po) == quench::calib::ort_percentile_range(hs, po));
      }
    }
  }
}

TEST_CASE("batch order and batch sizes do not change the histogram") {
  const auto x = growing_data(40000, 3);
  histogram_observer a("t"), b("t");
  observe_all(a, x.data(), {40000});
  // reversed order, in small batches (the direct path) and one large one (the buffered path)
  std::vector<float> rev(x.rbegin(), x.rend());
  observe_all(b, rev.data(), {100, 900, 5000, 34000});
  CHECK(same_state(a, b));
}

TEST_CASE("all SIMD targets, both binning paths and all element types give the same counts") {
  const auto x = growing_data(70000, 9);
  histogram_observer ref("t", {}, quench::simd_target::scalar);
  observe_all(ref, x.data(), {70000});
  for (auto t : quench::supported_simd_targets()) {
    histogram_observer h("t", {}, t);
    observe_all(h, x.data(), {70000});
    CHECK(same_state(h, ref));
  }
  std::vector<double> xd(x.begin(), x.end());
  histogram_observer hd("t");
  hd.observe(xd.data(), quench::shape{70000});
  CHECK(same_state(hd, ref));
  // float16 / bfloat16 data bins exactly as the same values given as float
  std::vector<quench::float16> xh;
  std::vector<float> xhf;
  for (float v : x) {
    xh.emplace_back(v * 1e-3f);
    xhf.push_back(xh.back().to_float());
  }
  histogram_observer hh("t"), hf("t");
  hh.observe(xh.data(), quench::shape{70000});
  hf.observe(xhf.data(), quench::shape{70000});
  CHECK(same_state(hh, hf));
  std::vector<quench::bfloat16> xb;
  std::vector<float> xbf;
  for (float v : x) {
    xb.emplace_back(v);
    xbf.push_back(static_cast<float>(xb.back()));
  }
  histogram_observer hb("t"), hbf("t");
  hb.observe(xb.data(), quench::shape{70000});
  hbf.observe(xbf.data(), quench::shape{70000});
  CHECK(same_state(hb, hbf));
}

TEST_CASE("per-channel histograms: one grid per channel, equal to observing each channel alone") {
  const auto x = calib_test::normal_data(3 * 5 * 64, 4);
  histogram_options o;
  o.num_bins = 256;
  o.axis = 1;
  histogram_observer pc("w", o);
  pc.observe(x.data(), quench::shape{3, 5, 64});
  REQUIRE(pc.channels() == 5);
  for (std::size_t c = 0; c < 5; ++c) {
    std::vector<float> chan;
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t k = 0; k < 64; ++k) chan.push_back(x[(a * 5 + c) * 64 + k]);
    histogram_options one;
    one.num_bins = 256;
    histogram_observer h("w", one);
    h.observe(chan.data(), quench::shape{static_cast<std::int64_t>(chan.size())});
    CHECK(pc.histogram(c).counts == h.histogram().counts);
    CHECK(pc.histogram(c).edges == h.histogram().edges);
  }
  CHECK_THROWS_AS(pc.histogram(5), quench::error);
  CHECK_THROWS_AS(pc.observe(x.data(), quench::shape{3, 64, 5}), quench::error);
  histogram_observer other("w", o);
  other.observe(x.data() + 64, quench::shape{2, 5, 64});
  pc.merge(other);
  CHECK(pc.histogram(0).total() == 3 * 64 + 2 * 64);
}

TEST_CASE("growth merges bins exactly and edges follow the grid") {
  histogram_options o;
  o.num_bins = 8;
  histogram_observer h("t", o);
  const std::vector<float> a{0.1f, -0.3f, 0.45f};  // max 0.45 < 2^-1: grid [-0.5, 0.5), width 1/8
  h.observe(a.data(), quench::shape{3});
  CHECK(h.exponent() == -1);
  auto hist = h.histogram();
  CHECK(hist.edges.front() == -0.5);
  CHECK(hist.edges.back() == 0.5);
  CHECK(hist.counts == std::vector<std::int64_t>{0, 1, 0, 0, 1, 0, 0, 1});
  const std::vector<float> b{3.0f};  // grid [-4, 4), width 1: the old bins merge in groups of 8
  h.observe(b.data(), quench::shape{1});
  CHECK(h.exponent() == 2);
  hist = h.histogram();
  CHECK(hist.counts == std::vector<std::int64_t>{0, 0, 0, 1, 2, 0, 0, 1});
  CHECK(hist.min == static_cast<double>(-0.3f));
  CHECK(hist.max == 3.0);
}

TEST_CASE("NaN/Inf are counted, never binned; an all-NaN batch leaves the observer unchanged") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t n : {10u, 40000u}) {  // direct and buffered paths
    std::vector<float> x(n, 1.5f);
    x[1] = nan;
    x[2] = HUGE_VALF;
    x[3] = -HUGE_VALF;
    histogram_observer h("relu_9");
    h.observe(x.data(), quench::shape{static_cast<std::int64_t>(n)});
    CHECK(h.histogram().total() == static_cast<std::int64_t>(n - 3));
    CHECK(h.nonfinite().nan == 1);
    CHECK(h.nonfinite().pos_inf == 1);
    CHECK(h.nonfinite().neg_inf == 1);
    std::vector<float> bad(n, nan);
    bad[0] = HUGE_VALF;
    try {
      h.observe(bad.data(), quench::shape{static_cast<std::int64_t>(n)});
      FAIL("expected an error");
    } catch (const quench::error& e) {
      CHECK(e.code() == quench::errc::not_finite);
      CHECK(std::string(e.what()).find("relu_9") != std::string::npos);
    }
    CHECK(h.nonfinite().nan == 1);
    CHECK(h.histogram().total() == static_cast<std::int64_t>(n - 3));
  }
  histogram_observer empty("t");
  CHECK_THROWS_AS(empty.histogram(), quench::error);
  const std::vector<float> nans(3, nan);
  CHECK_THROWS_AS(empty.observe(nans.data(), quench::shape{3}), quench::error);
  CHECK(empty.channels() == 0);  // a failed first batch leaves no trace either
  CHECK(empty.nonfinite().nan == 0);
}

TEST_CASE("options and merge are validated") {
  histogram_options o;
  o.num_bins = 1000;
  CHECK_THROWS_AS(histogram_observer("t", o), quench::error);
  o.num_bins = 2;
  CHECK_THROWS_AS(histogram_observer("t", o), quench::error);
  histogram_observer a("t"), b("t", abs_opt());
  CHECK_THROWS_AS(a.merge(b), quench::error);
  // values far outside float range (float64 data) still bin exactly
  const std::vector<double> big{1e300, -3e299, 1.0};
  histogram_observer d("t");
  d.observe(big.data(), quench::shape{3});
  CHECK(d.exponent() == 997);
  CHECK(d.histogram().total() == 3);
  const std::vector<float> f{2.0f};
  d.observe(f.data(), quench::shape{1});  // a float batch on a grid beyond float's range
  CHECK(d.histogram().total() == 4);
}
