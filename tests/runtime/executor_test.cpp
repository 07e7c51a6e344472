#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace rt = quench::runtime;
using quench::dim;

namespace {
/// y = Relu(x * w + b) with a symbolic batch.
quench::model tiny_model() {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{{}, "N"}, dim{3, {}}});
  auto& w = g.add_initializer(quench::tensor::from<float>({3}, {1.f, -2.f, 0.5f}, "w"));
  auto& b = g.add_initializer(quench::tensor::from<float>({1}, {0.25f}, "b"));
  auto& mul = g.add_node("Mul", {&x, &w}, {"xw"});
  auto& add = g.add_node("Add", {mul.output(0), &b}, {"xwb"});
  auto& relu = g.add_node("Relu", {add.output(0)}, {"y"});
  g.add_output(*relu.output(0));
  return m;
}
}  // namespace

TEST_CASE("executor runs a graph, observes every tensor and accepts any batch") {
  const auto m = tiny_model();
  rt::executor ex(m);
  CHECK(ex.required_inputs() == std::vector<std::string>{"x"});
  for (std::int64_t batch : {1, 4}) {
    quench::tensor x(quench::dtype::float32, {batch, 3});
    auto xv = x.view<float>();
    for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i) - 2.f;
    std::vector<std::string> seen;
    auto out = ex.run({{"x", &x}}, [&](const std::string& name, const quench::tensor& t) {
      seen.push_back(name);
      CHECK(t.shape()[0] == batch);
    });
    CHECK(seen == std::vector<std::string>{"x", "xw", "xwb", "y"});
    REQUIRE(out.size() == 1);
    CHECK(out[0].name() == "y");
    const auto y = out[0].view<float>();
    for (std::size_t i = 0; i < y.size(); ++i) {
      const float w[3] = {1.f, -2.f, 0.5f};
      const float want = std::max(0.f, xv[i] * w[i % 3] + 0.25f);
      CHECK(y[i] == want);
    }
  }
}

TEST_CASE("run_lockstep runs every batch through a node before the next, and later nodes read edited tensors") {
  const auto m = tiny_model();
  rt::executor ex(m);
  std::vector<quench::tensor> xs;
  for (std::int64_t batch : {2, 1, 3}) {
    quench::tensor x(quench::dtype::float32, {batch, 3});
    auto xv = x.view<float>();
    for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i) - static_cast<float>(batch);
    xs.push_back(std::move(x));
  }
  std::vector<std::unordered_map<std::string, const quench::tensor*>> feeds;
  for (const auto& x : xs) feeds.push_back({{"x", &x}});
  // Plain: the same outputs as one run per batch.
  const auto plain = ex.run_lockstep(feeds, {});
  REQUIRE(plain.size() == 3);
  for (std::size_t b = 0; b < 3; ++b) {
    const auto want = ex.run({{"x", &xs[b]}});
    REQUIRE(plain[b].size() == 1);
    CHECK(plain[b][0].shape() == want[0].shape());
    CHECK(std::equal(want[0].view<float>().begin(), want[0].view<float>().end(), plain[b][0].view<float>().begin()));
  }
  // Edited: the hook sees all three batches of each tensor in node order; adding 10 to "xw" moves y.
  std::vector<std::string> seen;
  const auto edited = ex.run_lockstep(feeds, [&](const std::string& name, const std::vector<quench::tensor*>& ts) {
    seen.push_back(name);
    REQUIRE(ts.size() == 3);
    CHECK(ts[0]->shape()[0] == 2);
    CHECK(ts[2]->shape()[0] == 3);
    if (name == "xw")
      for (quench::tensor* t : ts)
        for (float& v : t->view<float>()) v += 10.f;
  });
  CHECK(seen == std::vector<std::string>{"xw", "xwb", "y"});
  for (std::size_t b = 0; b < 3; ++b) {
    const auto y = edited[b][0].view<float>();
    const auto x = xs[b].view<float>();
    const float w[3] = {1.f, -2.f, 0.5f};
    for (std::size_t i = 0; i < y.size(); ++i) CHECK(y[i] == std::max(0.f, x[i] * w[i % 3] + 10.f + 0.25f));
  }
}

