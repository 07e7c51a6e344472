#include <doctest/doctest.h>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/fold_conv_mul_add.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;

TEST_CASE("fold_conv_mul_add: Conv -> Mul [C,1,1] -> Add [1,C,1,1] -> Sub -> Div") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  auto& w = g.add_initializer(floats({2, 1, 1, 2}, {1, 2, 3, 4}, "W"));
  auto& conv = g.add_node("Conv", {&x, &w}, {"c"});
  auto& s = g.add_initializer(floats({2, 1, 1}, {2, -3}, "s"));
  auto& mul = g.add_node("Mul", {&s, conv.output(0)}, {"m"});  // constant first
  auto& t = g.add_initializer(floats({1, 2, 1, 1}, {0.5f, 1}, "t"));
  auto& add = g.add_node("Add", {mul.output(0), &t}, {"a"});
  auto& u = g.add_initializer(floats({}, {4}, "u"));
  auto& sub = g.add_node("Sub", {&u, add.output(0)}, {"sb"});  // u - y
  auto& d = g.add_initializer(floats({2, 1, 1}, {2, 4}, "d"));
  auto& div = g.add_node("Div", {sub.output(0), &d}, {"y"});
  g.add_output(*div.output(0));
  g.check_invariants();

  const auto r = quench::passes::fold_conv_mul_add(m);
  g.check_invariants();
  CHECK(r.rewrites == 4);
  CHECK(g.node_count() == 1);
  CHECK(conv.output(0)->name() == "y");
  // y = ((conv * s + t) subtracted from u) / d, per channel: scale = -s/d, shift = (u - t)/d.
  check_close(data<float>(conv.input(1)), {1 * -2.0 / 2, 2 * -2.0 / 2, 3 * 3.0 / 4, 4 * 3.0 / 4});
  check_close(data<float>(conv.input(2)), {(4 - 0.5) / 2, (4 - 1.0) / 4});
}

TEST_CASE("fold_conv_mul_add: Gemm, MatMul, and MatMul + bias Add") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& a = g.add_input("a", 1, dims({3, 2}));

  SUBCASE("Gemm transB = 1 without C") {
    auto& b = g.add_initializer(floats({2, 2}, {1, 2, 3, 4}, "B"));  // [M, K]
    auto& gemm = g.add_node("Gemm", {&a, &b}, {"g"});
    gemm.set_attribute(attribute::make_int("transB", 1));
    auto& s = g.add_initializer(floats({2}, {2, 3}, "s"));
    auto& mul = g.add_node("Mul", {gemm.output(0), &s}, {"m"});
    auto& t = g.add_initializer(floats({1, 2}, {1, -1}, "t"));
    auto& add = g.add_node("Add", {mul.output(0), &t}, {"y"});
    g.add_output(*add.output(0));
    CHECK(quench::passes::fold_conv_mul_add(m).rewrites == 2);
    check_close(data<float>(gemm.input(1)), {2, 4, 9, 12});
    check_close(data<float>(gemm.input(2)), {1, -1});
  }
  SUBCASE("MatMul absorbs a Mul, not an Add") {
    auto& b = g.add_initializer(floats({2, 2}, {1, 2, 3, 4}, "B"));  // [K, M]
    auto& mm = g.add_node("MatMul", {&a, &b}, {"mm"});
    auto& s = g.add_initializer(floats({2}, {2, 3}, "s"));
    auto& mul = g.add_node("Mul", {mm.output(0), &s}, {"m"});
    auto& t = g.add_initializer(floats({2}, {1, -1}, "t"));
    auto& add = g.add_node("Add", {mul.output(0), &t}, {"y"});
    g.add_output(*add.output(0));
    const auto r = quench::passes::fold_conv_mul_add(m);
    CHECK(r.rewrites == 1);
    CHECK(r.kept.empty());
    CHECK(count_ops(g, "Add") == 1);
    check_close(data<float>(mm.input(1)), {2, 6, 6, 12});
    CHECK(data<float>(&t) == std::vector<float>{1, -1});
  }
  SUBCASE("MatMul + bias Add absorbs a following Mul and Add") {
    auto& b = g.add_initializer(floats({2, 2}, {1, 2, 3, 4}, "B"));
    auto& mm = g.add_node("MatMul", {&a, &b}, {"mm"});
    auto& bias = g.add_initializer(floats({2}, {1, -1}, "bias"));
    auto& biased = g.add_node("Add", {&bias, mm.output(0)}, {"lin"});
    auto& s = g.add_initializer(floats({}, {2}, "s"));
    auto& mul = g.add_node("Mul", {biased.output(0), &s}, {"m"});
    auto& t = g.add_initializer(floats({1, 2}, {10, 20}, "t"));
    auto& add = g.add_node("Add", {mul.output(0), &t}, {"y"});
    g.add_output(*add.output(0));
    CHECK(quench::passes::fold_conv_mul_add(m).rewrites == 2);
    CHECK(g.node_count() == 2);
    check_close(data<float>(mm.input(1)), {2, 4, 6, 8});
    check_close(data<float>(biased.input(0)), {12, 18});
    CHECK(biased.output(0)->name() == "y");
  }
  g.check_invariants();
}

TEST_CASE("fold_conv_mul_add: what stays") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 4, 4}));
  auto& w = g.add_initializer(floats({2, 1, 1, 1}, {1, 2}, "W"));
  auto& conv = g.add_node("Conv", {&x, &w}, {"c"});

  SUBCASE("a constant that varies along another axis") {
    auto& s = g.add_initializer(floats({1, 1, 1, 2}, {1, 2}, "s"));
    auto& mul = g.add_node("Mul", {conv.output(0), &s}, {"y"});
    g.add_output(*mul.output(0));
    const auto r = quench::passes::fold_conv_mul_add(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("not per output channel") != std::string::npos);
  }
  SUBCASE("a constant of higher rank would broadcast the output") {
    auto& s = g.add_initializer(floats({1, 1, 2, 1, 1}, {1, 2}, "s"));
    auto& mul = g.add_node("Mul", {conv.output(0), &s}, {"y"});
    g.add_output(*mul.output(0));
    CHECK(quench::passes::fold_conv_mul_add(m).rewrites == 0);
  }
  SUBCASE("division by zero") {
    auto& d = g.add_initializer(floats({2, 1, 1}, {1, 0}, "d"));
    auto& div = g.add_node("Div", {conv.output(0), &d}, {"y"});
    g.add_output(*div.output(0));
    CHECK(quench::passes::fold_conv_mul_add(m).rewrites == 0);
  }
  SUBCASE("constant divided by the output") {
    auto& d = g.add_initializer(floats({}, {1}, "d"));
    auto& div = g.add_node("Div", {&d, conv.output(0)}, {"y"});
    g.add_output(*div.output(0));
    CHECK(quench::passes::fold_conv_mul_add(m).rewrites == 0);
  }
  SUBCASE("a residual Add of two activations") {
    auto& add = g.add_node("Add", {conv.output(0), &x}, {"y"});
    g.add_output(*add.output(0));
    const auto r = quench::passes::fold_conv_mul_add(m);
    CHECK(r.rewrites == 0);
    CHECK(r.kept.empty());
  }
  g.check_invariants();
  CHECK(data<float>(&w) == std::vector<float>{1, 2});
}
