#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/minmax_observer.hpp"

using quench::calib::minmax_observer;
using quench::calib::minmax_options;
using calib_test::hex;
using calib_test::ref_float;

TEST_CASE("per-channel min-max along every axis equals numpy's nanmin/nanmax over the finite values") {
  const auto& ref = calib_test::reference();
  if (ref.is_null()) return;
  const auto& pc = ref.at("per_channel", "ref");
  const auto x = calib_test::read_f32(pc.at("file", "ref").as_string("ref"));
  std::vector<std::int64_t> dims;
  for (const auto& d : pc.at("shape", "ref").as_array("ref")) dims.push_back(d.as_int64("ref"));
  const quench::shape s(dims);
  REQUIRE(x.size() == s.numel());
  for (int axis = 0; axis < 4; ++axis) {
    for (std::int64_t a : {static_cast<std::int64_t>(axis), static_cast<std::int64_t>(axis - 4)}) {
      for (auto t : quench::supported_simd_targets()) {
        minmax_options o;
        o.axis = a;
        minmax_observer obs("pc", o, t);
        obs.observe(x.data(), s);
        const auto& want = pc.at("axes", "ref").at(std::to_string(axis), "ref");
        const auto& wmin = want.at("min", "ref").as_array("ref");
        const auto& wmax = want.at("max", "ref").as_array("ref");
        REQUIRE(obs.channels() == wmin.size());
        for (std::size_t c = 0; c < wmin.size(); ++c) {
          INFO("axis " << a << " channel " << c << " target " << quench::simd_target_name(t));
          CHECK(obs.range(c).min == ref_float(wmin[c]));
          CHECK(obs.range(c).max == ref_float(wmax[c]));
        }
        CHECK(obs.nonfinite().nan == pc.at("nan", "ref").as_uint64("ref"));
        CHECK(obs.nonfinite().pos_inf == pc.at("pos_inf", "ref").as_uint64("ref"));
        CHECK(obs.nonfinite().neg_inf == pc.at("neg_inf", "ref").as_uint64("ref"));
      }
    }
  }
}

TEST_CASE("moving average reproduces ORT's float32 merge_range, plain and symmetric") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto x = calib_test::read_f32(c.at("file", "ref").as_string("ref"));
    for (bool sym : {false, true}) {
      minmax_options o;
      o.moving_average = true;
      o.symmetric = sym;
      minmax_observer obs(name, o);
      std::size_t at = 0;
      for (auto n : calib_test::batch_sizes(c)) {
        obs.observe(x.data() + at, quench::shape{static_cast<std::int64_t>(n)});
        at += n;
      }
      const auto& want = c.at(sym ? "moving_average_symmetric" : "moving_average", "ref").as_array("ref");
      INFO(name << " symmetric " << sym);
      CHECK(hex(obs.range().min) == hex(ref_float(want[0])));
      CHECK(hex(obs.range().max) == hex(ref_float(want[1])));
    }
  });
}

TEST_CASE("plain min-max: merge of shards equals one pass; symmetric; all element types") {
  const auto x = calib_test::normal_data(10000, 5, 3.0f);
  minmax_observer all("t");
  all.observe(x.data(), quench::shape{100, 100});
  minmax_observer a("t"), b("t");
  a.observe(x.data(), quench::shape{3000});
  b.observe(x.data() + 3000, quench::shape{7000});
  b.merge(a);
  CHECK(b.range() == all.range());

  minmax_options so;
  so.symmetric = true;
  minmax_observer sym("t", so);
  sym.observe(x.data(), quench::shape{10000});
  CHECK(sym.range().max == all.range().amax());
  CHECK(sym.range().min == -all.range().amax());

  std::vector<double> xd(x.begin(), x.end());
  std::vector<quench::float16> xh;
  std::vector<quench::bfloat16> xb;
  for (float v : x) {
    xh.emplace_back(v);
    xb.emplace_back(v);
  }
  minmax_observer od("d"), oh("h"), ob("b");
  od.observe(xd.data(), quench::shape{10000});
  oh.observe(xh.data(), quench::shape{10000});
  ob.observe(xb.data(), quench::shape{10000});
  CHECK(od.range() == all.range());
  float hmin = HUGE_VALF, bmin = HUGE_VALF;
  for (std::size_t i = 0; i < x.size(); ++i) {
    hmin = std::min(hmin, xh[i].to_float());
    bmin = std::min(bmin, static_cast<float>(xb[i]));
  }
  CHECK(oh.range().min == hmin);
  CHECK(ob.range().min == bmin);

  // type-erased entry
  auto t = quench::tensor::from<float>({4}, {1.f, -2.f, 3.f, 0.5f});
  minmax_observer ot("t");
  ot.observe(t);
  CHECK(ot.range() == quench::calib::range{-2.0, 3.0});
  auto ti = quench::tensor::from<std::int32_t>({1}, {1});
  CHECK_THROWS_AS(ot.observe(ti), quench::error);
}

