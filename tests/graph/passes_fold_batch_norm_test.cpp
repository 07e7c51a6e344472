#include <doctest/doctest.h>

#include <cmath>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/fold_batch_norm.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;

namespace {

struct bn_params {
  std::vector<double> scale, bias, mean, var;
  double eps;
  double s(std::size_t c) const { return scale[c] / std::sqrt(var[c] + eps); }
  double t(std::size_t c) const { return bias[c] - mean[c] * s(c); }
};

/// Adds BatchNormalization(y) with two channels and returns the expected per-channel map.
bn_params add_bn(graph& g, quench::value& y, const std::string& out, float eps = 1e-3f) {
  auto& sc = g.add_initializer(floats({2}, {2.f, 0.5f}, out + "_scale"));
  auto& b = g.add_initializer(floats({2}, {0.25f, -1.f}, out + "_B"));
  auto& mean = g.add_initializer(floats({2}, {1.f, -2.f}, out + "_mean"));
  auto& var = g.add_initializer(floats({2}, {4.f, 0.25f}, out + "_var"));
  auto& bn = g.add_node("BatchNormalization", {&y, &sc, &b, &mean, &var}, {out}, out + "_bn");
  bn.set_attribute(attribute::make_float("epsilon", eps));
  return {{2, 0.5}, {0.25, -1}, {1, -2}, {4, 0.25}, static_cast<double>(eps)};
}

}  // namespace

namespace {
void conv_case(bool with_bias) {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  // W [2, 1, 1, 2]: output channel 0 = {1, 2}, channel 1 = {3, 4}.
  auto& w = g.add_initializer(floats({2, 1, 1, 2}, {1, 2, 3, 4}, "W"));
  std::vector<quench::value*> ins{&x, &w};
  if (with_bias) ins.push_back(&g.add_initializer(floats({2}, {0.5f, -0.5f}, "Bconv")));
  auto& conv = g.add_node("Conv", ins, {"c"}, "conv");
  const bn_params p = add_bn(g, *conv.output(0), "y");
  g.add_output(*g.find_value("y"));
  g.check_invariants();

  quench::passes::batch_norm_statistics stats;
  const auto r = quench::passes::fold_batch_norm(m, &stats);
  g.check_invariants();
  CHECK(r.rewrites == 1);
  CHECK(r.kept.empty());
  CHECK(count_ops(g, "BatchNormalization") == 0);
  CHECK(conv.output(0)->name() == "y");
  // The folded output's statistics: channel c ~ N(B[c], scale[c]^2).
  REQUIRE(stats.count("y"));
  CHECK(stats["y"].mean == std::vector<double>{0.25, -1.0});
  CHECK(stats["y"].stddev == std::vector<double>{2.0, 0.5});
  CHECK(g.outputs()[0] == conv.output(0));
  CHECK(conv.input(1)->name() == "W");  // only the Conv read it: replaced under its name
  check_close(data<float>(conv.input(1)), {1 * p.s(0), 2 * p.s(0), 3 * p.s(1), 4 * p.s(1)});
  REQUIRE(conv.inputs().size() == 3);
  const double b0 = with_bias ? 0.5 : 0.0, b1 = with_bias ? -0.5 : 0.0;
  check_close(data<float>(conv.input(2)), {b0 * p.s(0) + p.t(0), b1 * p.s(1) + p.t(1)});
}
}  // namespace

TEST_CASE("fold_batch_norm: Conv with and without bias") {
  SUBCASE("with bias") { conv_case(true); }
  SUBCASE("without bias") { conv_case(false); }
}

