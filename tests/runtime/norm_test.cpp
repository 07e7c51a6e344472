// BatchNormalization, InstanceNormalization, LayerNormalization and LRN: hand-checked cases and
// the errors for what the executor does not compute (training mode).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::tensor;

namespace {

/// One node in a model of its own, run by the executor.
struct node_runner {
  explicit node_runner(std::string op_type, std::int64_t version = 17) : op(std::move(op_type)), opset(version) {}

  std::string op;
  std::int64_t opset;
  std::map<std::string, std::int64_t> int_attrs;
  std::map<std::string, float> float_attrs;

  quench::model build(const std::vector<const tensor*>& inputs, const std::vector<std::string>& outputs) const {
    quench::model m;
    m.set_opset("", opset);
    auto& g = m.main_graph();
    std::vector<quench::value*> ins;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      ins.push_back(inputs[i] ? &g.add_input("in" + std::to_string(i), static_cast<std::int32_t>(inputs[i]->dtype())) : nullptr);
    auto& n = g.add_node(op, ins, outputs, "n0");
    for (const auto& [k, v] : int_attrs) n.set_attribute(attribute::make_int(k, v));
    for (const auto& [k, v] : float_attrs) n.set_attribute(attribute::make_float(k, v));
    for (quench::value* v : n.outputs())
      if (v) g.add_output(*v);
    return m;
  }
  std::vector<tensor> run(const std::vector<const tensor*>& inputs, const std::vector<std::string>& outputs = {"y"}) const {
    const quench::model m = build(inputs, outputs);
    rt::executor ex(m);
    std::unordered_map<std::string, const tensor*> feed;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i]) feed["in" + std::to_string(i)] = inputs[i];
    return ex.run(feed);
  }
};

}  // namespace

TEST_CASE("BatchNormalization: per channel, per activation (spatial=0) and mixed parameter types") {
  const tensor x = tensor::from<float>({1, 2, 1, 2}, {1, 2, 3, 4});
  const tensor scale = tensor::from<float>({2}, {2, 1});
  const tensor bias = tensor::from<float>({2}, {0.5f, -1});
  const tensor mean = tensor::from<float>({2}, {1, 3});
  const tensor var = tensor::from<float>({2}, {4, 1});
  node_runner bn{"BatchNormalization", 15};
  bn.float_attrs["epsilon"] = 0.f;
  auto y = bn.run({&x, &scale, &bias, &mean, &var});
  const auto v = y[0].view<float>();
  CHECK(v[0] == doctest::Approx(0.5));        // (1 - 1) / 2 * 2 + 0.5
  CHECK(v[1] == doctest::Approx(1.5));        // (2 - 1) / 2 * 2 + 0.5
  CHECK(v[2] == doctest::Approx(-1.0));       // (3 - 3) / 1 * 1 - 1
  CHECK(v[3] == doctest::Approx(0.0));

  // Opset 15: scale/bias and mean/var may have their own float types.
  const tensor mean64 = tensor::from<double>({2}, {1, 3});
  const tensor var64 = tensor::from<double>({2}, {4, 1});
  y = bn.run({&x, &scale, &bias, &mean64, &var64});
  CHECK(y[0].view<float>()[1] == doctest::Approx(1.5));

  // Before opset 9, spatial=0 gives one parameter per activation (C x H x W).
  node_runner old{"BatchNormalization", 7};
  old.int_attrs["spatial"] = 0;
  old.float_attrs["epsilon"] = 0.f;
  const tensor s4 = tensor::from<float>({2, 1, 2}, {1, 2, 3, 4});
  const tensor z4 = tensor::from<float>({2, 1, 2}, {0, 0, 0, 0});
  const tensor o4 = tensor::from<float>({2, 1, 2}, {1, 1, 1, 1});
  y = old.run({&x, &s4, &z4, &z4, &o4});
  CHECK(std::vector<float>(y[0].view<float>().begin(), y[0].view<float>().end()) == std::vector<float>{1, 4, 9, 16});
  CHECK_THROWS_WITH(bn.run({&x, &s4, &bias, &mean, &var}), doctest::Contains("scale: expected 2 values (one per channel)"));
}

TEST_CASE("BatchNormalization in training mode is reported before running") {
  const tensor x(quench::dtype::float32, {1, 2, 2});
  const tensor p(quench::dtype::float32, {2});
  node_runner train{"BatchNormalization", 15};
  train.int_attrs["training_mode"] = 1;
  auto problems = rt::check(train.build({&x, &p, &p, &p, &p}, {"y"}));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("node 'n0' (BatchNormalization)") != std::string::npos);
  CHECK(problems[0].find("training_mode=1 is not supported") != std::string::npos);
  node_runner outputs{"BatchNormalization", 9};
  problems = rt::check(outputs.build({&x, &p, &p, &p, &p}, {"y", "running_mean"}));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("training-mode output") != std::string::npos);
  // An omitted optional output is fine.
  CHECK(rt::check(outputs.build({&x, &p, &p, &p, &p}, {"y", ""})).empty());
}

