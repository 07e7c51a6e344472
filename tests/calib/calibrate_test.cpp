// The calibration driver: observers fed through the executor's hook, ranges by method, and
// sharded collection that merges into exactly the single-pass state.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "quench/calib/calibrate.hpp"

namespace calib = quench::calib;
using quench::dim;
using quench::dtype;
using quench::tensor;

namespace {
/// y = Relu(x * w + b) over [N, 3, 4] with a symbolic batch: three float activations.
quench::model small_model(bool fixed_batch = false) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{fixed_batch ? dim{2, {}} : dim{{}, "N"}, dim{3, {}}, dim{4, {}}});
  auto& w = g.add_initializer(tensor::from<float>({3, 1}, {1.5f, -2.f, 0.5f}, "w"));
  auto& b = g.add_initializer(tensor::from<float>({1}, {0.25f}, "b"));
  auto& mul = g.add_node("Mul", {&x, &w}, {"xw"});
  auto& add = g.add_node("Add", {mul.output(0), &b}, {"xwb"});
  auto& relu = g.add_node("Relu", {add.output(0)}, {"y"});
  g.add_output(*relu.output(0));
  return m;
}

/// 37 samples of heavy-tailed data.
quench::data::tensor_source samples(std::int64_t n = 37) {
  tensor x(dtype::float32, {n, 3, 4});
  std::mt19937 rng(3);
  std::student_t_distribution<float> t(3.f);
  for (auto& v : x.view<float>()) v = t(rng);
  std::vector<std::pair<std::string, tensor>> in;
  in.emplace_back("x", std::move(x));
  return quench::data::tensor_source(std::move(in));
}
}  // namespace

TEST_CASE("calibrate: min-max ranges equal the extremes of every activation over all samples") {
  const auto m = small_model();
  auto src = samples();
  calib::calibrate_options opt;
  opt.batch_size = 5;
  std::vector<calib::calibrate_progress> seen;
  opt.progress = [&](const calib::calibrate_progress& p) { seen.push_back(p); };
  const auto result = calib::calibrate(m, src, opt);
  CHECK(seen.size() == 8);  // ceil(37 / 5)
  CHECK(seen.back().samples_done == 37);
  // The extremes by running the executor on everything at once.
  quench::runtime::executor ex(m);
  const auto all = src.read(0, 37);
  std::map<std::string, std::pair<float, float>> want;
  ex.run({{"x", &all[0].second}}, [&](const std::string& name, const tensor& t) {
    const auto v = t.view<float>();
    want[name] = {*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
  });
  REQUIRE(result.table.entries().size() == 4);  // x, xw, xwb, y; not the initializers
  for (const auto& [name, mm] : want) {
    CAPTURE(name);
    const auto* t = result.table.find(name);
    REQUIRE(t != nullptr);
    CHECK(t->range.min == mm.first);
    CHECK(t->range.max == mm.second);
    CHECK(t->method == "minmax");
  }
}

TEST_CASE("calibrate: shards of unequal size merge into the single-pass state, bit for bit") {
  const auto m = small_model();
  for (auto method : {calib::method::minmax, calib::method::entropy, calib::method::percentile, calib::method::mse}) {
    CAPTURE(calib::method_name(method));
    calib::calibrate_options opt;
    opt.method = method;
    opt.batch_size = 4;
    opt.num_bins = 256;
    opt.symmetric = method == calib::method::percentile;
    auto src = samples();
    const auto single = calib::collect(m, src, opt);
    calib::calibrate_options inline_opt = opt;
    inline_opt.observer_thread = false;  // the worker thread changes nothing
    CHECK(calib::collect(m, src, inline_opt).to_json() == single.to_json());
    const auto want = calib::compute_ranges(single);
    for (int n : {1, 2, 3, 7}) {
      CAPTURE(n);
      calib::calibration_state merged;
      for (int k = 0; k < n; ++k) {
        calib::calibrate_options shard = opt;
        shard.shard_index = k;
        shard.shard_count = n;
        // Through JSON, as shards on other machines would hand their states over.
        merged.merge(calib::calibration_state::from_json(calib::collect(m, src, shard).to_json()));
      }
      merged.metadata()["samples"] = single.metadata().at("samples");
      CHECK(merged.to_json() == single.to_json());
      const auto got = calib::compute_ranges(merged);
      CHECK(got.entries() == want.entries());
    }
  }
}

TEST_CASE("calibrate: per-channel activations, a fixed model batch, and bad arguments") {
  auto src = samples(10);
  calib::calibrate_options opt;
  opt.per_channel = true;
  opt.batch_size = 3;  // the model's fixed batch of 2 wins
  const auto result = calib::calibrate(small_model(true), src, opt);
  const auto* y = result.table.find("xw");
  REQUIRE(y != nullptr);
  CHECK(y->axis == std::optional<std::int64_t>(1));
  CHECK(y->channels.size() == 3);
  CHECK(result.state.metadata().at("samples") == "10");
  opt.shard_index = 3;
  opt.shard_count = 3;
  CHECK_THROWS_WITH(calib::collect(small_model(), src, opt), doctest::Contains("0 <= K < N"));
  CHECK_THROWS_WITH(calib::parse_method("kmeans"), doctest::Contains("kmeans"));
}
