#include <doctest/doctest.h>

#include <string>

#include "calib_test_util.hpp"
#include "quench/calib/max_range.hpp"
#include "quench/calib/percentile.hpp"

using calib_test::hex;
using calib_test::ref_float;

TEST_CASE("ORT percentile, symmetric on |x| histograms and asymmetric on signed ones, equals numpy") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    for (const char* key : {"ort_value_2048", "ort_value_128", "ort_absolute_2048", "ort_absolute_128"}) {
      const auto& r = c.at(key, "ref");
      const auto h = calib_test::ref_histogram(r);
      const bool symmetric = std::string(key).find("absolute") != std::string::npos;
      for (const auto& p_want : r.at("percentile", "ref").as_object("ref")) {
        const auto& p = p_want.first;
        const auto& want = p_want.second;
        quench::calib::ort_percentile_options o;
        o.percentile = std::stod(p);
        o.symmetric = symmetric;
        const auto got = quench::calib::ort_percentile_range(h, o);
        INFO(name << " " << key << " " << p);
        CHECK(hex(got.min) == hex(ref_float(want.as_array("ref")[0])));
        CHECK(hex(got.max) == hex(ref_float(want.as_array("ref")[1])));
      }
    }
    const auto& s = c.at("pow2_signed", "ref");
    quench::calib::ort_percentile_options o;
    o.percentile = 99.99;
    o.symmetric = false;
    auto got = quench::calib::ort_percentile_range(calib_test::ref_histogram(s), o);
    CHECK(hex(got.min) == hex(ref_float(s.at("ort_percentile", "ref").as_array("ref")[0])));
    CHECK(hex(got.max) == hex(ref_float(s.at("ort_percentile", "ref").as_array("ref")[1])));
    const auto& a = c.at("pow2_absolute", "ref");
    got = quench::calib::ort_percentile_range(calib_test::ref_histogram(a));
    CHECK(hex(got.min) == hex(ref_float(a.at("ort_percentile", "ref").as_array("ref")[0])));
    CHECK(hex(got.max) == hex(ref_float(a.at("ort_percentile", "ref").as_array("ref")[1])));
  });
}

TEST_CASE("pytorch-quantization percentile amax equals numpy") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto& p = c.at("pq", "ref");
    const auto h = calib_test::ref_histogram(p);
    for (const auto& q_want : p.at("percentile", "ref").as_object("ref")) {
      const auto& q = q_want.first;
      const auto& want = q_want.second;
      INFO(name << " " << q);
      CHECK(hex(quench::calib::trt_percentile_amax(h, std::stod(q))) == hex(ref_float(want)));
    }
    const auto& a = c.at("pow2_absolute", "ref");
    CHECK(hex(quench::calib::trt_percentile_amax(calib_test::ref_histogram(a))) ==
          hex(ref_float(a.at("pq_percentile", "ref"))));
  });
}

TEST_CASE("percentile and max: edge cases") {
  quench::calib::histogram h{{0, 3, 1, 0}, {-2, -1, 0, 1, 2}, -1.5, 0.5};
  quench::calib::ort_percentile_options o;
  o.percentile = 100.0;
  o.symmetric = false;
  auto r = quench::calib::ort_percentile_range(h, o);
  CHECK(r.min == -1.5);  // clamped to the data
  CHECK(r.max == 0.0);   // ORT takes the left edge of the bin where the cdf reaches the target
  o.percentile = 101;
  CHECK_THROWS_AS(quench::calib::ort_percentile_range(h, o), quench::error);
  CHECK(quench::calib::max_range(h) == quench::calib::range{-1.5, 0.5});
  CHECK(quench::calib::max_range(h, true) == quench::calib::range{-1.5, 1.5});
  quench::calib::histogram empty{{0, 0}, {0, 1, 2}, 0, 0};
  CHECK_THROWS_AS(quench::calib::trt_percentile_amax(empty), quench::error);
}
