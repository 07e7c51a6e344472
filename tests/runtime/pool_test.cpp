// MaxPool (Indices, storage_order), AveragePool (count_include_pad, ceil_mode), LpPool and the
// global pools: hand-checked cases and errors.
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
  std::map<std::string, std::vector<std::int64_t>> ints;
  std::map<std::string, std::int64_t> int_attrs;
  std::map<std::string, std::string> string_attrs;

  quench::model build(const tensor& x, std::size_t outputs) const {
    quench::model m;
    m.set_opset("", opset);
    auto& g = m.main_graph();
    auto& in = g.add_input("x", static_cast<std::int32_t>(x.dtype()));
    std::vector<std::string> outs;
    for (std::size_t i = 0; i < outputs; ++i) outs.push_back("out" + std::to_string(i));
    auto& n = g.add_node(op, {&in}, outs, "n0");
    for (const auto& [k, v] : ints) n.set_attribute(attribute::make_ints(k, v));
    for (const auto& [k, v] : int_attrs) n.set_attribute(attribute::make_int(k, v));
    for (const auto& [k, v] : string_attrs) n.set_attribute(attribute::make_string(k, v));
    for (std::size_t i = 0; i < outputs; ++i) g.add_output(*n.output(i));
    return m;
  }
  std::vector<tensor> run(const tensor& x, std::size_t outputs = 1) const {
    const quench::model m = build(x, outputs);
    rt::executor ex(m);
    return ex.run({{"x", &x}});
  }
};

template <class T>
std::vector<T> values(const tensor& t) {
  return std::vector<T>(t.view<T>().begin(), t.view<T>().end());
}

/// 1 x 1 x 4 x 4 holding 1..16.
tensor ramp4() {
  tensor x(quench::dtype::float32, {1, 1, 4, 4});
  float v = 1;
  for (auto& e : x.view<float>()) e = v++;
  return x;
}

}  // namespace

TEST_CASE("MaxPool: values, Indices in both storage orders, pads and dilations") {
  const tensor x = ramp4();
  node_runner p{"MaxPool"};
  p.ints["kernel_shape"] = {2, 2};
  p.ints["strides"] = {2, 2};
  auto y = p.run(x, 2);
  CHECK(y[0].shape() == quench::shape{1, 1, 2, 2});
  CHECK(values<float>(y[0]) == std::vector<float>{6, 8, 14, 16});
  CHECK(values<std::int64_t>(y[1]) == std::vector<std::int64_t>{5, 7, 13, 15});
  p.int_attrs["storage_order"] = 1;  // column-major flat index: h + w * H
  y = p.run(x, 2);
  CHECK(values<std::int64_t>(y[1]) == std::vector<std::int64_t>{5, 13, 7, 15});

  node_runner padded{"MaxPool"};
  padded.ints["kernel_shape"] = {3, 3};
  padded.ints["pads"] = {1, 1, 1, 1};
  padded.ints["strides"] = {2, 2};
  y = padded.run(x);
  CHECK(values<float>(y[0]) == std::vector<float>{6, 8, 14, 16});  // padding never wins

  node_runner dilated{"MaxPool"};
  dilated.ints["kernel_shape"] = {2, 2};
  dilated.ints["dilations"] = {2, 2};
  y = dilated.run(x);
  CHECK(values<float>(y[0]) == std::vector<float>{11, 12, 15, 16});

  // Ties: the first maximum in scan order wins; int8 and uint8 work.
  const tensor u = tensor::from<std::uint8_t>({1, 1, 1, 4}, {3, 7, 7, 1});
  node_runner q{"MaxPool", 12};
  q.ints["kernel_shape"] = {1, 4};
  y = q.run(u, 2);
  CHECK(values<std::uint8_t>(y[0]) == std::vector<std::uint8_t>{7});
  CHECK(values<std::int64_t>(y[1]) == std::vector<std::int64_t>{1});
}

