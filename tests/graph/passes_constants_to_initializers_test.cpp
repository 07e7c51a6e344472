#include <doctest/doctest.h>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/constants_to_initializers.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;

TEST_CASE("constants_to_initializers: value, value_float(s) and value_int(s) become initializers") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2, 3}));
  auto& w = g.add_node("Constant", {}, {"w"}, "w_const");
  w.set_attribute(attribute::make_tensor("value", floats({3, 2}, {1, 2, 3, 4, 5, 6})));
  auto& s = g.add_node("Constant", {}, {"s"}, "s_const");
  s.set_attribute(attribute::make_float("value_float", 2.5f));
  auto& shp = g.add_node("Constant", {}, {"shape"}, "shape_const");
  shp.set_attribute(attribute::make_ints("value_ints", {1, -1}));
  auto& fs = g.add_node("Constant", {}, {"fs"});
  fs.set_attribute(attribute::make_floats("value_floats", {0.5f, 1.5f}));
  auto& mm = g.add_node("MatMul", {&x, w.output(0)}, {"mm"});
  auto& mul = g.add_node("Mul", {mm.output(0), s.output(0)}, {"mul"});
  auto& add = g.add_node("Add", {mul.output(0), fs.output(0)}, {"add"});
  auto& r = g.add_node("Reshape", {add.output(0), shp.output(0)}, {"y"});
  g.add_output(*r.output(0));
  g.check_invariants();

  const auto report = quench::passes::constants_to_initializers(m);
  g.check_invariants();
  CHECK(report.rewrites == 4);
  CHECK(report.kept.empty());
  CHECK(count_ops(g, "Constant") == 0);
  CHECK(g.initializers().size() == 4);
  CHECK(data<float>(g.find_value("w")) == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(g.find_value("w")->static_shape() == quench::shape{3, 2});
  CHECK(data<float>(g.find_value("s")) == std::vector<float>{2.5f});
  CHECK(g.find_value("s")->static_shape() == quench::shape{});
  CHECK(data<std::int64_t>(g.find_value("shape")) == std::vector<std::int64_t>{1, -1});
  CHECK(data<float>(g.find_value("fs")) == std::vector<float>{0.5f, 1.5f});
  CHECK(mm.input(1) == g.find_value("w"));
  CHECK(r.input(1) == g.find_value("shape"));
}

TEST_CASE("constants_to_initializers: what stays a Constant, and malformed Constants") {
  quench::model m;
  m.set_opset("", 11);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2}));

  SUBCASE("a graph output stays produced by its Constant") {
    auto& c = g.add_node("Constant", {}, {"c"});
    c.set_attribute(attribute::make_tensor("value", floats({2}, {1, 2})));
    g.add_output(*c.output(0));
    const auto r = quench::passes::constants_to_initializers(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("graph output") != std::string::npos);
  }
  SUBCASE("sparse_value is kept with a reason") {
    auto& c = g.add_node("Constant", {}, {"c"});
    attribute a;
    a.name = "sparse_value";
    a.type = quench::attribute_type::sparse_tensor;
    c.set_attribute(std::move(a));
    auto& add = g.add_node("Add", {&x, c.output(0)}, {"y"});
    g.add_output(*add.output(0));
    const auto r = quench::passes::constants_to_initializers(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("sparse_value") != std::string::npos);
  }
  SUBCASE("value_floats needs opset 12") {
    auto& c = g.add_node("Constant", {}, {"c"});
    c.set_attribute(attribute::make_floats("value_floats", {1, 2}));
    CHECK_THROWS_WITH(quench::passes::constants_to_initializers(m), doctest::Contains("needs opset 12"));
  }
  SUBCASE("no value, or two values") {
    auto& c = g.add_node("Constant", {}, {"c"});
    CHECK_THROWS_WITH(quench::passes::constants_to_initializers(m), doctest::Contains("has no value attribute"));
    c.set_attribute(attribute::make_tensor("value", floats({1}, {1})));
    c.set_attribute(attribute::make_float("value_float", 1));
    CHECK_THROWS_WITH(quench::passes::constants_to_initializers(m), doctest::Contains("exactly one value"));
  }
  SUBCASE("a value attribute of the wrong type") {
    auto& c = g.add_node("Constant", {}, {"c"});
    c.set_attribute(attribute::make_float("value", 1));
    CHECK_THROWS_AS(quench::passes::constants_to_initializers(m), quench::error);
  }
  g.check_invariants();
}

TEST_CASE("constants_to_initializers: sub-graphs, and sub-graphs reading a converted Constant") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& cond = g.add_input("cond", 9, dims({}));
  auto& c = g.add_node("Constant", {}, {"k"});
  c.set_attribute(attribute::make_tensor("value", floats({2}, {3, 4})));
  auto& iff = g.add_node("If", {&cond}, {"out"}, "if");
  graph& then_g = add_subgraph(g, iff, "then_branch");
  auto& inner_c = then_g.add_node("Constant", {}, {"inner"});
  inner_c.set_attribute(attribute::make_tensor("value", floats({2}, {1, 1})));
  auto& add = then_g.add_node("Add", {&then_g.outer_ref("k"), inner_c.output(0)}, {"t_out"});
  then_g.add_output(*add.output(0));
  graph& else_g = add_subgraph(g, iff, "else_branch");
  auto& neg = else_g.add_node("Neg", {&else_g.outer_ref("k")}, {"e_out"});
  else_g.add_output(*neg.output(0));
  g.add_output(*iff.output(0));
  g.check_invariants();

  const auto r = quench::passes::constants_to_initializers(m);
  g.check_invariants();
  CHECK(r.rewrites == 2);
  const quench::value* k = g.find_value("k");
  REQUIRE(k);
  CHECK(k->is_initializer());
  // The branches still read "k" by name, through stand-ins that point at the initializer.
  CHECK(then_g.find_value("k")->outer() == k);
  CHECK(else_g.find_value("k")->outer() == k);
  CHECK(add.input(0)->name() == "k");
  CHECK(then_g.find_value("inner")->is_initializer());
  CHECK(k->uses().size() == 2);
}
