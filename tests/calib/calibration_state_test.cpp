#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "calib_test_util.hpp"
#include "quench/calib/calibration_state.hpp"
#include "quench/calib/entropy.hpp"

using namespace quench::calib;

namespace {

struct batch {
  std::vector<float> x;
  quench::shape s;
};

/// A few "tensors" with different distributions, each a list of batches [4, 3, 20].
std::vector<batch> batches_of(unsigned seed, std::size_t count, float scale) {
  std::vector<batch> out;
  for (std::size_t k = 0; k < count; ++k) {
    auto x = calib_test::normal_data(4 * 3 * 20, seed + static_cast<unsigned>(k), scale * (1.0f + 0.3f * static_cast<float>(k % 5)));
    if (k % 3 == 1) x[7] = std::numeric_limits<float>::quiet_NaN();
    out.push_back({std::move(x), quench::shape{4, 3, 20}});
  }
  return out;
}

/// A state with one observer of each mergeable kind and configuration.
calibration_state mergeable_state() {
  calibration_state st;
  st.add(minmax_observer("mm"));
  minmax_options pc;
  pc.axis = 1;
  pc.symmetric = true;
  st.add(minmax_observer("mm_pc", pc));
  st.add(histogram_observer("h"));
  histogram_options ha;
  ha.absolute = true;
  ha.num_bins = 512;
  st.add(histogram_observer("h_abs", ha));
  histogram_options hp;
  hp.axis = -2;
  hp.num_bins = 64;
  st.add(histogram_observer("h_pc", hp));
  return st;
}

void feed(calibration_state& st, const std::vector<batch>& data, std::size_t from, std::size_t to) {
  for (std::size_t k = from; k < to; ++k) {
    for (auto& [name, obs] : st.observers())
      std::visit([&](auto& o) { o.observe(data[k].x.data(), data[k].s); }, obs);
  }
}

}  // namespace

TEST_CASE("state JSON round trip is exact, for every observer kind") {
  auto st = mergeable_state();
  st.add(ort_histogram_observer("ort_v", {ort_histogram_kind::value, 256}));
  st.add(ort_histogram_observer("ort_a", {ort_histogram_kind::absolute_value, 256}));
  minmax_options ma;
  ma.moving_average = true;
  ma.averaging_constant = 0.05;
  st.add(minmax_observer("mm_ma", ma));
  st.add(histogram_observer("never_fed"));
  st.metadata()["model"] = "m\u00e9.onnx";
  const auto data = batches_of(1, 9, 2.0f);
  for (std::size_t k = 0; k < data.size(); ++k)
    for (auto& [name, obs] : st.observers())
      if (name != "never_fed") std::visit([&](auto& o) { o.observe(data[k].x.data(), data[k].s); }, obs);
  const std::string j = st.to_json();
  const auto back = calibration_state::from_json(j, "state");
  CHECK(back.to_json() == j);
  CHECK(back.metadata().at("model") == "m\u00e9.onnx");
  const auto& h0 = std::get<histogram_observer>(*st.find("h"));
  const auto& h1 = std::get<histogram_observer>(*back.find("h"));
  CHECK(h0.histogram().counts == h1.histogram().counts);
  CHECK(ort_entropy_range(h0.histogram()) == ort_entropy_range(h1.histogram()));
  const auto& o0 = std::get<ort_histogram_observer>(*st.find("ort_v"));
  const auto& o1 = std::get<ort_histogram_observer>(*back.find("ort_v"));
  CHECK(o0.histogram().edges == o1.histogram().edges);
  CHECK(std::get<minmax_observer>(*back.find("mm_ma")).range() == std::get<minmax_observer>(*st.find("mm_ma")).range());
  CHECK(observer_kind(*back.find("ort_a")) == "ort_histogram");
  CHECK(observer_nonfinite(*back.find("mm")).nan == 3);
  // the restored observers keep observing as the originals
  auto cont0 = std::get<ort_histogram_observer>(*st.find("ort_v"));
  auto cont1 = std::get<ort_histogram_observer>(*back.find("ort_v"));
  const auto more = calib_test::normal_data(100, 99, 50.0f);
  cont0.observe(more.data(), quench::shape{100});
  cont1.observe(more.data(), quench::shape{100});
  CHECK(cont0.histogram().counts == cont1.histogram().counts);
}

