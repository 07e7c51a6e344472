#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/entropy.hpp"

using calib_test::hex;
using calib_test::ref_float;

TEST_CASE("ORT entropy threshold equals the numpy transcription (num_quantized_bins 128/256, stride 3)") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    for (const char* key : {"ort_value_2048", "ort_value_128"}) {
      const auto& r = c.at(key, "ref");
      const auto h = calib_test::ref_histogram(r);
      for (const auto& nq_want : r.at("entropy", "ref").as_object("ref")) {
        const auto& nq = nq_want.first;
        const auto& want = nq_want.second;
        quench::calib::ort_entropy_options o;
        o.num_quantized_bins = std::stoul(nq);
        const auto got = quench::calib::ort_entropy_range(h, o);
        INFO(name << " " << key << " nq " << nq);
        CHECK(hex(got.min) == hex(ref_float(want.as_array("ref")[0])));
        CHECK(hex(got.max) == hex(ref_float(want.as_array("ref")[1])));
      }
      quench::calib::ort_entropy_options o;
      o.stride = 3;
      const auto got = quench::calib::ort_entropy_range(h, o);
      const auto& want = r.at("entropy_stride3", "ref").as_array("ref");
      INFO(name << " " << key << " stride 3");
      CHECK(hex(got.min) == hex(ref_float(want[0])));
      CHECK(hex(got.max) == hex(ref_float(want[1])));
    }
    // the same method on quench's power-of-two histogram
    const auto& p = c.at("pow2_signed", "ref");
    const auto got = quench::calib::ort_entropy_range(calib_test::ref_histogram(p));
    const auto& want = p.at("ort_entropy", "ref").as_array("ref");
    INFO(name << " pow2");
    CHECK(hex(got.min) == hex(ref_float(want[0])));
    CHECK(hex(got.max) == hex(ref_float(want[1])));
  });
}

TEST_CASE("TensorRT / pytorch-quantization entropy amax equals the numpy transcription") {
  calib_test::for_each_case([](const std::string& name, const quench::detail::json_value& c) {
    const auto& p = c.at("pq", "ref");
    const auto h = calib_test::ref_histogram(p);
    INFO(name);
    CHECK(hex(quench::calib::trt_entropy_amax(h)) == hex(ref_float(p.at("entropy", "ref"))));
    quench::calib::trt_entropy_options o;
    o.stride = 4;
    o.start_bin = 256;
    CHECK(hex(quench::calib::trt_entropy_amax(h, o)) == hex(ref_float(p.at("entropy_stride4_start256", "ref"))));
    quench::calib::trt_entropy_options u;
    u.is_unsigned = true;
    CHECK(hex(quench::calib::trt_entropy_amax(h, u)) == hex(ref_float(p.at("entropy_unsigned", "ref"))));
    const auto& q = c.at("pow2_absolute", "ref");
    CHECK(hex(quench::calib::trt_entropy_amax(calib_test::ref_histogram(q))) == hex(ref_float(q.at("pq_entropy", "ref"))));
  });
}

TEST_CASE("entropy: ORT's quirks on small hand-made histograms") {
  // One candidate only when num_bins == num_quantized_bins: the full range, clamped to the data.
  quench::calib::histogram h;
  h.counts.assign(128, 1);
  for (int k = 0; k <= 128; ++k) h.edges.push_back(-1.0 + k / 64.0);
  h.min = -0.9;
  h.max = 0.8;
  const auto r = quench::calib::ort_entropy_range(h);
  CHECK(r.min == -0.9);
  CHECK(r.max == 0.8);
  quench::calib::ort_entropy_options o;
  o.num_quantized_bins = 512;
  CHECK_THROWS_AS(quench::calib::ort_entropy_range(h, o), quench::error);
  o.num_quantized_bins = 0;
  CHECK_THROWS_AS(quench::calib::ort_entropy_range(h, o), quench::error);
  quench::calib::trt_entropy_options t;
  t.start_bin = 129;
  CHECK_THROWS_AS(quench::calib::trt_entropy_amax(h, t), quench::error);
  h.edges.pop_back();
  CHECK_THROWS_AS(quench::calib::ort_entropy_range(h), quench::error);
}
