#pragma once
// A small graph with every kind of channel coupling the sparsify / prune pipelines handle, built
// through the graph API, and helpers to run it in the executor.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/runtime/executor.hpp"

namespace sparsity_test {

inline quench::tensor normal(quench::shape s, const std::string& name, std::uint32_t seed, float spread = 0.3f, float mean = 0.f) {
  quench::tensor t(quench::dtype::float32, std::move(s), name);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(mean, spread);
  for (auto& v : t.view<float>()) v = n(rng);
  return t;
}

inline quench::value& batch_norm(quench::graph& g, quench::value& x, std::int64_t c, const std::string& name, std::uint32_t seed) {
  auto& s = g.add_initializer(normal({c}, name + ".scale", seed, 0.2f, 1.f));
  auto& b = g.add_initializer(normal({c}, name + ".bias", seed + 1, 0.1f));
  auto& m = g.add_initializer(normal({c}, name + ".mean", seed + 2, 0.1f));
  quench::tensor var = normal({c}, name + ".var", seed + 3, 0.1f, 1.f);
  for (auto& v : var.view<float>()) v = std::fabs(v);
  auto& vv = g.add_initializer(std::move(var));
  return *g.add_node("BatchNormalization", {&x, &s, &b, &m, &vv}, {name + "_out"}, name).output(0);
}

/// x [N,16,8,8] -> Conv c1 (32, bias) -> BN -> Relu = r1 -> depthwise Conv (bias) -> Clip(0, 6) -> Conv c2
/// (1x1) -> BN -> Add(., r1) -> Relu -> GlobalAveragePool -> Flatten -> MatMul mm (W [32, 64]) -> Add bias
/// -> Relu -> Gemm fc (W [16, 64], transB) -> y [N, 16]
inline quench::model coupled_net(std::int64_t opset = 13) {
  using quench::dim;
  quench::model m;
  m.set_opset("", opset);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{{}, "N"}, dim{16, {}}, dim{8, {}}, dim{8, {}}});
  auto& w1 = g.add_initializer(normal({32, 16, 3, 3}, "c1.weight", 1, 0.15f));
  auto& b1 = g.add_initializer(normal({32}, "c1.bias", 2, 0.1f));
  auto& c1 = g.add_node("Conv", {&x, &w1, &b1}, {"c1_out"}, "c1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = *g.add_node("Relu", {&batch_norm(g, *c1.output(0), 32, "bn1", 10)}, {"r1"}, "relu1").output(0);
  auto& wd = g.add_initializer(normal({32, 1, 3, 3}, "dw.weight", 3, 0.4f));
  auto& bd = g.add_initializer(normal({32}, "dw.bias", 4, 0.1f));
  auto& dw = g.add_node("Conv", {&r1, &wd, &bd}, {"dw_out"}, "dw");
  dw.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  dw.set_attribute(quench::attribute::make_int("group", 32));
  auto& lo = g.add_initializer(quench::tensor::from<float>({}, {0.f}, "clip.min"));
  auto& hi = g.add_initializer(quench::tensor::from<float>({}, {6.f}, "clip.max"));
  auto& cl = *g.add_node("Clip", {dw.output(0), &lo, &hi}, {"clip_out"}, "clip").output(0);
  auto& w2 = g.add_initializer(normal({32, 32, 1, 1}, "c2.weight", 5, 0.2f));
  auto& c2 = g.add_node("Conv", {&cl, &w2}, {"c2_out"}, "c2");
  auto& add = g.add_node("Add", {&batch_norm(g, *c2.output(0), 32, "bn2", 20), &r1}, {"add_out"}, "add");
  auto& r2 = *g.add_node("Relu", {add.output(0)}, {"r2"}, "relu2").output(0);
  auto& gap = *g.add_node("GlobalAveragePool", {&r2}, {"gap_out"}, "gap").output(0);
  auto& flat = *g.add_node("Flatten", {&gap}, {"flat_out"}, "flatten").output(0);
  auto& w3 = g.add_initializer(normal({32, 64}, "mm.weight", 6, 0.2f));
  auto& b3 = g.add_initializer(normal({64}, "mm.bias", 7, 0.1f));
  auto& mm = *g.add_node("MatMul", {&flat, &w3}, {"mm_out"}, "mm").output(0);
  auto& ad = *g.add_node("Add", {&b3, &mm}, {"mm_bias_out"}, "mm_bias").output(0);  // bias first, as torch exports it
  auto& rr = *g.add_node("Relu", {&ad}, {"r3"}, "relu3").output(0);
  auto& w4 = g.add_initializer(normal({16, 64}, "fc.weight", 8, 0.2f));
  auto& b4 = g.add_initializer(normal({16}, "fc.bias", 9, 0.1f));
  auto& fc = g.add_node("Gemm", {&rr, &w4, &b4}, {"y"}, "fc");
  fc.set_attribute(quench::attribute::make_int("transB", 1));
  g.add_output(*fc.output(0));
  return m;
}

inline quench::tensor run(const quench::model& m, const quench::tensor& x) {
  quench::runtime::executor ex(m);
  auto out = ex.run({{"x", &x}});
  return std::move(out[0]);
}

inline double max_abs_diff(const quench::tensor& a, const quench::tensor& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a.view<float>()[i]) - b.view<float>()[i]));
  return d;
}

}  // namespace sparsity_test