TEST_CASE("fold_batch_norm: a weight shared with another Conv is cloned") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  auto& w = g.add_initializer(floats({2, 1, 1, 1}, {1, 2}, "W"));
  auto& conv1 = g.add_node("Conv", {&x, &w}, {"c1"});
  auto& conv2 = g.add_node("Conv", {&x, &w}, {"c2"});
  const bn_params p = add_bn(g, *conv1.output(0), "y1");
  g.add_output(*g.find_value("y1"));
  g.add_output(*conv2.output(0));

  CHECK(quench::passes::fold_batch_norm(m).rewrites == 1);
  g.check_invariants();
  CHECK(conv2.input(1) == &w);
  CHECK(data<float>(&w) == std::vector<float>{1, 2});
  CHECK(conv1.input(1) != &w);
  check_close(data<float>(conv1.input(1)), {p.s(0), 2 * p.s(1)});
}

TEST_CASE("fold_batch_norm: grouped ConvTranspose scales axis 1 per group") {
  quench::model m;
  m.set_opset("", 11);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 4, 2, 2}));
  // C_in = 4, group = 2, W [4, 1, 1, 1]: inputs 0-1 feed output channel 0, inputs 2-3 channel 1.
  auto& w = g.add_initializer(floats({4, 1, 1, 1}, {1, 2, 3, 4}, "W"));
  auto& ct = g.add_node("ConvTranspose", {&x, &w}, {"c"});
  ct.set_attribute(attribute::make_int("group", 2));
  const bn_params p = add_bn(g, *ct.output(0), "y");
  g.add_output(*g.find_value("y"));

  CHECK(quench::passes::fold_batch_norm(m).rewrites == 1);
  g.check_invariants();
  check_close(data<float>(ct.input(1)), {1 * p.s(0), 2 * p.s(0), 3 * p.s(1), 4 * p.s(1)});
  check_close(data<float>(ct.input(2)), {p.t(0), p.t(1)});
}

namespace {
void gemm_case(bool trans_b) {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& a = g.add_input("a", 1, dims({3, 2}));
  // B' = [[1, 2], [3, 4]] (K = 2 rows, M = 2 columns) stored as B or B^T.
  auto& b = g.add_initializer(trans_b ? floats({2, 2}, {1, 3, 2, 4}, "B") : floats({2, 2}, {1, 2, 3, 4}, "B"));
  auto& c = g.add_initializer(floats({2}, {1, 2}, "C"));
  auto& gemm = g.add_node("Gemm", {&a, &b, &c}, {"g"});
  gemm.set_attribute(attribute::make_int("transB", trans_b ? 1 : 0));
  gemm.set_attribute(attribute::make_float("alpha", 2.f));
  gemm.set_attribute(attribute::make_float("beta", 0.5f));
  const bn_params p = add_bn(g, *gemm.output(0), "y");
  g.add_output(*g.find_value("y"));

  CHECK(quench::passes::fold_batch_norm(m).rewrites == 1);
  g.check_invariants();
  if (trans_b) check_close(data<float>(gemm.input(1)), {1 * p.s(0), 3 * p.s(0), 2 * p.s(1), 4 * p.s(1)});
  else check_close(data<float>(gemm.input(1)), {1 * p.s(0), 2 * p.s(1), 3 * p.s(0), 4 * p.s(1)});
  check_close(data<float>(gemm.input(2)), {0.5 * 1 * p.s(0) + p.t(0), 0.5 * 2 * p.s(1) + p.t(1)});
  CHECK(gemm.attr_float("beta", 0) == 1.f);
  CHECK(gemm.attr_float("alpha", 0) == 2.f);
}
}  // namespace

TEST_CASE("fold_batch_norm: Gemm with either transB, alpha and beta") {
  SUBCASE("transB = 0") { gemm_case(false); }
  SUBCASE("transB = 1") { gemm_case(true); }
}

