#include <doctest/doctest.h>

#include <string>

#include "quench/onnx/model_io.hpp"
#include "quench/onnx/shape_inference.hpp"

namespace qo = quench::onnx;
using quench::dim;

TEST_CASE("infer_shapes fills value types and shapes, through a Reshape with a constant shape") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{1, {}}, dim{3, {}}, dim{8, {}}, dim{8, {}}});
  auto& w = g.add_initializer(quench::tensor(quench::dtype::float32, {16, 3, 3, 3}, "w"));  // >= 1 KiB: not copied
  auto& conv = g.add_node("Conv", {&x, &w}, {"c"});
  conv.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& relu = g.add_node("Relu", {conv.output(0)}, {"r"});
  auto& shape = g.add_initializer(quench::tensor::from<std::int64_t>({2}, {1, -1}, "shape"));
  auto& reshape = g.add_node("Reshape", {relu.output(0), &shape}, {"y"});
  g.add_output(*reshape.output(0));

  qo::infer_shapes(m);
  const auto* c = g.find_value("c");
  REQUIRE(c->static_shape());
  CHECK(*c->static_shape() == quench::shape{1, 16, 8, 8});
  CHECK(c->elem_type() == 1);
  REQUIRE(g.find_value("y")->static_shape());
  CHECK(*g.find_value("y")->static_shape() == quench::shape{1, 1024});
  CHECK(g.value_infos().empty());  // not recorded unless asked

  qo::shape_inference_options o;
  o.record_value_info = true;
  qo::infer_shapes(m, o);
  CHECK(g.value_infos().size() == 2);  // c and r
  g.check_invariants();
  qo::check_model(m);
}

TEST_CASE("check_model reports what the ONNX checker finds") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{2, {}}});
  auto& n = g.add_node("NoSuchOp", {&x}, {"y"});
  g.add_output(*n.output(0));
  CHECK_THROWS_WITH(qo::check_model(m), doctest::Contains("[quench.invalid_model] onnx checker"));
}

TEST_CASE("strict shape inference reports inconsistent shapes") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& a = g.add_input("a", 1, std::vector<dim>{dim{2, {}}});
  auto& b = g.add_input("b", 1, std::vector<dim>{dim{3, {}}});
  auto& n = g.add_node("Add", {&a, &b}, {"y"});
  g.add_output(*n.output(0));
  CHECK_THROWS_AS(qo::infer_shapes(m, qo::shape_inference_options{true, true, false}), quench::error);
  qo::infer_shapes(m);  // lenient: leaves y unknown instead
  CHECK_FALSE(g.find_value("y")->static_shape());
}
