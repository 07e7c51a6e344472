#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "pipeline/pipeline_test_models.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_weights.hpp"
#include "quench/recover/cross_layer_equalization.hpp"

using quench::dtype;

namespace {
/// x [N,3,8,8] -> Conv(3->8) -> Relu -> depthwise Conv(8) -> Relu -> MaxPool -> Conv(8->4) -> y,
/// made hard as in the issue: conv1's output channel i times f_i in [1/64, 64] and the depthwise
/// filter i divided by f_i, which leaves the function unchanged and the ranges far apart.
quench::model chain(bool hard) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  quench::tensor w1 = quench_test::random_tensor({8, 3, 3, 3}, "W1", 1, 0.3f), b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
  quench::tensor w2 = quench_test::random_tensor({8, 1, 3, 3}, "W2", 3, 0.3f), b2 = quench_test::random_tensor({8}, "B2", 4, 0.1f);
  if (hard) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> e(-6.0, 6.0);  // 2^[-6, 6]
    for (std::size_t i = 0; i < 8; ++i) {
      const float f = static_cast<float>(std::exp2(e(rng)));
      for (std::size_t k = 0; k < 27; ++k) w1.view<float>()[i * 27 + k] *= f;
      b1.view<float>()[i] *= f;
      for (std::size_t k = 0; k < 9; ++k) w2.view<float>()[i * 9 + k] /= f;
    }
  }
  auto& c1 = g.add_node("Conv", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))}, {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("Relu", {c1.output(0)}, {"r1"}, "relu1");
  auto& c2 = g.add_node("Conv", {r1.output(0), &g.add_initializer(std::move(w2)), &g.add_initializer(std::move(b2))}, {"c2"}, "dw");
  c2.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  c2.set_attribute(quench::attribute::make_int("group", 8));
  auto& r2 = g.add_node("Relu", {c2.output(0)}, {"r2"}, "relu2");
  auto& p = g.add_node("MaxPool", {r2.output(0)}, {"p"}, "pool");
  p.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  p.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
  auto& c3 = g.add_node("Conv", {p.output(0), &g.add_initializer(quench_test::random_tensor({4, 8, 1, 1}, "W3", 6, 0.3f))}, {"y"}, "conv3");
  g.add_output(*c3.output(0));
  return m;
}

std::vector<std::pair<std::string, quench::tensor>> inputs() {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({8, 3, 8, 8}, "x", 9));
  return in;
}

double per_tensor_weight_sqnr(const quench::model& ref, quench::model m) {
  quench::pipeline::weight_quant_options o;
  o.per_channel = false;
  quench::pipeline::quantize_weights(m, o);
  quench::data::tensor_source data(inputs());
  return quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db();
}
}  // namespace

TEST_CASE("equalize: pairs through Relu/MaxPool and depthwise convs, function kept, ranges evened out") {
  const auto ref = chain(true);
  auto m = chain(true);
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 2);
  CHECK(r.pairs[0].producer == "conv1");
  CHECK(r.pairs[0].consumer == "dw");
  CHECK(r.pairs[1].producer == "dw");
  CHECK(r.pairs[1].consumer == "conv3");
  CHECK(r.pairs[0].spread_before > 100);
  CHECK(r.pairs[0].spread_after < r.pairs[0].spread_before / 20);
  // The float function is unchanged (up to float rounding).
  quench::data::tensor_source data(inputs());
  CHECK(quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db() > 100);
  // Per-tensor int8 weights: the hard model loses most of its output, the equalized one does not.
  const double without = per_tensor_weight_sqnr(ref, chain(true));
  const double with = per_tensor_weight_sqnr(ref, std::move(m));
  MESSAGE("per-tensor int8 weights: " << without << " dB without CLE, " << with << " dB with");
  CHECK(with > without + 10);
}

TEST_CASE("equalize leaves alone what it cannot rescale exactly") {
  auto m = chain(false);
  // A Clip between layers does not commute with scaling; a second consumer pins the channel scale.
  auto& g = m.main_graph();
  quench::node* relu1 = nullptr;
  for (auto* n : g.nodes())
    if (n->name() == "relu1") relu1 = n;
  REQUIRE(relu1);
  relu1->set_op_type("Clip");  // Clip without bounds: still not a scaling-commuting op for CLE
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 1);
  CHECK(r.pairs[0].producer == "dw");
  auto m2 = chain(false);
  auto& g2 = m2.main_graph();
  g2.add_output(*g2.find_value("r2"));  // r2 is now also a graph output
  CHECK(quench::recover::equalize(m2).pairs.size() == 1);
}

namespace {
/// x [N,3,8,8] -> Conv(3->8) -> Relu -> pool -> Flatten -> Gemm(8*hw -> 4): a MobileNet head with
/// conv channel i times f_i in [1/64, 64] and Gemm input i divided by f_i (hw = 1: GlobalAveragePool;
/// hw = 4: AveragePool to 2x2, where Flatten mixes channels and positions).
quench::model head(int hw) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  quench::tensor w1 = quench_test::random_tensor({8, 3, 3, 3}, "W1", 1, 0.3f), b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
  quench::tensor w2 = quench_test::random_tensor({8 * hw, 4}, "W2", 3, 0.3f);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> e(-6.0, 6.0);
  for (std::size_t i = 0; i < 8; ++i) {
    const float f = static_cast<float>(std::exp2(e(rng)));
    for (std::size_t k = 0; k < 27; ++k) w1.view<float>()[i * 27 + k] *= f;
    b1.view<float>()[i] *= f;
    for (std::size_t p = 0; p < static_cast<std::size_t>(hw); ++p)
      for (std::size_t j = 0; j < 4; ++j) w2.view<float>()[(i * static_cast<std::size_t>(hw) + p) * 4 + j] /= f;
  }
  auto& c1 = g.add_node("Conv", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))}, {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("Relu", {c1.output(0)}, {"r1"}, "relu1");
  quench::node* pool = nullptr;
  if (hw == 1) {
    pool = &g.add_node("GlobalAveragePool", {r1.output(0)}, {"p"}, "pool");
  } else {
    pool = &g.add_node("AveragePool", {r1.output(0)}, {"p"}, "pool");
    pool->set_attribute(quench::attribute::make_ints("kernel_shape", {4, 4}));
    pool->set_attribute(quench::attribute::make_ints("strides", {4, 4}));
  }
  auto& f = g.add_node("Flatten", {pool->output(0)}, {"f"}, "flatten");
  auto& fc = g.add_node("Gemm", {f.output(0), &g.add_initializer(std::move(w2))}, {"y"}, "fc");
  g.add_output(*fc.output(0));
  return m;
}
}  // namespace

TEST_CASE("equalize: conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm is a pair; Flatten of 2x2 positions is not") {
  const auto ref = head(1);
  auto m = head(1);
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 1);
  CHECK(r.pairs[0].producer == "conv1");
  CHECK(r.pairs[0].consumer == "fc");
  CHECK(r.pairs[0].spread_before > 100);
  CHECK(r.pairs[0].spread_after < r.pairs[0].spread_before / 20);
  quench::data::tensor_source data(inputs());
  CHECK(quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db() > 100);
  const double without = per_tensor_weight_sqnr(ref, head(1));
  const double with = per_tensor_weight_sqnr(ref, std::move(m));
  MESSAGE("head, per-tensor int8 weights: " << without << " dB without CLE, " << with << " dB with");
  CHECK(with > without + 10);
  // AveragePool to 2x2: the Gemm reads 32 inputs, 4 per channel; not a channel-to-channel pair.
  auto m4 = head(4);
  CHECK(quench::recover::equalize(m4).pairs.empty());
}
