#pragma once
// Small float models for the pipeline tests, built through the graph API.

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/recover/observe_samples.hpp"

namespace quench_test {

/// Per-channel (axis 1) mean and variance of tensor `name` of `m` over all of `data`: what a
/// BatchNormalization reading it would have learned.
inline std::pair<std::vector<float>, std::vector<float>> channel_moments(const quench::model& m, quench::data::sample_source& data,
                                                                         const std::string& name) {
  std::vector<double> s1, s2;
  double count = 0;
  quench::recover::observe_samples(m, data, data.size(), 32, {}, [&](const std::string& n, const quench::tensor& t) {
    if (n != name) return;
    const auto x = t.view<float>();
    const std::size_t channels = static_cast<std::size_t>(t.shape()[1]), inner = t.shape().inner(1);
    s1.resize(channels, 0.0);
    s2.resize(channels, 0.0);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::size_t c = (i / inner) % channels;
      s1[c] += x[i];
      s2[c] += static_cast<double>(x[i]) * x[i];
    }
    count += static_cast<double>(x.size()) / static_cast<double>(channels);
  });
  std::vector<float> mean(s1.size()), var(s1.size());
  for (std::size_t c = 0; c < s1.size(); ++c) {
    mean[c] = static_cast<float>(s1[c] / count);
    var[c] = static_cast<float>(s2[c] / count - (s1[c] / count) * (s1[c] / count));
  }
  return {mean, var};
}

inline quench::tensor random_tensor(quench::shape s, const std::string& name, std::uint32_t seed, float spread = 1.f, float mean = 0.f) {
  quench::tensor t(quench::dtype::float32, std::move(s), name);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(mean, spread);
  for (auto& v : t.view<float>()) v = n(rng);
  return t;
}

/// x [N,3,8,8] -> Conv(W1,B1) -> Relu -> MaxPool 2x2 -> Conv(W2,B2, pad 1) -> Add(., pool) -> Relu
///   -> Flatten -> Gemm(W3 [10,64], B3, transB) -> Softmax -> y
inline quench::model residual_cnn(std::int64_t opset = 13) {
  quench::model m;
  m.set_opset("", opset);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  auto& w1 = g.add_initializer(random_tensor({4, 3, 3, 3}, "W1", 1, 0.4f));
  auto& b1 = g.add_initializer(random_tensor({4}, "B1", 2, 0.1f));
  auto& c1 = g.add_node("Conv", {&x, &w1, &b1}, {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("Relu", {c1.output(0)}, {"r1"}, "relu1");
  auto& p = g.add_node("MaxPool", {r1.output(0)}, {"p"}, "pool");
  p.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  p.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
  auto& w2 = g.add_initializer(random_tensor({4, 4, 3, 3}, "W2", 3, 0.3f));
  auto& b2 = g.add_initializer(random_tensor({4}, "B2", 4, 0.1f));
  auto& c2 = g.add_node("Conv", {p.output(0), &w2, &b2}, {"c2"}, "conv2");
  c2.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& add = g.add_node("Add", {c2.output(0), p.output(0)}, {"s"}, "add");
  auto& r2 = g.add_node("Relu", {add.output(0)}, {"r2"}, "relu2");
  auto& f = g.add_node("Flatten", {r2.output(0)}, {"f"}, "flatten");
  auto& w3 = g.add_initializer(random_tensor({10, 64}, "W3", 5, 0.2f));
  auto& b3 = g.add_initializer(random_tensor({10}, "B3", 6, 0.1f));
  auto& gemm = g.add_node("Gemm", {f.output(0), &w3, &b3}, {"logits"}, "gemm");
  gemm.set_attribute(quench::attribute::make_int("transB", 1));
  auto& sm = g.add_node("Softmax", {gemm.output(0)}, {"y"}, "softmax");
  sm.set_attribute(quench::attribute::make_int("axis", 1));
  g.add_output(*sm.output(0));
  return m;
}

/// `n` seeded normal samples for input "x" of residual_cnn.
inline quench::data::tensor_source residual_cnn_data(std::int64_t n, std::uint32_t seed = 11) {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", random_tensor({n, 3, 8, 8}, "x", seed));
  return quench::data::tensor_source(std::move(in));
}

// x -> conv1 -> c1 -> LeakyRelu(0.2) -> l1 -> Max(l1, -0.4) -> m1 -> MaxPool -> p -> conv2 -> c2
//   -> Min(c2, 3) -> y, as tf2onnx exports Keras' LeakyRelu + maximum; p is also read by a Relu
// whose output is a graph output.
inline quench::model saturating_chain() {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{1, {}}, quench::dim{2, {}}, quench::dim{6, {}}, quench::dim{6, {}}});
  auto& w1 = g.add_initializer(random_tensor({3, 2, 3, 3}, "W1", 1, 0.4f));
  auto& c1 = g.add_node("Conv", {&x, &w1}, {"c1"}, "conv1");
  auto& l1 = g.add_node("LeakyRelu", {c1.output(0)}, {"l1"}, "leaky");
  l1.set_attribute(quench::attribute::make_float("alpha", 0.2f));
  quench::tensor floor(quench::dtype::float32, {1}, "floor");
  floor.view<float>()[0] = -0.4f;
  auto& fl = g.add_initializer(std::move(floor));
  auto& m1 = g.add_node("Max", {&fl, l1.output(0)}, {"m1"}, "max");  // the constant first: either order
  auto& p = g.add_node("MaxPool", {m1.output(0)}, {"p"}, "pool");
  p.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  auto& w2 = g.add_initializer(random_tensor({2, 3, 1, 1}, "W2", 2, 0.4f));
  auto& c2 = g.add_node("Conv", {p.output(0), &w2}, {"c2"}, "conv2");
  quench::tensor ceiling(quench::dtype::float32, {}, "ceiling");
  ceiling.view<float>()[0] = 3.f;
  auto& ce = g.add_initializer(std::move(ceiling));
  auto& y = g.add_node("Min", {c2.output(0), &ce}, {"y"}, "min");
  auto& r = g.add_node("Relu", {p.output(0)}, {"r"}, "relu");
  g.add_output(*y.output(0));
  g.add_output(*r.output(0));
  return m;
}

}  // namespace quench_test