TEST_CASE("NaN and Inf are counted and excluded; an all-NaN batch is an error naming the tensor") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = HUGE_VALF;
  minmax_observer obs("act_7");
  const std::vector<float> a{1.f, nan, -inf, 2.f, inf, nan};
  obs.observe(a.data(), quench::shape{6});
  CHECK(obs.range() == quench::calib::range{1.0, 2.0});
  CHECK(obs.nonfinite().nan == 2);
  CHECK(obs.nonfinite().pos_inf == 1);
  CHECK(obs.nonfinite().neg_inf == 1);
  const std::vector<float> bad{nan, inf};
  try {
    obs.observe(bad.data(), quench::shape{2});
    FAIL("expected an error");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::not_finite);
    CHECK(std::string(e.what()).find("act_7") != std::string::npos);
  }
  CHECK(obs.nonfinite().nan == 2);  // unchanged by the failed batch
  CHECK(obs.range() == quench::calib::range{1.0, 2.0});

  // per channel: a channel without finite values is reported when its range is asked for
  minmax_options o;
  o.axis = 1;
  minmax_observer pc("act_8", o);
  const std::vector<float> b{1.f, nan, 2.f, nan};  // shape [2, 2]: channel 1 all NaN
  pc.observe(b.data(), quench::shape{2, 2});
  CHECK(pc.range(0) == quench::calib::range{1.0, 2.0});
  CHECK_THROWS_WITH_AS(pc.range(1), doctest::Contains("channel 1"), quench::error);
  CHECK(pc.overall_range() == quench::calib::range{1.0, 2.0});
}

TEST_CASE("errors: moving-average merge, mismatched channels, bad options") {
  minmax_options ma;
  ma.moving_average = true;
  minmax_observer a("t", ma), b("t", ma);
  CHECK_THROWS_WITH_AS(a.merge(b), doctest::Contains("batch order"), quench::error);
  ma.averaging_constant = 1.5;
  CHECK_THROWS_AS(minmax_observer("t", ma), quench::error);

  minmax_options o;
  o.axis = 0;
  minmax_observer pc("t", o);
  const std::vector<float> x(12, 1.f);
  pc.observe(x.data(), quench::shape{3, 4});
  CHECK_THROWS_AS(pc.observe(x.data(), quench::shape{4, 3}), quench::error);
  o.axis = 5;
  minmax_observer bad_axis("t", o);
  CHECK_THROWS_AS(bad_axis.observe(x.data(), quench::shape{3, 4}), quench::error);
  minmax_observer empty("t");
  CHECK_THROWS_AS(empty.range(), quench::error);
  empty.observe(x.data(), quench::shape{0});  // an empty batch changes nothing
  CHECK(empty.channels() == 0);
}

TEST_CASE("observe_range feeds ORT-style averaged batch ranges") {
  minmax_options ma;
  ma.moving_average = true;
  minmax_observer obs("t", ma);
  obs.observe_range({-1.0}, {1.0});
  obs.observe_range({-3.0}, {5.0});
  const float mn = -1.0f + 0.01f * (-3.0f - -1.0f), mx = 1.0f + 0.01f * (5.0f - 1.0f);
  CHECK(obs.range().min == mn);
  CHECK(obs.range().max == mx);
  CHECK_THROWS_AS(obs.observe_range({1.0}, {0.0}), quench::error);
}