TEST_CASE("fold_batch_norm: what stays, and malformed BatchNormalization") {
  quench::model m;
  m.set_opset("", 15);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  auto& w = g.add_initializer(floats({2, 1, 1, 1}, {1, 2}, "W"));
  auto& conv = g.add_node("Conv", {&x, &w}, {"c"});

  SUBCASE("the Conv output has another consumer") {
    add_bn(g, *conv.output(0), "y");
    g.add_output(*g.find_value("y"));
    g.add_output(*conv.output(0));
    const auto r = quench::passes::fold_batch_norm(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("other consumers") != std::string::npos);
  }
  SUBCASE("a parameter computed at run time") {
    auto& mean = g.add_input("mean", 1, dims({2}));
    auto& one = g.add_initializer(floats({2}, {1, 1}, "one"));
    auto& zero = g.add_initializer(floats({2}, {0, 0}, "zero"));
    auto& bn = g.add_node("BatchNormalization", {conv.output(0), &one, &zero, &mean, &one}, {"y"});
    g.add_output(*bn.output(0));
    const auto r = quench::passes::fold_batch_norm(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("mean 'mean' is not a constant") != std::string::npos);
  }
  SUBCASE("training mode") {
    add_bn(g, *conv.output(0), "y");
    g.add_output(*g.find_value("y"));
    g.find_value("y")->producer()->set_attribute(attribute::make_int("training_mode", 1));
    CHECK(quench::passes::fold_batch_norm(m).rewrites == 0);
  }
  SUBCASE("after a Relu") {
    auto& relu = g.add_node("Relu", {conv.output(0)}, {"r"});
    add_bn(g, *relu.output(0), "y");
    g.add_output(*g.find_value("y"));
    const auto r = quench::passes::fold_batch_norm(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("Relu") != std::string::npos);
  }
  SUBCASE("parameters of the wrong length") {
    auto& p3 = g.add_initializer(floats({3}, {1, 1, 1}, "p3"));
    auto& bn = g.add_node("BatchNormalization", {conv.output(0), &p3, &p3, &p3, &p3}, {"y"});
    g.add_output(*bn.output(0));
    CHECK_THROWS_WITH(quench::passes::fold_batch_norm(m), doctest::Contains("shape_mismatch"));
  }
  SUBCASE("too few inputs") {
    auto& bn = g.add_node("BatchNormalization", {conv.output(0)}, {"y"});
    g.add_output(*bn.output(0));
    CHECK_THROWS_WITH(quench::passes::fold_batch_norm(m), doctest::Contains("expected 5 inputs"));
  }
  g.check_invariants();
}

TEST_CASE("fold_batch_norm: inside a sub-graph, with the weight in the enclosing graph") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  auto& cond = g.add_input("cond", 9, dims({}));
  auto& w = g.add_initializer(floats({2, 1, 1, 1}, {1, 2}, "W"));
  auto& iff = g.add_node("If", {&cond}, {"out"});
  graph& then_g = add_subgraph(g, iff, "then_branch");
  auto& conv = then_g.add_node("Conv", {&then_g.outer_ref("x"), &then_g.outer_ref("W")}, {"c"});
  const bn_params p = add_bn(then_g, *conv.output(0), "t_out");
  then_g.add_output(*then_g.find_value("t_out"));
  graph& else_g = add_subgraph(g, iff, "else_branch");
  auto& e = else_g.add_node("Conv", {&else_g.outer_ref("x"), &else_g.outer_ref("W")}, {"e_out"});
  else_g.add_output(*e.output(0));
  g.add_output(*iff.output(0));
  g.check_invariants();
  (void)x;

  CHECK(quench::passes::fold_batch_norm(m).rewrites == 1);
  g.check_invariants();
  // The branch got its own folded copy; the enclosing weight still serves the else branch.
  const quench::value* folded = conv.input(1);
  CHECK(folded->is_initializer());
  CHECK(folded->name() != "W");
  CHECK(then_g.find_value(folded->name()) == folded);
  check_close(data<float>(folded), {p.s(0), 2 * p.s(1)});
  CHECK(data<float>(&w) == std::vector<float>{1, 2});
  CHECK(e.input(1)->outer() == &w);
  CHECK(conv.output(0)->name() == "t_out");
}
