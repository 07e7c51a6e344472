#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/calibration_table.hpp"

using namespace quench::calib;
using calib_test::ref_float;

namespace {

calibration_table sample_table() {
  calibration_table t;
  tensor_calibration a;
  a.name = "conv1_out";
  a.observer = "histogram";
  a.method = "entropy";
  a.range = {-1.25, 3.5};
  a.nonfinite = {3, 1, 0};
  t.add(a);
  tensor_calibration w;
  w.name = "conv1_param_0";
  w.observer = "minmax";
  w.method = "max";
  w.axis = 0;
  w.channels = {{-0.5, 0.25}, {-0.125, 0.75}, {0.0, 0.0}};
  w.range = {-0.5, 0.75};
  t.add(w);
  tensor_calibration r;
  r.name = "relu";
  r.method = "percentile";
  r.range = {0.0, 6.0};
  t.add(r);
  return t;
}

/// The ranges make_calib_reference.py wrote its tables from.
calibration_table reference_table(const quench::detail::json_value& tables) {
  calibration_table t;
  for (const auto& e : tables.at("entries", "ref").as_array("ref")) {
    const auto& v = e.as_array("ref");
    tensor_calibration c;
    c.name = v[0].as_string("ref");
    c.range = {ref_float(v[1]), ref_float(v[2])};
    t.add(c);
  }
  return t;
}

}  // namespace

TEST_CASE("quench JSON table round trip is exact") {
  const auto t = sample_table();
  const std::string j = write_json(t);
  const auto back = read_json(j);
  CHECK(back == t);
  CHECK(write_json(back) == j);
  CHECK(t.find("relu") != nullptr);
  CHECK(t.find("nope") == nullptr);
  CHECK(t.entries().front().name == "conv1_out");  // sorted
  CHECK_THROWS_AS(read_json("{\"format\": \"quench.calibration_table\", \"version\": 1, \"tensors\": [{\"name\": \"x\"}]}"),
                  quench::error);
  tensor_calibration bad;
  bad.name = "b";
  bad.range = {1.0, -1.0};
  calibration_table tb;
  tb.add(bad);
  CHECK_THROWS_AS(write_json(tb), quench::error);
}

TEST_CASE("TensorRT cache: the reference's bytes, and a text round trip") {
  const auto& ref = calib_test::reference();
  if (ref.is_null()) return;
  const auto& tables = ref.at("tables", "ref");
  const calibration_table t = reference_table(tables);
  const std::string want = tables.at("tensorrt", "ref").as_string("ref");
  const std::string got = write_tensorrt_cache(t);
  CHECK(got == want);
  const auto cache = read_tensorrt_cache(want);
  CHECK(cache.header.version == "8601");
  CHECK(cache.header.algorithm == "EntropyCalibration2");
  CHECK(cache.table.size() == t.size());
  CHECK(write_tensorrt_cache(cache.table, cache.header) == want);
  for (const auto& e : cache.table.entries()) {
    const auto* orig = t.find(e.name);
    REQUIRE(orig != nullptr);
    CHECK(e.range.max == doctest::Approx(orig->range.amax()).epsilon(1e-6));
    CHECK(e.range.min == -e.range.max);
  }
}

TEST_CASE("TensorRT cache: known scales and malformed input") {
  // NVIDIA's forum example: 3c92aa10 is the scale 0.0179033577
  const auto c = read_tensorrt_cache("TRT-7000-EntropyCalibration2\nrelu46: 3c92aa10\r\n\n(Unnamed Layer* 0) [Convolution]_output: 3d2a7e2b\n");
  REQUIRE(c.table.size() == 2);
  CHECK(c.table.find("relu46")->range.max / 127.0 == doctest::Approx(0.0179033577));
  CHECK(c.header.version == "7000");
  for (const char* bad : {"", "TRT-x-Entropy\n", "TRT8601-Entropy\n", "TRT-8601-\n", "TRT-1-E\nname 3c92aa10\n",
                          "TRT-1-E\nname: 3c92aa1g\n", "TRT-1-E\nname: 123456789\n", "TRT-1-E\n: 3c92aa10\n",
                          "TRT-1-E\nname: 7fc00000\n", "TRT-1-E\nname: bf800000\n", "TRT-1-E\na: 1\na: 2\n"}) {
    INFO(bad);
    CHECK_THROWS_AS(read_tensorrt_cache(bad), quench::error);
  }
  calibration_table t;
  tensor_calibration e;
  e.name = "bad\nname";
  t.add(e);
  CHECK_THROWS_AS(write_tensorrt_cache(t), quench::error);
  CHECK_THROWS_AS(write_tensorrt_cache(sample_table(), {"86x", "EntropyCalibration2"}), quench::error);
}

