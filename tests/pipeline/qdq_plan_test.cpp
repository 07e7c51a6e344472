#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/qdq_plan.hpp"

using quench::pipeline::plan_qdq;
using quench::pipeline::profile_by_name;

namespace {
const std::unordered_set<std::string> floats{"x", "c1", "r1", "p", "c2", "s", "r2", "f", "logits", "y"};

std::vector<std::string> names(const quench::pipeline::qdq_plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.activations) out.push_back(a.name);
  return out;
}
using readers = std::vector<std::pair<std::string, std::size_t>>;
}  // namespace

TEST_CASE("qdq_plan ort: Relu absorbed, value-preserving ops share, every consumer reads the DQ output") {
  const auto m = quench_test::residual_cnn();
  const auto plan = plan_qdq(m, profile_by_name("ort"), floats);
  CHECK(plan.absorbed == std::vector<std::string>{"relu1", "relu2"});
  CHECK(names(plan) == std::vector<std::string>{"x", "c1", "p", "c2", "s", "f", "logits", "y"});
  const auto* c1 = plan.find("c1");
  REQUIRE(c1);
  CHECK(c1->range_of == "r1");  // the absorbed Relu's range: zero point 0 clamps as Relu did
  CHECK(c1->lower_bound == 0.f);
  CHECK(c1->readers == readers{{"pool", 0}});
  CHECK(plan.find("p")->share_with == "c1");
  CHECK(plan.find("p")->readers == readers{{"conv2", 0}, {"add", 1}});
  CHECK(plan.find("s")->range_of == "r2");
  CHECK(plan.find("f")->share_with == "s");  // Flatten after the absorbed Relu shares the Add's output
  CHECK(plan.find("y")->fixed_unit_range);
  CHECK(plan.find("y")->output_through_dq);
  CHECK(plan.weights.size() == 3);
  CHECK(plan.weights[0].axis == 0);
  CHECK(plan.weights[2].axis == 0);  // Gemm with transB = 1
  REQUIRE(plan.biases.size() == 3);
  CHECK(plan.biases[1].activation == "p");
  const auto calibrated = plan.calibrated_tensors();
  CHECK(calibrated == std::vector<std::string>{"x", "r1", "c2", "r2", "logits"});
}

TEST_CASE("qdq_plan tensorrt: inputs of weighted ops and pooling, the residual Add input, no bias, no outputs") {
  const auto m = quench_test::residual_cnn();
  const auto plan = plan_qdq(m, profile_by_name("tensorrt"), floats);
  CHECK(plan.absorbed.empty());
  CHECK(names(plan) == std::vector<std::string>{"x", "r1", "p", "f"});
  CHECK(plan.find("r1")->readers == readers{{"pool", 0}});
  // The pool output feeds conv2 (weighted op) and the Add as its residual (input 1, not a Conv output).
  CHECK(plan.find("p")->readers == readers{{"conv2", 0}, {"add", 1}});
  CHECK(plan.biases.empty());
  CHECK(plan.weights.size() == 3);
}

TEST_CASE("qdq_plan: exclusions, op types, symmetric activations, opset 10 per tensor") {
  const auto m = quench_test::residual_cnn();
  SUBCASE("an excluded node reads float inputs and asks for nothing") {
    quench::pipeline::plan_options po;
    po.exclude_nodes = {"conv2"};
    const auto plan = plan_qdq(m, profile_by_name("ort"), floats, po);
    CHECK(plan.find("p")->readers == readers{{"add", 1}});
    CHECK(plan.weights.size() == 2);
    for (const auto& b : plan.biases) CHECK(b.node != "conv2");
  }
  SUBCASE("only Conv") {
    quench::pipeline::plan_options po;
    po.op_types = {"Conv"};
    const auto plan = plan_qdq(m, profile_by_name("ort"), floats, po);
    CHECK(plan.weights.size() == 2);
    CHECK(plan.find("logits") == nullptr);
    CHECK(plan.find("y") == nullptr);
  }
  SUBCASE("an excluded tensor is never quantized") {
    quench::pipeline::plan_options po;
    po.exclude_tensors = {"x"};
    const auto plan = plan_qdq(m, profile_by_name("ort"), floats, po);
    CHECK(plan.find("x") == nullptr);
    CHECK(plan.find("c1") == nullptr);  // conv1 has no quantized input: it stays float
  }
  SUBCASE("symmetric activations keep Relu as a value-preserving op") {
    auto p = profile_by_name("ort");
    p.activation_type = quench::dtype::int8;
    p.activation_symmetric = true;
    const auto plan = plan_qdq(m, p, floats);
    CHECK(plan.absorbed.empty());
    CHECK(plan.find("r1")->share_with == "c1");
  }
  SUBCASE("below opset 13 weights are per tensor") {
    const auto old = quench_test::residual_cnn(11);
    const auto plan = plan_qdq(old, profile_by_name("ort"), floats);
    for (const auto& w : plan.weights) CHECK(w.axis == -1);
  }
  SUBCASE("non-float tensors are never planned") {
    const auto plan = plan_qdq(m, profile_by_name("ort"), {"x"});
    CHECK(names(plan) == std::vector<std::string>{"x"});
  }
}


TEST_CASE("saturation_bounds: what consumers can tell apart, through LeakyRelu and element-selecting ops") {
  const auto m = quench_test::saturating_chain();
  const auto b = quench::pipeline::detail::saturation_bounds(m.main_graph(), 13);
  constexpr float inf = std::numeric_limits<float>::infinity();
  REQUIRE(b.count("l1"));
  CHECK(b.at("l1") == std::pair<float, float>{-0.4f, inf});  // Max(x, -0.4) is constant below -0.4
  REQUIRE(b.count("c1"));
  CHECK(b.at("c1").first == doctest::Approx(-2.f));  // LeakyRelu(0.2) maps -2 to -0.4
  CHECK(b.at("c1").second == inf);
  REQUIRE(b.count("c2"));
  CHECK(b.at("c2") == std::pair<float, float>{-inf, 3.f});
  // p feeds conv2 (no saturation) and a Relu: the loosest wins, nothing to narrow; graph outputs
  // and the graph input (read by a Conv) neither.
  CHECK(!b.count("p"));
  CHECK(!b.count("m1"));
  CHECK(!b.count("y"));
  CHECK(!b.count("x"));
}

TEST_CASE("qdq_plan: saturation bounds narrow the planned ranges, unless switched off") {
  const auto m = quench_test::saturating_chain();
  const std::unordered_set<std::string> all{"x", "c1", "l1", "m1", "p", "c2", "y", "r"};
  const auto plan = plan_qdq(m, profile_by_name("ort"), all);
  REQUIRE(plan.find("c1"));
  CHECK(plan.find("c1")->lower_bound == doctest::Approx(-2.f));
  REQUIRE(plan.find("l1"));
  CHECK(plan.find("l1")->lower_bound == -0.4f);
  quench::pipeline::plan_options off;
  off.saturation_bounds = false;
  const auto plain = plan_qdq(m, profile_by_name("ort"), all, off);
  CHECK(plain.find("c1")->lower_bound == -std::numeric_limits<float>::infinity());
  CHECK(plain.find("l1")->lower_bound == -std::numeric_limits<float>::infinity());
}
