#include <doctest/doctest.h>

#include "calib_test_util.hpp"
#include "quench/calib/mse.hpp"

using calib_test::hex;
using calib_test::ref_float;

TEST_CASE("pytorch-quantization MSE amax equals the torch/numpy transcription") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto& p = c.at("pq", "ref");
    const auto h = calib_test::ref_histogram(p);
    INFO(name);
    CHECK(hex(quench::calib::trt_mse_amax(h)) == hex(ref_float(p.at("mse", "ref"))));
    quench::calib::trt_mse_options o;
    o.num_bits = 4;
    o.stride = 2;
    o.start_bin = 64;
    CHECK(hex(quench::calib::trt_mse_amax(h, o)) == hex(ref_float(p.at("mse_stride2_4bit", "ref"))));
    const auto& a = c.at("pow2_absolute", "ref");
    CHECK(hex(quench::calib::trt_mse_amax(calib_test::ref_histogram(a))) == hex(ref_float(a.at("pq_mse", "ref"))));
  });
}

TEST_CASE("MSE: no candidate is an error") {
  quench::calib::histogram h{{1, 2, 3}, {0, 1, 2, 3}, 0, 3};
  CHECK_THROWS_AS(quench::calib::trt_mse_amax(h), quench::error);
  quench::calib::trt_mse_options o;
  o.start_bin = 0;
  CHECK(quench::calib::trt_mse_amax(h, o) > 0);
}
