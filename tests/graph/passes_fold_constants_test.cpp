#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/fold_constants.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;
using i64 = std::vector<std::int64_t>;

namespace {

/// Builds y = Reshape(x, Concat(Slice(Shape(x), 0, 1), [-1])) in the opset's Slice form.
void reshape_model(quench::model& m, std::int64_t opset, bool static_batch) {
  m.set_opset("", opset);
  graph& g = m.main_graph();
  std::vector<quench::dim> d = dims({2, 3, 4});
  if (!static_batch) d[0] = quench::dim{{}, "N"};
  auto& x = g.add_input("x", 1, d);
  auto& shape = g.add_node("Shape", {&x}, {"shape"});
  quench::node* slice = nullptr;
  if (opset < 10) {
    slice = &g.add_node("Slice", {shape.output(0)}, {"batch"});
    slice->set_attribute(attribute::make_ints("starts", {0}));
    slice->set_attribute(attribute::make_ints("ends", {1}));
  } else {
    auto& s = g.add_initializer(int64s({1}, {0}, "starts"));
    auto& e = g.add_initializer(int64s({1}, {1}, "ends"));
    slice = &g.add_node("Slice", {shape.output(0), &s, &e}, {"batch"});
  }
  auto& minus1 = g.add_initializer(int64s({1}, {-1}, "minus1"));
  auto& cat = g.add_node("Concat", {slice->output(0), &minus1}, {"target"});
  cat.set_attribute(attribute::make_int("axis", 0));
  auto& r = g.add_node("Reshape", {&x, cat.output(0)}, {"y"});
  g.add_output(*r.output(0));
}

/// One node `op` over constant inputs; returns the folded output or null.
struct single_op {
  quench::model m;
  graph& g = m.main_graph();
  quench::node* n = nullptr;

  explicit single_op(std::int64_t opset) { m.set_opset("", opset); }
  quench::value& constant(quench::tensor t) { return g.add_initializer(std::move(t)); }
  quench::node& op(const std::string& type, const std::vector<quench::value*>& ins) {
    n = &g.add_node(type, ins, {"out"}, "op");
    auto& sink = g.add_node("Identity", {n->output(0)}, {"y"});  // keeps "out" off the graph outputs
    g.add_output(*sink.output(0));
    return *n;
  }
  const quench::value* fold() {
    quench::passes::fold_constants(m);
    g.check_invariants();
    const quench::value* v = g.find_value("out");
    return v && v->is_initializer() ? v : nullptr;
  }
};

}  // namespace

TEST_CASE("fold_constants: the Reshape(x, Concat(Shape(x)[0:1], [-1])) shape subgraph") {
  for (std::int64_t opset : {9, 11, 13, 17}) {
    CAPTURE(opset);
    quench::model m;
    reshape_model(m, opset, true);
    const auto r = quench::passes::fold_constants(m);
    graph& g = m.main_graph();
    g.check_invariants();
    CHECK(r.rewrites == 3);
    CHECK(g.node_count() == 1);
    const quench::value* target = g.find_value("target");
    CHECK(data<std::int64_t>(target) == i64{2, -1});
    CHECK(g.find_value("batch") == nullptr);  // intermediate results are not kept
    CHECK(g.find_value("minus1") != nullptr);  // the model's own initializers are
  }
  SUBCASE("a symbolic batch stays computed at run time") {
    quench::model m;
    reshape_model(m, 13, false);
    CHECK(quench::passes::fold_constants(m).rewrites == 0);
    CHECK(m.main_graph().node_count() == 4);
  }
}

TEST_CASE("fold_constants: Gather, Unsqueeze and Squeeze, attribute and input forms") {
  for (std::int64_t opset : {11, 13}) {
    CAPTURE(opset);
    single_op t(opset);
    auto& shape = t.constant(int64s({4}, {8, 3, 32, 32}, "shape"));
    auto& idx = t.constant(int64s({}, {-3}, "idx"));
    auto& gather = t.g.add_node("Gather", {&shape, &idx}, {"dim"});
    quench::node* unsq = nullptr;
    if (opset < 13) {
      unsq = &t.g.add_node("Unsqueeze", {gather.output(0)}, {"u"});
      unsq->set_attribute(attribute::make_ints("axes", {0, -1}));
    } else {
      unsq = &t.g.add_node("Unsqueeze", {gather.output(0), &t.constant(int64s({2}, {0, -1}, "axes"))}, {"u"});
    }
    quench::node& sq = opset < 13 ? t.op("Squeeze", {unsq->output(0)}) : t.op("Squeeze", {unsq->output(0), &t.constant(int64s({1}, {1}, "sq_axes"))});
    if (opset < 13) sq.set_attribute(attribute::make_ints("axes", {1}));
    const quench::value* out = t.fold();
    REQUIRE(out);
    CHECK(data<std::int64_t>(out) == i64{3});
    CHECK(out->static_shape() == quench::shape{1});
  }
}

