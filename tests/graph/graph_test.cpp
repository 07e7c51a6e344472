#include <doctest/doctest.h>

#include <string>

#include "quench/graph/graph.hpp"

using quench::dim;
using quench::graph;
using quench::value;

namespace {
quench::tensor weights(const char* name) {
  quench::tensor t(quench::dtype::float32, {4, 4}, name);
  return t;
}
}  // namespace

TEST_CASE("building a graph keeps producers and uses consistent") {
  graph g;
  value& x = g.add_input("x", 1, std::vector<dim>{dim{1, {}}, dim{{}, "batch"}});
  value& w = g.add_initializer(weights("w"));
  auto& mm = g.add_node("MatMul", {&x, &w}, {"y"}, "mm");
  auto& relu = g.add_node("Relu", {mm.output(0)}, {"z"}, "relu");
  g.add_output(*relu.output(0));
  g.check_invariants();

  CHECK(mm.output(0)->producer() == &mm);
  REQUIRE(x.uses().size() == 1);
  CHECK(x.uses()[0].user == &mm);
  CHECK(x.uses()[0].index == 0);
  CHECK(w.is_initializer());
  CHECK(w.static_shape() == quench::shape{4, 4});
  CHECK_FALSE(x.static_shape());
  CHECK(g.find_value("z")->is_graph_output());

  SUBCASE("duplicate names are errors") {
    CHECK_THROWS_WITH(g.add_node("Relu", {&x}, {"y"}), doctest::Contains("duplicate value name 'y'"));
    g.check_invariants();
  }
  SUBCASE("rewire and replace") {
    auto& id = g.add_node("Identity", {&x}, {"x2"});
    g.check_invariants();
    g.set_input(mm, 0, id.output(0));
    g.check_invariants();
    CHECK(x.uses().size() == 1);
    CHECK(x.uses()[0].user == &id);
    g.replace_all_uses(*id.output(0), x);
    g.check_invariants();
    g.remove_node(id);
    g.check_invariants();
    CHECK(g.find_value("x2") == nullptr);
    CHECK(mm.input(0) == &x);
  }
  SUBCASE("removing a node that is still used is refused") {
    CHECK_THROWS_AS(g.remove_node(mm), quench::error);
    g.check_invariants();
  }
  SUBCASE("replace a graph output") {
    auto& sig = g.add_node("Sigmoid", {mm.output(0)}, {"s"});
    g.replace_all_uses(*relu.output(0), *sig.output(0), /*include_outputs=*/true);
    g.check_invariants();
    CHECK(g.outputs()[0]->name() == "s");
    CHECK(g.remove_dead_code() == 1);  // relu
    g.check_invariants();
    CHECK(g.node_count() == 2);
  }
}

TEST_CASE("topological sort is stable and names a node on a cycle") {
  graph g;
  value& x = g.add_input("x", 1);
  auto& a = g.add_node("Relu", {&x}, {"a"}, "A");
  auto& b = g.add_node("Relu", {&x}, {"b"}, "B");
  auto& c = g.add_node("Add", {a.output(0), b.output(0)}, {"c"}, "C");
  g.add_output(*c.output(0));
  g.move_before(c, a);  // C first: out of order
  g.check_invariants();
  g.topological_sort();
  auto order = g.nodes();
  CHECK(order[0]->name() == "A");
  CHECK(order[1]->name() == "B");
  CHECK(order[2]->name() == "C");

  // Make a cycle: A reads C.
  g.set_input(a, 0, c.output(0));
  CHECK_THROWS_WITH(g.topological_sort(), doctest::Contains("is part of a cycle"));
}

TEST_CASE("sub-graphs read outer values through stand-ins with implicit uses") {
  graph g;
  value& cond = g.add_input("cond", 9);
  value& x = g.add_input("x", 1);
  auto& pre = g.add_node("Relu", {&x}, {"r"}, "pre");
  auto& iff = g.add_node("If", {&cond}, {"out"}, "if");
  auto then_g = std::make_unique<graph>(&g, &iff);
  value& r_in = then_g->outer_ref("r");
  auto& neg = then_g->add_node("Neg", {&r_in}, {"t_out"});
  then_g->add_output(*neg.output(0));
  quench::attribute then_attr;
  then_attr.name = "then_branch";
  then_attr.type = quench::attribute_type::graph;
  then_attr.g = std::move(then_g);
  iff.attributes().push_back(std::move(then_attr));
  g.add_output(*iff.output(0));
  g.check_invariants();

  value& r = *pre.output(0);
  REQUIRE(r.uses().size() == 1);
  CHECK(r.uses()[0].user == &iff);
  CHECK(r.uses()[0].index == quench::use::implicit_use);
  CHECK(g.dependencies(iff).size() == 2);

  // The If depends on `pre` through its branch, so a sort keeps pre first and DCE keeps it.
  g.move_before(iff, pre);
  g.topological_sort();
  CHECK(g.nodes()[0] == &pre);
  CHECK(g.remove_dead_code() == 0);

  // Replacing r by x retargets the branch's stand-in.
  g.replace_all_uses(r, x);
  g.check_invariants();
  CHECK(iff.subgraphs()[0]->find_value("x") != nullptr);
  CHECK(g.remove_dead_code() == 1);  // pre is now dead
  g.check_invariants();

  CHECK_THROWS_AS(iff.subgraphs()[0]->outer_ref("nowhere"), quench::error);
}

TEST_CASE("unique names avoid every scope") {
  graph g;
  g.add_input("t", 1);
  CHECK(g.unique_name("t") == "t_1");
  CHECK(g.unique_name("fresh") == "fresh");
  auto& n = g.add_node("Relu", {g.find_value("t")}, {"t_2"}, "t_3");
  (void)n;
  const auto name = g.unique_name("t");
  CHECK(name != "t_2");
  CHECK(name != "t_3");
}
