#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/pipeline_test_models.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_static.hpp"
#include "quench/recover/high_bias_absorption.hpp"

namespace {

constexpr std::int64_t channels = 8;
// Channels 0-2 sit high (B = 4, scale 0.5: c = 4 - 3 * 0.5 = 2.5); the rest are small around 0.
const std::vector<float> beta{4, 4, 4, 0, 0, 0, 0, 0}, gamma{0.5f, 0.5f, 0.5f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f};

/// x [N,3,10,10] -> Conv 3x3 -> BatchNorm (mean, var) -> Relu -> MaxPool 2x2 -> Conv 1x1 -> y.
quench::model model(const std::vector<float>& mean, const std::vector<float>& var) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{10, {}}, quench::dim{10, {}}});
  auto vec = [](const std::vector<float>& v, const std::string& name) {
    quench::tensor t(quench::dtype::float32, {static_cast<std::int64_t>(v.size())}, name);
    std::copy(v.begin(), v.end(), t.view<float>().begin());
    return t;
  };
  auto& w1 = g.add_initializer(quench_test::random_tensor({channels, 3, 3, 3}, "W1", 11, 0.3f));
  auto& b1 = g.add_initializer(quench_test::random_tensor({channels}, "B1", 12, 0.1f));
  auto& c1 = g.add_node("Conv", {&x, &w1, &b1}, {"c1"}, "conv1");
  auto& bn = g.add_node("BatchNormalization",
                        {c1.output(0), &g.add_initializer(vec(gamma, "gamma")), &g.add_initializer(vec(beta, "beta")),
                         &g.add_initializer(vec(mean, "mean")), &g.add_initializer(vec(var, "var"))},
                        {"b1"}, "bn1");
  auto& relu = g.add_node("Relu", {bn.output(0)}, {"a1"}, "relu1");
  auto& pool = g.add_node("MaxPool", {relu.output(0)}, {"p1"}, "pool1");
  pool.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  pool.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
  auto& w2 = g.add_initializer(quench_test::random_tensor({4, channels, 1, 1}, "W2", 13, 0.4f));
  g.add_output(*g.add_node("Conv", {pool.output(0), &w2}, {"y"}, "conv2").output(0));  // no bias: one is added
  return m;
}

quench::data::tensor_source data() {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({128, 3, 10, 10}, "x", 21, 1.f, 0.5f));
  return quench::data::tensor_source(std::move(in));
}

/// The model with BatchNorm statistics that match the data (as after training).
quench::model trained() {
  auto d = data();
  const auto mv = quench_test::channel_moments(model(std::vector<float>(channels, 0.f), std::vector<float>(channels, 1.f)), d, "c1");
  return model(mv.first, mv.second);
}

float channel_max(const quench::model& m, const std::string& name, std::size_t from, std::size_t to) {
  auto d = data();
  float best = 0;
  quench::recover::observe_samples(m, d, d.size(), 32, {}, [&](const std::string& n, const quench::tensor& t) {
    if (n != name) return;
    const auto x = t.view<float>();
    const std::size_t inner = t.shape().inner(1);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t c = (i / inner) % static_cast<std::size_t>(channels);
      if (c >= from && c < to) best = std::max(best, x[i]);
    }
  });
  return best;
}

}  // namespace

TEST_CASE("high-bias absorption moves what the Relu always passes into the next layer's bias") {
  const auto ref = trained();
  auto m = trained();
  const auto pre = quench::passes::standard_passes(m);
  auto stats = pre.bn_statistics;
  REQUIRE(stats.count("b1"));
  const auto r = quench::recover::absorb_high_biases(m, stats);
  REQUIRE(r.pairs.size() == 1);
  CHECK(r.pairs[0].producer == "conv1");
  CHECK(r.pairs[0].consumer == "conv2");
  CHECK(r.pairs[0].channels == 3);
  CHECK(r.pairs[0].largest == doctest::Approx(2.5).epsilon(1e-6));
  CHECK(stats["b1"].mean[0] == doctest::Approx(1.5).epsilon(1e-6));  // the statistics follow the bias
  // The high channels' range shrinks by c; the function stays (it differs only below mean - 3 sd).
  const float before = channel_max(ref, "a1", 0, 3), after = channel_max(m, "a1", 0, 3);
  MESSAGE("max of the high channels after the Relu: " << before << " -> " << after);
  CHECK(after == doctest::Approx(before - 2.5).epsilon(0.02));
  auto eval = data();
  const double same = quench::pipeline::compare_models(ref, m, eval, {}).output_sqnr_db();
  MESSAGE("float output after absorption vs before: " << same << " dB");
  CHECK(same > 50);
}

TEST_CASE("high-bias absorption in quantize_static: per-tensor int8 activations lose less") {
  const auto ref = trained();
  auto run = [&](bool absorb) {
    auto m = trained();
    auto d = data();
    quench::pipeline::quantize_options o;
    o.absorb_high_bias = absorb;
    o.select_ranges = false;  // min-max: the range is the activation's extent
    o.calibration.method = quench::calib::method::minmax;
    const auto rep = quench::pipeline::quantize_static(m, d, o);
    CHECK(rep.absorption.pairs.size() == (absorb ? 1u : 0u));
    auto eval = data();
    return quench::pipeline::compare_models(ref, m, eval, {}).output_sqnr_db();
  };
  const double without = run(false), with = run(true);
  MESSAGE("output SQNR, W8A8 min-max: " << without << " dB without, " << with << " dB with high-bias absorption");
  CHECK(with > without + 1);
}

TEST_CASE("high-bias absorption leaves a layer alone without a Relu after it or without statistics") {
  auto m = trained();
  auto pre = quench::passes::standard_passes(m);
  for (quench::node* n : m.main_graph().nodes())
    if (n->name() == "relu1") n->set_op_type("Sigmoid");  // not x - c + c
  auto stats = pre.bn_statistics;
  CHECK(quench::recover::absorb_high_biases(m, stats).pairs.empty());
  quench::passes::batch_norm_statistics none;
  auto m2 = trained();
  quench::passes::standard_passes(m2);
  CHECK(quench::recover::absorb_high_biases(m2, none).pairs.empty());
}