TEST_CASE("InstanceNormalization") {
  const tensor x = tensor::from<float>({1, 2, 4}, {1, 2, 3, 4, 10, 10, 10, 10});
  const tensor scale = tensor::from<float>({2}, {2, 1});
  const tensor bias = tensor::from<float>({2}, {1, 7});
  node_runner in{"InstanceNormalization", 6};
  in.float_attrs["epsilon"] = 0.f;
  const auto y = in.run({&x, &scale, &bias});
  // Channel 0: mean 2.5, variance 1.25.
  const double inv = 1 / std::sqrt(1.25);
  CHECK(y[0].view<float>()[0] == doctest::Approx(2 * (1 - 2.5) * inv + 1));
  CHECK(y[0].view<float>()[3] == doctest::Approx(2 * (4 - 2.5) * inv + 1));
  // Channel 1 is constant: with the default epsilon its output is the bias.
  node_runner def{"InstanceNormalization", 6};
  CHECK(def.run({&x, &scale, &bias})[0].view<float>()[5] == doctest::Approx(7.0));
  const tensor short_scale = tensor::from<float>({1}, {1});
  CHECK_THROWS_WITH(def.run({&x, &short_scale, &bias}), doctest::Contains("expected 2 values each"));
}

TEST_CASE("LayerNormalization: axis, broadcast Scale, Mean and InvStdDev outputs") {
  const tensor x = tensor::from<float>({2, 2, 2}, {1, 2, 3, 4, 5, 5, 5, 9});
  const tensor scale = tensor::from<float>({2}, {1, 2});
  const tensor bias = tensor::from<float>({1}, {0.5f});
  node_runner ln{"LayerNormalization", 17};
  ln.int_attrs["axis"] = -2;  // normalize over the last two axes, Scale broadcast along them
  ln.float_attrs["epsilon"] = 0.f;
  const auto y = ln.run({&x, &scale, &bias}, {"y", "mean", "inv_std"});
  REQUIRE(y.size() == 3);
  CHECK(y[1].shape() == quench::shape{2, 1, 1});
  CHECK(y[1].view<float>()[0] == doctest::Approx(2.5));
  CHECK(y[1].view<float>()[1] == doctest::Approx(6.0));
  const double inv0 = 1 / std::sqrt(1.25), inv1 = 1 / std::sqrt(3.0);
  CHECK(y[2].view<float>()[0] == doctest::Approx(inv0));
  CHECK(y[2].view<float>()[1] == doctest::Approx(inv1));
  CHECK(y[0].view<float>()[1] == doctest::Approx((2 - 2.5) * inv0 * 2 + 0.5));
  CHECK(y[0].view<float>()[7] == doctest::Approx((9 - 6) * inv1 * 2 + 0.5));

  // Without B and the optional outputs; the default axis is -1.
  node_runner last{"LayerNormalization", 17};
  const tensor s1 = tensor::from<float>({2}, {1, 1});
  const auto z = last.run({&x, &s1, nullptr});
  CHECK(z[0].view<float>()[0] == doctest::Approx(-1.0).epsilon(1e-4));
  const tensor wrong = tensor::from<float>({3}, {1, 1, 1});
  CHECK_THROWS_WITH(last.run({&x, &wrong, nullptr}), doctest::Contains("broadcastable to the normalized shape [2]"));
  node_runner stash{"LayerNormalization", 17};
  stash.int_attrs["stash_type"] = 11;
  CHECK(rt::check(stash.build({&x, &s1, nullptr}, {"y"})).size() == 1);
}

TEST_CASE("LRN") {
  const tensor x = tensor::from<float>({1, 3, 1, 1}, {1, 2, 3});
  node_runner lrn{"LRN", 13};
  lrn.int_attrs["size"] = 3;
  lrn.float_attrs["alpha"] = 3.f;
  lrn.float_attrs["beta"] = 1.f;
  lrn.float_attrs["bias"] = 1.f;
  const auto y = lrn.run({&x});
  // Channel 1 sees channels 0..2: 1 + 3 / 3 * (1 + 4 + 9) = 15.
  CHECK(y[0].view<float>()[1] == doctest::Approx(2.0 / 15));
  CHECK(y[0].view<float>()[0] == doctest::Approx(1.0 / 6));  // channels 0..1
  node_runner missing{"LRN", 13};
  CHECK(rt::check(missing.build({&x}, {"y"})).size() == 1);
}