TEST_CASE("AveragePool: count_include_pad, ceil_mode and 1-D / 3-D") {
  const tensor x = tensor::from<float>({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  node_runner p{"AveragePool"};
  p.ints["kernel_shape"] = {3, 3};
  p.ints["pads"] = {1, 1, 1, 1};
  auto y = p.run(x);
  REQUIRE(y[0].shape() == quench::shape{1, 1, 3, 3});
  CHECK(y[0].view<float>()[0] == doctest::Approx((1 + 2 + 4 + 5) / 4.0));
  CHECK(y[0].view<float>()[4] == doctest::Approx(5.0));
  p.int_attrs["count_include_pad"] = 1;
  y = p.run(x);
  CHECK(y[0].view<float>()[0] == doctest::Approx((1 + 2 + 4 + 5) / 9.0));

  // ceil_mode: 4 -> ceil((4 - 3) / 2) + 1 = 2; the last window is clipped at the border.
  const tensor r = ramp4();
  node_runner c{"AveragePool"};
  c.ints["kernel_shape"] = {3, 3};
  c.ints["strides"] = {2, 2};
  c.int_attrs["ceil_mode"] = 1;
  y = c.run(r);
  REQUIRE(y[0].shape() == quench::shape{1, 1, 2, 2});
  CHECK(values<float>(y[0]) == std::vector<float>{6, 7.5f, 12, 13.5f});
  // A window that would start in the end padding is dropped (PyTorch, ONNX Runtime): with
  // input 5, kernel 2, stride 2, pads 1 + 1, ceil gives 4 windows, the last starting at 6 >= 5 + 1.
  const tensor five(quench::dtype::float32, {1, 1, 5});
  node_runner d{"AveragePool"};
  d.ints["kernel_shape"] = {2};
  d.ints["strides"] = {2};
  d.ints["pads"] = {1, 1};
  d.int_attrs["ceil_mode"] = 1;
  CHECK(d.run(five)[0].shape() == quench::shape{1, 1, 3});

  tensor cube(quench::dtype::float32, {1, 2, 2, 2, 2});
  float v = 0;
  for (auto& e : cube.view<float>()) e = v++;
  node_runner three{"AveragePool"};
  three.ints["kernel_shape"] = {2, 2, 2};
  y = three.run(cube);
  CHECK(values<float>(y[0]) == std::vector<float>{3.5f, 11.5f});

  node_runner same{"AveragePool"};
  same.ints["kernel_shape"] = {2, 2};
  same.string_attrs["auto_pad"] = "SAME_UPPER";
  y = same.run(x);
  REQUIRE(y[0].shape() == quench::shape{1, 1, 3, 3});
  CHECK(y[0].view<float>()[8] == 9.f);  // only x[2][2] inside, padding not counted
  same.string_attrs["auto_pad"] = "SAME_LOWER";
  y = same.run(x);
  CHECK(y[0].view<float>()[0] == 1.f);
}

TEST_CASE("LpPool and the global pools") {
  const tensor x = tensor::from<float>({1, 2, 1, 2}, {3, 4, -1, 5});
  node_runner lp{"LpPool"};
  lp.ints["kernel_shape"] = {1, 2};
  auto y = lp.run(x);
  CHECK(y[0].view<float>()[0] == doctest::Approx(5.0));
  CHECK(y[0].view<float>()[1] == doctest::Approx(std::sqrt(26.0)));
  lp.int_attrs["p"] = 1;
  CHECK(lp.run(x)[0].view<float>()[1] == doctest::Approx(6.0));

  y = node_runner{"GlobalAveragePool"}.run(x);
  CHECK(y[0].shape() == quench::shape{1, 2, 1, 1});
  CHECK(values<float>(y[0]) == std::vector<float>{3.5f, 2.f});
  y = node_runner{"GlobalMaxPool"}.run(x);
  CHECK(values<float>(y[0]) == std::vector<float>{4.f, 5.f});
  y = node_runner{"GlobalLpPool"}.run(x);
  CHECK(y[0].view<float>()[0] == doctest::Approx(5.0));
}

TEST_CASE("pooling errors name the node") {
  const tensor x = ramp4();
  node_runner missing{"MaxPool"};
  auto problems = rt::check(missing.build(x, 1));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("node 'n0' (MaxPool)") != std::string::npos);
  CHECK(problems[0].find("kernel_shape attribute is required") != std::string::npos);
  node_runner bad{"AveragePool"};
  bad.ints["kernel_shape"] = {2, 2};
  bad.string_attrs["auto_pad"] = "same";
  problems = rt::check(bad.build(x, 1));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("auto_pad='same'") != std::string::npos);
  node_runner big{"MaxPool"};
  big.ints["kernel_shape"] = {5, 5};
  CHECK_THROWS_WITH(big.run(x), doctest::Contains("smaller than the dilated kernel"));
  node_runner rank{"MaxPool"};
  rank.ints["kernel_shape"] = {2};
  CHECK_THROWS_WITH(rank.run(x), doctest::Contains("kernel_shape [2] does not have 2 spatial values"));
  const tensor flat(quench::dtype::float32, {4, 4});
  CHECK_THROWS_WITH(node_runner{"GlobalAveragePool"}.run(flat), doctest::Contains("rank >= 3"));
  node_runner order{"MaxPool"};
  order.ints["kernel_shape"] = {2, 2};
  order.int_attrs["storage_order"] = 2;
  CHECK(rt::check(order.build(x, 1)).size() == 1);
}