TEST_CASE("sharded states, each written to JSON and read back, merge into the single-pass state bit for bit") {
  const auto data = batches_of(7, 23, 1.5f);
  auto single = mergeable_state();
  feed(single, data, 0, data.size());
  const std::string want = single.to_json();
  for (std::size_t shards : {1u, 2u, 3u, 7u}) {
    std::vector<std::string> files;
    std::size_t at = 0;
    for (std::size_t k = 0; k < shards; ++k) {
      // unequal shards: shard k gets about (k + 1) / sum parts
      const std::size_t to = k + 1 == shards ? data.size() : at + (data.size() * 2 * (k + 1)) / (shards * (shards + 1));
      auto st = mergeable_state();
      feed(st, data, at, to);
      files.push_back(st.to_json());
      at = to;
    }
    calibration_state merged;
    for (std::size_t k = files.size(); k-- > 0;) merged.merge(calibration_state::from_json(files[k], "shard"));
    INFO("shards " << shards);
    CHECK(merged.to_json() == want);
  }
}

TEST_CASE("merge refuses order-dependent observers and mismatched kinds") {
  calibration_state a, b;
  a.add(ort_histogram_observer("x"));
  b.add(ort_histogram_observer("x"));
  CHECK_THROWS_AS(a.merge(b), quench::error);
  calibration_state c, d;
  c.add(minmax_observer("y"));
  d.add(histogram_observer("y"));
  CHECK_THROWS_WITH_AS(c.merge(d), doctest::Contains("cannot merge a histogram observer into a minmax"), quench::error);
  CHECK_THROWS_AS(c.add(minmax_observer("y")), quench::error);
  CHECK_THROWS_AS(c.add(minmax_observer("")), quench::error);
  calibration_state e;
  e.add(histogram_observer("z"));
  c.merge(e);  // a tensor only in the other state is copied
  CHECK(c.find("z") != nullptr);
}

TEST_CASE("malformed state JSON is a quench::error naming the problem, never a crash") {
  auto st = mergeable_state();
  st.add(ort_histogram_observer("ort", {ort_histogram_kind::value, 64}));
  const auto data = batches_of(3, 4, 1.0f);
  for (auto& b : data)
    for (auto& [name, obs] : st.observers())
      std::visit([&](auto& o) { o.observe(b.x.data(), b.s); }, obs);
  const std::string good = st.to_json();
  auto expect_error = [](const std::string& text, const char* what) {
    INFO(what);
    CHECK_THROWS_AS(calibration_state::from_json(text, "s.json"), quench::error);
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    const auto p = t.find(from);
    REQUIRE(p != std::string::npos);
    return t.replace(p, from.size(), to);
  };
  expect_error(replace("quench.calibration_state", "other"), "format");
  expect_error(replace("\"version\": 1", "\"version\": 2"), "version");
  expect_error(replace("\"observer\": \"minmax\"", "\"observer\": \"nope\""), "kind");
  expect_error(replace("\"num_bins\": 2048", "\"num_bins\": 2047"), "num_bins");
  expect_error(replace("\"num_bins\": 2048", "\"num_bins\": 4096"), "counts length");
  expect_error(replace("\"exponent\": ", "\"exponent\": 5000, \"x\": "), "exponent");
  expect_error(replace("\"counts\": \"", "\"counts\": \"!"), "base64");
  expect_error(replace("\"symmetric\": false", "\"symmetric\": 0"), "type");
  expect_error(replace("\"nan\": ", "\"nan\": -"), "negative");
  expect_error(good.substr(0, good.size() / 2), "truncated");
  // random byte flips: parse or throw quench::error, nothing else
  std::mt19937 rng(5);
  std::size_t parsed = 0;
  for (int k = 0; k < 300; ++k) {
    std::string t = good;
    for (int f = 0; f < 3; ++f) t[rng() % t.size()] = static_cast<char>(rng() % 128);
    try {
      calibration_state::from_json(t, "fuzz");
      ++parsed;
    } catch (const quench::error&) {
    }
  }
  CHECK(parsed < 300);
}