TEST_CASE("fold_constants: integer arithmetic is exact to ONNX") {
  single_op t(13);
  SUBCASE("Div truncates toward zero") {
    t.op("Div", {&t.constant(int64s({4}, {-7, 7, -7, 7})), &t.constant(int64s({4}, {2, 2, -2, -2}))});
    CHECK(data<std::int64_t>(t.fold()) == i64{-3, 3, 3, -3});
  }
  SUBCASE("Div by zero is left to the runtime") {
    t.op("Div", {&t.constant(int64s({2}, {1, 2})), &t.constant(int64s({1}, {0}))});
    CHECK(t.fold() == nullptr);
  }
  SUBCASE("int32 wraps") {
    t.op("Add", {&t.constant(quench::tensor::from<std::int32_t>({1}, {std::numeric_limits<std::int32_t>::max()})),
                 &t.constant(quench::tensor::from<std::int32_t>({}, {1}))});
    const auto* out = t.fold();
    REQUIRE(out);
    CHECK(data<std::int32_t>(out) == std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min()});
  }
  SUBCASE("broadcast Mul and Sub") {
    auto& a = t.constant(int64s({2, 1}, {1, 2}));
    auto& b = t.constant(int64s({3}, {10, 20, 30}));
    t.op("Mul", {&a, &b});
    const auto* out = t.fold();
    CHECK(data<std::int64_t>(out) == i64{10, 20, 30, 20, 40, 60});
    CHECK(out->static_shape() == quench::shape{2, 3});
  }
  SUBCASE("float32 Div rounds to float") {
    t.op("Div", {&t.constant(floats({1}, {1})), &t.constant(floats({1}, {3}))});
    CHECK(data<float>(t.fold()) == std::vector<float>{1.f / 3.f});
  }
}