TEST_CASE("ncnn table: ncnn2table's text reads to its scales; quench's text round-trips") {
  const auto& ref = calib_test::reference();
  if (ref.is_null()) return;
  const auto& tables = ref.at("tables", "ref");
  const auto t = read_ncnn_table(tables.at("ncnn", "ref").as_string("ref"));
  for (const auto& e : tables.at("ncnn_entries", "ref").as_array("ref")) {
    const auto& v = e.as_array("ref");
    const auto* got = t.find(v[0].as_string("ref"));
    REQUIRE(got != nullptr);
    const auto& scales = v[1].as_array("ref");
    if (got->channels.empty()) {
      REQUIRE(scales.size() == 1);
      CHECK(static_cast<float>(127.0 / got->range.max) == static_cast<float>(ref_float(scales[0])));
    } else {
      CHECK(got->axis == 0);
      REQUIRE(got->channels.size() == scales.size());
      for (std::size_t k = 0; k < scales.size(); ++k)
        CHECK(static_cast<float>(127.0 / got->channels[k].max) == static_cast<float>(ref_float(scales[k])));
    }
  }
  const std::string text = write_ncnn_table(t);
  CHECK(write_ncnn_table(read_ncnn_table(text)) == text);
  // from quench's own table
  const std::string mine = write_ncnn_table(sample_table());
  CHECK(mine.find("conv1_param_0 254 169.33333 1\n") != std::string::npos);  // amax 0 -> scale 1
  CHECK(write_ncnn_table(read_ncnn_table(mine)) == mine);
  for (const char* bad : {"name\n", "name abc\n", "name 0\n", "name -1\n", "name inf\n", "a 1\na 2\n"}) {
    INFO(bad);
    CHECK_THROWS_AS(read_ncnn_table(bad), quench::error);
  }
  calibration_table t2;
  tensor_calibration e;
  e.name = "has space";
  t2.add(e);
  CHECK_THROWS_AS(write_ncnn_table(t2), quench::error);
}

TEST_CASE("ORT calibration table: json.dumps bytes, both JSON forms read") {
  const auto& ref = calib_test::reference();
  if (ref.is_null()) return;
  const auto& tables = ref.at("tables", "ref");
  const calibration_table t = reference_table(tables);
  CHECK(write_ort_table(t) == tables.at("ort_json_sorted", "ref").as_string("ref"));
  for (const char* key : {"ort_json", "ort_tensors_data"}) {
    const auto back = read_ort_table(tables.at(key, "ref").as_string("ref"));
    INFO(key);
    REQUIRE(back.size() == t.size());
    for (const auto& e : t.entries()) CHECK(back.find(e.name)->range == e.range);
  }
  const auto pc = read_ort_table(R"({"w": {"lowest": {"data": [-1.0, -2.0], "CLS": "numpy.array"}, "highest": [1.0, 0.5]}})");
  CHECK(pc.find("w")->channels.size() == 2);
  CHECK(pc.find("w")->axis == 1);
  CHECK(pc.find("w")->range == range{-2.0, 1.0});
  for (const char* bad : {"[]", "{\"a\": [1]}", "{\"a\": [2, 1]}", "{\"a\": {\"lowest\": 1}}", "{\"a\": [\"x\", 1]}",
                          "{\"a\": {\"lowest\": [], \"highest\": []}}"}) {
    INFO(bad);
    CHECK_THROWS_AS(read_ort_table(bad), quench::error);
  }
}