TEST_CASE("bad inputs and unsupported ops are errors naming them") {
  const auto m = tiny_model();
  rt::executor ex(m);
  quench::tensor wrong_rank(quench::dtype::float32, {3});
  CHECK_THROWS_WITH(ex.run({{"x", &wrong_rank}}), doctest::Contains("input 'x': expected rank 2"));
  quench::tensor wrong_dim(quench::dtype::float32, {2, 4});
  CHECK_THROWS_WITH(ex.run({{"x", &wrong_dim}}), doctest::Contains("dimension 1 = 3"));
  quench::tensor wrong_type(quench::dtype::int32, {2, 3});
  CHECK_THROWS_WITH(ex.run({{"x", &wrong_type}}), doctest::Contains("expected element type float"));
  CHECK_THROWS_WITH(ex.run({}), doctest::Contains("is required"));
  quench::tensor ok(quench::dtype::float32, {1, 3});
  CHECK_THROWS_WITH(ex.run({{"x", &ok}, {"nope", &ok}}), doctest::Contains("no graph input of that name"));

  quench::model bad;
  bad.set_opset("", 13);
  auto& g = bad.main_graph();
  auto& x = g.add_input("x", 1);
  auto& a = g.add_node("FancyOp", {&x}, {"a"}, "fancy");
  auto& b = g.add_node("OtherOp", {a.output(0)}, {"b"}, "other");
  g.add_output(*b.output(0));
  const auto problems = rt::check(bad);
  REQUIRE(problems.size() == 2);  // all of them, at once
  CHECK(problems[0].find("node 'fancy' (FancyOp)") != std::string::npos);
  CHECK_THROWS_WITH(rt::executor{bad}, doctest::Contains("2 node(s) cannot run"));
}

TEST_CASE("kernels reject element types they do not support before running") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 10);  // float16
  auto& s = g.add_node("Sigmoid", {&x}, {"y"}, "sig");
  g.add_output(*s.output(0));
  const auto problems = rt::check(m);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("element type float16") != std::string::npos);
}

TEST_CASE("kernels reuse an input in place only when nothing else can see it") {
  // a = Neg(x); b = Relu(a); c = Exp(a) reads a after Relu: Relu must not overwrite a.
  // r = Reshape(b) may share b's storage; d = Neg(r) runs while the graph output b is alive.
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{4, {}}});
  auto& shape = g.add_initializer(quench::tensor::from<std::int64_t>({2}, {2, 2}, "shape"));
  auto& a = g.add_node("Neg", {&x}, {"a"});
  auto& b = g.add_node("Relu", {a.output(0)}, {"b"});
  auto& c = g.add_node("Exp", {a.output(0)}, {"c"});
  auto& r = g.add_node("Reshape", {b.output(0), &shape}, {"r"});
  auto& d = g.add_node("Neg", {r.output(0)}, {"d"});
  auto& e = g.add_node("Add", {c.output(0), c.output(0)}, {"e"});  // one slot twice: not reusable
  g.add_output(*b.output(0));
  g.add_output(*d.output(0));
  g.add_output(*e.output(0));
  rt::executor ex(m);
  const auto x_in = quench::tensor::from<float>({4}, {1.f, -2.f, 3.f, -4.f});
  for (int run = 0; run < 3; ++run) {  // later runs take recycled storage
    auto out = ex.run({{"x", &x_in}});
    CHECK(x_in.view<float>()[1] == -2.f);
    const std::vector<float> want_b{0.f, 2.f, 0.f, 4.f}, want_d{0.f, -2.f, 0.f, -4.f};
    CHECK(std::vector<float>(out[0].view<float>().begin(), out[0].view<float>().end()) == want_b);
    CHECK(std::vector<float>(out[1].view<float>().begin(), out[1].view<float>().end()) == want_d);
    const auto ev = out[2].view<float>();
    const float xs[4] = {1.f, -2.f, 3.f, -4.f};
    for (std::size_t i = 0; i < 4; ++i) CHECK(ev[i] == doctest::Approx(2 * std::exp(-xs[i])));
  }
}
