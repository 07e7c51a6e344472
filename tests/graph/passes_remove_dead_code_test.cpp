#include <doctest/doctest.h>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/remove_dead_code.hpp"

using namespace passes_test;
using quench::graph;

TEST_CASE("remove_dead_code: dead nodes and unused initializers, also inside sub-graphs") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2}));
  auto& cond = g.add_input("cond", 9, dims({}));
  auto& unused = g.add_input("unused", 1, dims({2}));
  g.add_initializer(floats({2}, {1, 2}, "orphan"));
  auto& dead = g.add_node("Relu", {&x}, {"dead"});
  g.add_node("Neg", {dead.output(0)}, {"dead2"});
  auto& iff = g.add_node("If", {&cond}, {"out"});
  graph& then_g = add_subgraph(g, iff, "then_branch");
  auto& live = then_g.add_node("Neg", {&then_g.outer_ref("x")}, {"t_out"});
  then_g.add_node("Relu", {live.output(0)}, {"t_dead"});
  then_g.add_initializer(floats({1}, {0}, "t_orphan"));
  then_g.add_output(*live.output(0));
  graph& else_g = add_subgraph(g, iff, "else_branch");
  auto& e = else_g.add_node("Relu", {&else_g.outer_ref("x")}, {"e_out"});
  else_g.add_output(*e.output(0));
  g.add_output(*iff.output(0));
  g.check_invariants();

  const auto r = quench::passes::remove_dead_code(m);
  g.check_invariants();
  CHECK(r.rewrites == 3);
  CHECK(g.node_count() == 1);
  CHECK(then_g.node_count() == 1);
  CHECK(g.find_value("orphan") == nullptr);
  CHECK(then_g.find_value("t_orphan") == nullptr);
  CHECK(g.find_value("unused") == &unused);  // graph inputs are the interface
  CHECK(quench::passes::remove_dead_code(m).rewrites == 0);
}
