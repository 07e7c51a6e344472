#include <doctest/doctest.h>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/remove_identity.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;

TEST_CASE("remove_identity: chains, and a graph output keeps its name") {
  quench::model m;
  m.set_opset("", 11);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2, 3}));
  auto& id1 = g.add_node("Identity", {&x}, {"a"});
  auto& relu = g.add_node("Relu", {id1.output(0)}, {"r"}, "relu");
  auto& drop = g.add_node("Dropout", {relu.output(0)}, {"d", "mask"});
  drop.set_attribute(attribute::make_float("ratio", 0.3f));
  auto& id2 = g.add_node("Identity", {drop.output(0)}, {"y"});
  auto& side = g.add_node("Sigmoid", {drop.output(0)}, {"side"});
  g.add_output(*id2.output(0));
  g.add_output(*side.output(0));
  g.find_value("y")->set_elem_type(1);
  g.check_invariants();

  const auto r = quench::passes::remove_identity(m);
  g.check_invariants();
  CHECK(r.rewrites == 3);
  CHECK(r.kept.empty());
  CHECK(g.node_count() == 2);
  // Relu now produces the graph output under its name; Sigmoid reads it too.
  CHECK(relu.input(0) == &x);
  REQUIRE(relu.output(0)->name() == "y");
  CHECK(g.outputs()[0] == relu.output(0));
  CHECK(side.input(0) == relu.output(0));
  CHECK(g.find_value("r") == nullptr);
  CHECK(g.find_value("mask") == nullptr);
}

TEST_CASE("remove_identity: what stays") {
  quench::model m;
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2}));

  SUBCASE("an Identity from a graph input to a graph output") {
    m.set_opset("", 13);
    auto& id = g.add_node("Identity", {&x}, {"y"});
    g.add_output(*id.output(0));
    const auto r = quench::passes::remove_identity(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("cannot take its name") != std::string::npos);
  }
  SUBCASE("an Identity between two graph outputs") {
    m.set_opset("", 13);
    auto& relu = g.add_node("Relu", {&x}, {"r"});
    auto& id = g.add_node("Identity", {relu.output(0)}, {"y"});
    g.add_output(*relu.output(0));
    g.add_output(*id.output(0));
    CHECK(quench::passes::remove_identity(m).rewrites == 0);
  }
  SUBCASE("a Dropout whose mask is used") {
    m.set_opset("", 9);
    auto& d = g.add_node("Dropout", {&x}, {"y", "mask"});
    auto& n = g.add_node("Not", {d.output(1)}, {"nm"});
    g.add_output(*d.output(0));
    g.add_output(*n.output(0));
    const auto r = quench::passes::remove_identity(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("mask") != std::string::npos);
  }
  SUBCASE("opset 6 Dropout follows is_test") {
    m.set_opset("", 6);
    auto& relu = g.add_node("Relu", {&x}, {"r"});
    auto& d = g.add_node("Dropout", {relu.output(0)}, {"y"});
    g.add_output(*d.output(0));
    CHECK(quench::passes::remove_identity(m).rewrites == 0);
    d.set_attribute(attribute::make_int("is_test", 1));
    CHECK(quench::passes::remove_identity(m).rewrites == 1);
    CHECK(relu.output(0)->name() == "y");
  }
  SUBCASE("opset 13 Dropout follows training_mode") {
    m.set_opset("", 13);
    auto& relu = g.add_node("Relu", {&x}, {"r"});
    auto& ratio = g.add_initializer(floats({}, {0.5f}, "ratio"));
    auto& mode = g.add_initializer(quench::tensor::from<bool>({}, {true}, "mode"));
    auto& d = g.add_node("Dropout", {relu.output(0), &ratio, &mode}, {"y"});
    g.add_output(*d.output(0));
    auto r = quench::passes::remove_identity(m);
    CHECK(r.rewrites == 0);
    REQUIRE(r.kept.size() == 1);
    CHECK(r.kept[0].find("training_mode is true") != std::string::npos);
    mode.initializer()->view<bool>()[0] = false;
    CHECK(quench::passes::remove_identity(m).rewrites == 1);
  }
  SUBCASE("opset 13 Dropout with a training_mode computed at run time") {
    m.set_opset("", 13);
    auto& mode = g.add_input("mode", 9, dims({}));
    auto& relu = g.add_node("Relu", {&x}, {"r"});
    auto& d = g.add_node("Dropout", {relu.output(0), nullptr, &mode}, {"y"});
    g.add_output(*d.output(0));
    CHECK(quench::passes::remove_identity(m).rewrites == 0);
  }
  SUBCASE("malformed") {
    m.set_opset("", 13);
    g.add_node("Identity", {nullptr}, {"y"});
    CHECK_THROWS_WITH(quench::passes::remove_identity(m), doctest::Contains("has no data input"));
  }
  g.check_invariants();
}

TEST_CASE("remove_identity: sub-graphs reading the removed output read its input") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2}));
  auto& cond = g.add_input("cond", 9, dims({}));
  auto& relu = g.add_node("Relu", {&x}, {"r"});
  auto& id = g.add_node("Identity", {relu.output(0)}, {"ident"});
  auto& iff = g.add_node("If", {&cond}, {"out"});
  graph& then_g = add_subgraph(g, iff, "then_branch");
  auto& neg = then_g.add_node("Neg", {&then_g.outer_ref("ident")}, {"t"});
  // An Identity inside the branch, producing the branch output from an outer value: kept.
  auto& inner = then_g.add_node("Identity", {neg.output(0)}, {"t_out"});
  then_g.add_output(*inner.output(0));
  graph& else_g = add_subgraph(g, iff, "else_branch");
  auto& e = else_g.add_node("Identity", {&else_g.outer_ref("x")}, {"e_out"});
  else_g.add_output(*e.output(0));
  g.add_output(*iff.output(0));
  g.check_invariants();
  (void)id;

  const auto r = quench::passes::remove_identity(m);
  g.check_invariants();
  CHECK(r.rewrites == 2);  // the outer Identity and the one after Neg
  CHECK(r.kept.size() == 1);  // else: an outer value cannot take the output's name
  CHECK(neg.input(0)->name() == "r");
  CHECK(neg.input(0)->outer() == relu.output(0));
  CHECK(neg.output(0)->name() == "t_out");
  CHECK(then_g.outputs()[0] == neg.output(0));
}
