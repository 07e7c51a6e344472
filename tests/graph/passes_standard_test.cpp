#include <doctest/doctest.h>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/standard.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;

TEST_CASE("standard_passes: an exported-looking model comes out as Conv -> Relu -> Reshape -> Gemm") {
  quench::model m;
  m.set_opset("", 13);
  graph& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 1, 2, 2}));
  auto& wc = g.add_node("Constant", {}, {"W"});
  wc.set_attribute(attribute::make_tensor("value", floats({2, 1, 1, 1}, {1, 2})));
  auto& id = g.add_node("Identity", {wc.output(0)}, {"W_id"});
  auto& conv = g.add_node("Conv", {&x, id.output(0)}, {"c"});
  auto& s = g.add_initializer(floats({2, 1, 1}, {3, 4}, "s"));
  auto& mul = g.add_node("Mul", {conv.output(0), &s}, {"m"});
  auto& one = g.add_initializer(floats({2}, {1, 1}, "one"));
  auto& zero = g.add_initializer(floats({2}, {0, 0}, "zero"));
  auto& bn = g.add_node("BatchNormalization", {mul.output(0), &one, &zero, &zero, &one}, {"bn"});
  auto& relu = g.add_node("Relu", {bn.output(0)}, {"r"});
  auto& drop = g.add_node("Dropout", {relu.output(0)}, {"d"});
  auto& shape = g.add_node("Shape", {drop.output(0)}, {"shape"});
  auto& idx = g.add_initializer(int64s({}, {0}, "idx"));
  auto& batch = g.add_node("Gather", {shape.output(0), &idx}, {"batch"});
  auto& axes = g.add_initializer(int64s({1}, {0}, "axes"));
  auto& batch1 = g.add_node("Unsqueeze", {batch.output(0), &axes}, {"batch1"});
  auto& minus1 = g.add_initializer(int64s({1}, {-1}, "minus1"));
  auto& target = g.add_node("Concat", {batch1.output(0), &minus1}, {"target"});
  target.set_attribute(attribute::make_int("axis", 0));
  auto& flat = g.add_node("Reshape", {drop.output(0), target.output(0)}, {"flat"});
  auto& b = g.add_initializer(quench::tensor(quench::dtype::float32, {8, 3}, "B"));
  auto& gemm = g.add_node("Gemm", {flat.output(0), &b}, {"g"});
  auto& out = g.add_node("Identity", {gemm.output(0)}, {"y"});
  g.add_output(*out.output(0));
  // What quench::onnx::infer_shapes would find: the Shape input is static.
  drop.output(0)->set_dims(dims({1, 2, 2, 2}));
  g.check_invariants();

  const auto r = quench::passes::standard_passes(m);
  g.check_invariants();
  CHECK(r.constants_to_initializers.rewrites == 1);
  CHECK(r.remove_identity.rewrites == 3);
  CHECK(r.fold_constants.rewrites == 4);
  CHECK(r.fold_conv_mul_add.rewrites == 1);
  CHECK(r.fold_batch_norm.rewrites == 1);
  std::vector<std::string> ops;
  for (const quench::node* n : g.nodes()) ops.push_back(n->op_type());
  CHECK(ops == std::vector<std::string>{"Conv", "Relu", "Reshape", "Gemm"});
  CHECK(gemm.output(0)->name() == "y");
  CHECK(data<std::int64_t>(flat.input(1)) == std::vector<std::int64_t>{1, -1});
  // BN(mean 0, var 1, eps 1e-5) after Mul(3, 4): the weight is scaled by 3 and 4 over sqrt(1 + 1e-5).
  check_close(data<float>(conv.input(1)), {3 / std::sqrt(1 + 1e-5), 8 / std::sqrt(1 + 1e-5)});
  // Unused parameters are gone.
  CHECK(g.find_value("s") == nullptr);
  CHECK(g.find_value("one") == nullptr);
  CHECK(g.find_value("idx") == nullptr);
  CHECK(r.total_rewrites() >= 10);
}

TEST_CASE("standard_passes: BatchNorm statistics are kept for folded outputs, dropped when a later fold changes that output") {
  auto build = [](quench::model& m, bool mul_after) {
    m.set_opset("", 13);
    graph& g = m.main_graph();
    auto& x = g.add_input("x", 1, dims({1, 1, 2, 2}));
    auto& w = g.add_initializer(floats({2, 1, 1, 1}, {1, 2}, "W"));
    auto& conv = g.add_node("Conv", {&x, &w}, {"c"});
    auto& sc = g.add_initializer(floats({2}, {2, -0.5f}, "scale"));
    auto& b = g.add_initializer(floats({2}, {0.25f, 1}, "B"));
    auto& mean = g.add_initializer(floats({2}, {0, 0}, "mean"));
    auto& var = g.add_initializer(floats({2}, {1, 1}, "var"));
    auto& bn = g.add_node("BatchNormalization", {conv.output(0), &sc, &b, &mean, &var}, {"bn"});
    quench::value* y = bn.output(0);
    if (mul_after) {
      auto& s = g.add_initializer(floats({2, 1, 1}, {3, 4}, "s"));
      y = g.add_node("Mul", {y, &s}, {"m"}).output(0);
    }
    g.add_output(*g.add_node("Relu", {y}, {"r"}).output(0));
  };
  quench::model plain, scaled;
  build(plain, false);
  build(scaled, true);
  const auto r = quench::passes::standard_passes(plain);
  REQUIRE(r.bn_statistics.count("bn"));
  CHECK(r.bn_statistics.at("bn").mean == std::vector<double>{0.25, 1});
  CHECK(r.bn_statistics.at("bn").stddev == std::vector<double>{2, 0.5});
  // Conv -> BN -> Mul: the Mul is folded into the conv, whose output is now "m", scaled.
  const auto rs = quench::passes::standard_passes(scaled);
  CHECK(rs.fold_conv_mul_add.rewrites == 1);
  CHECK(rs.bn_statistics.empty());
}