TEST_CASE("fold_constants: Slice, Cast, Range, ConstantOfShape, Expand, Equal, Where, Concat, Size") {
  single_op t(13);
  SUBCASE("Slice with a negative step and clamped bounds") {
    auto& data_in = t.constant(int64s({10}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    t.op("Slice", {&data_in, &t.constant(int64s({1}, {-1})), &t.constant(int64s({1}, {std::numeric_limits<std::int64_t>::min()})),
                   &t.constant(int64s({1}, {0})), &t.constant(int64s({1}, {-2}))});
    CHECK(data<std::int64_t>(t.fold()) == i64{9, 7, 5, 3, 1});
  }
  SUBCASE("Slice of a 2-D tensor on axis 1") {
    auto& data_in = t.constant(int64s({2, 3}, {1, 2, 3, 4, 5, 6}));
    t.op("Slice", {&data_in, &t.constant(int64s({1}, {1})), &t.constant(int64s({1}, {100})), &t.constant(int64s({1}, {-1}))});
    const auto* out = t.fold();
    CHECK(data<std::int64_t>(out) == i64{2, 3, 5, 6});
    CHECK(out->static_shape() == quench::shape{2, 2});
  }
  SUBCASE("Cast float to int64 truncates; out of range stays") {
    auto& c = t.op("Cast", {&t.constant(floats({3}, {-1.7f, 2.9f, 0.f}))});
    c.set_attribute(attribute::make_int("to", 7));
    CHECK(data<std::int64_t>(t.fold()) == i64{-1, 2, 0});
  }
  SUBCASE("Cast of an out-of-range float is not folded") {
    auto& c = t.op("Cast", {&t.constant(floats({1}, {3e10f}))});
    c.set_attribute(attribute::make_int("to", 6));
    CHECK(t.fold() == nullptr);
  }
  SUBCASE("Range, integer and float") {
    t.op("Range", {&t.constant(int64s({}, {10})), &t.constant(int64s({}, {1})), &t.constant(int64s({}, {-3}))});
    CHECK(data<std::int64_t>(t.fold()) == i64{10, 7, 4});
  }
  SUBCASE("float Range") {
    t.op("Range", {&t.constant(floats({}, {0.f})), &t.constant(floats({}, {1.f})), &t.constant(floats({}, {0.25f}))});
    CHECK(data<float>(t.fold()) == std::vector<float>{0.f, 0.25f, 0.5f, 0.75f});
  }
  SUBCASE("ConstantOfShape with a value, and above the size limit") {
    auto& c = t.op("ConstantOfShape", {&t.constant(int64s({2}, {2, 2}))});
    c.set_attribute(attribute::make_tensor("value", int64s({1}, {7})));
    CHECK(data<std::int64_t>(t.fold()) == i64{7, 7, 7, 7});
    auto& big = t.g.add_node("ConstantOfShape", {&t.constant(int64s({1}, {100000}))}, {"big"});
    auto& sink = t.g.add_node("Identity", {big.output(0)}, {"big_out"});
    t.g.add_output(*sink.output(0));
    CHECK(quench::passes::fold_constants(t.m).rewrites == 0);
  }
  SUBCASE("Expand") {
    t.op("Expand", {&t.constant(int64s({2, 1}, {1, 2})), &t.constant(int64s({2}, {1, 3}))});
    CHECK(data<std::int64_t>(t.fold()) == i64{1, 1, 1, 2, 2, 2});
  }
  SUBCASE("Equal and Where") {
    auto& a = t.constant(int64s({3}, {1, 5, 3}));
    auto& eq = t.g.add_node("Equal", {&a, &t.constant(int64s({}, {5}))}, {"eq"});
    t.op("Where", {eq.output(0), &t.constant(int64s({}, {-1})), &a});
    CHECK(data<std::int64_t>(t.fold()) == i64{1, -1, 3});
  }
  SUBCASE("Concat on axis 1") {
    auto& c = t.op("Concat", {&t.constant(int64s({2, 1}, {1, 2})), &t.constant(int64s({2, 2}, {3, 4, 5, 6}))});
    c.set_attribute(attribute::make_int("axis", -1));
    CHECK(data<std::int64_t>(t.fold()) == i64{1, 3, 4, 2, 5, 6});
  }
  SUBCASE("Size and Shape with start/end of an activation with a static shape") {
    auto& x = t.g.add_input("x", 1, dims({2, 3, 4}));
    auto& shape = t.g.add_node("Shape", {&x}, {"s"});
    shape.set_attribute(attribute::make_int("start", -2));
    auto& size = t.g.add_node("Size", {&x}, {"n"});
    t.op("Concat", {shape.output(0), &t.constant(int64s({1}, {0}))}).set_attribute(attribute::make_int("axis", 0));
    auto& sink = t.g.add_node("Identity", {size.output(0)}, {"n_out"});
    t.g.add_output(*sink.output(0));
    CHECK(data<std::int64_t>(t.fold()) == i64{3, 4, 0});
    CHECK(data<std::int64_t>(t.g.find_value("n")) == i64{24});
  }
}

TEST_CASE("fold_constants: malformed nodes throw") {
  single_op t(13);
  SUBCASE("Gather index out of range") {
    t.op("Gather", {&t.constant(int64s({2}, {1, 2})), &t.constant(int64s({}, {2}))});
    CHECK_THROWS_WITH(t.fold(), doctest::Contains("out_of_range"));
  }
  SUBCASE("Reshape to a wrong element count") {
    t.op("Reshape", {&t.constant(int64s({4}, {1, 2, 3, 4})), &t.constant(int64s({1}, {3}))});
    CHECK_THROWS_WITH(t.fold(), doctest::Contains("cannot reshape"));
  }
  SUBCASE("Squeeze of an axis that is not 1") {
    t.op("Squeeze", {&t.constant(int64s({2}, {1, 2})), &t.constant(int64s({1}, {0}))});
    CHECK_THROWS_WITH(t.fold(), doctest::Contains("cannot squeeze"));
  }
  SUBCASE("mixed element types") {
    t.op("Add", {&t.constant(int64s({1}, {1})), &t.constant(floats({1}, {1}))});
    CHECK_THROWS_WITH(t.fold(), doctest::Contains("dtype_mismatch"));
  }
  SUBCASE("Slice with step 0") {
    t.op("Slice", {&t.constant(int64s({2}, {1, 2})), &t.constant(int64s({1}, {0})), &t.constant(int64s({1}, {2})),
                   &t.constant(int64s({1}, {0})), &t.constant(int64s({1}, {0}))});
    CHECK_THROWS_WITH(t.fold(), doctest::Contains("step 0"));
  }
}

TEST_CASE("fold_constants: a node producing a graph output, and large weights, stay") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& big = g.add_initializer(quench::tensor(quench::dtype::float32, {128, 256}, "big"));
  auto& two = g.add_initializer(floats({}, {2}, "two"));
  auto& mul = g.add_node("Mul", {&big, &two}, {"scaled"});
  auto& x = g.add_input("x", 1, dims({1, 128}));
  auto& mm = g.add_node("MatMul", {&x, mul.output(0)}, {"y"});
  g.add_output(*mm.output(0));
  auto& a = g.add_initializer(int64s({1}, {1}, "a"));
  auto& add = g.add_node("Add", {&a, &a}, {"z"});
  g.add_output(*add.output(0));
  CHECK(quench::passes::fold_constants(m).rewrites == 0);
  g.check_invariants();
}
