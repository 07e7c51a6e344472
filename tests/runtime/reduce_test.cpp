// Reductions, ArgMax/ArgMin, TopK and the softmax family (quench/runtime/ops/reduce.hpp):
// hand-checked cases through the executor and the errors they raise.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quench/runtime/executor.hpp"
#include "run_node.hpp"
#include "quench/runtime/ops/reduce.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::dtype;
using quench::tensor;

using quench_test::values;

namespace {

std::vector<tensor> run_op(const std::string& op, std::int64_t opset, const std::vector<const tensor*>& inputs,
                           std::size_t n_out = 1, const std::function<void(quench::node&)>& attrs = {}) {
  return quench_test::run_node(op, opset, inputs, n_out, attrs);
}

std::function<void(quench::node&)> axes_attr(std::vector<std::int64_t> axes, std::int64_t keepdims = 1) {
  return [axes, keepdims](quench::node& n) {
    n.set_attribute(attribute::make_ints("axes", axes));
    n.set_attribute(attribute::make_int("keepdims", keepdims));
  };
}

}  // namespace

TEST_CASE("every reduction on [[1, 2], [3, 4]] along axis 1") {
  const tensor x = tensor::from<float>({2, 2}, {1.f, 2.f, 3.f, 4.f});
  auto reduce = [&](const char* op) { return values<float>(run_op(op, 13, {&x}, 1, axes_attr({1}))[0]); };
  CHECK(reduce("ReduceMean") == std::vector<float>{1.5f, 3.5f});
  CHECK(reduce("ReduceMax") == std::vector<float>{2.f, 4.f});
  CHECK(reduce("ReduceMin") == std::vector<float>{1.f, 3.f});
  CHECK(reduce("ReduceProd") == std::vector<float>{2.f, 12.f});
  CHECK(reduce("ReduceL1") == std::vector<float>{3.f, 7.f});
  CHECK(reduce("ReduceL2") == std::vector<float>{std::sqrt(5.f), 5.f});
  CHECK(reduce("ReduceSumSquare") == std::vector<float>{5.f, 25.f});
  const auto ls = reduce("ReduceLogSum");
  CHECK(ls[0] == doctest::Approx(std::log(3.0)));
  CHECK(ls[1] == doctest::Approx(std::log(7.0)));
  const auto lse = reduce("ReduceLogSumExp");
  CHECK(lse[0] == doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0))));
  CHECK(lse[1] == doctest::Approx(std::log(std::exp(3.0) + std::exp(4.0))));
  CHECK(values<float>(run_op("ReduceSum", 11, {&x}, 1, axes_attr({1}))[0]) == std::vector<float>{3.f, 7.f});
}

TEST_CASE(
    "axes: attribute before opset 13/18, input after; keepdims; noop_with_empty_axes; all axes by default") {
  const tensor x = tensor::from<float>({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  const tensor ax = tensor::from<std::int64_t>({1}, {0});
  auto y = run_op("ReduceSum", 13, {&x, &ax});
  CHECK(y[0].shape() == quench::shape{1, 3});
  CHECK(values<float>(y[0]) == std::vector<float>{5.f, 7.f, 9.f});
  y = run_op("ReduceSum", 13, {&x, &ax}, 1,
             [](quench::node& n) { n.set_attribute(attribute::make_int("keepdims", 0)); });
  CHECK(y[0].shape() == quench::shape{3});
  y = run_op("ReduceSum", 13, {&x});
  CHECK(y[0].shape() == quench::shape{1, 1});
  CHECK(values<float>(y[0]) == std::vector<float>{21.f});
  const tensor none(dtype::int64, {0});
  y = run_op("ReduceSum", 13, {&x, &none}, 1,
             [](quench::node& n) { n.set_attribute(attribute::make_int("noop_with_empty_axes", 1)); });
  CHECK(y[0].shape() == x.shape());
  y = run_op("ReduceMean", 18, {&x, &ax}, 1,
             [](quench::node& n) { n.set_attribute(attribute::make_int("keepdims", 0)); });
  CHECK(values<float>(y[0]) == std::vector<float>{2.5f, 3.5f, 4.5f});
  y = run_op("ReduceMax", 17, {&x}, 1, axes_attr({-1}, 0));
  CHECK(values<float>(y[0]) == std::vector<float>{3.f, 6.f});

  const tensor xi = tensor::from<std::int32_t>({3}, {7, 8, 10});
  CHECK(values<std::int32_t>(run_op("ReduceMean", 13, {&xi})[0]) == std::vector<std::int32_t>{8});

  CHECK_THROWS_WITH(run_op("ReduceSum", 11, {&x}, 1, axes_attr({1, -1})),
                    doctest::Contains("node 'n' (ReduceSum): axis -1 is listed twice"));
  CHECK_THROWS_WITH(run_op("ReduceSum", 11, {&x}, 1, axes_attr({2})), doctest::Contains("axis 2 is outside"));
  CHECK_THROWS_WITH(run_op("ReduceSum", 13, {&x}, 1, axes_attr({1})),
                    doctest::Contains("takes axes as input 1 from opset 13"));
}

TEST_CASE("reductions over an empty axis give the identity of the operation") {
  const tensor x(dtype::float32, {2, 0});
  auto reduce = [&](const char* op) { return values<float>(run_op(op, 11, {&x}, 1, axes_attr({1}))[0]); };
  CHECK(reduce("ReduceSum") == std::vector<float>{0.f, 0.f});
  CHECK(reduce("ReduceProd") == std::vector<float>{1.f, 1.f});
  CHECK(reduce("ReduceMax")[0] == -std::numeric_limits<float>::infinity());
  CHECK(reduce("ReduceMin")[0] == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(reduce("ReduceMean")[0]));
  CHECK(reduce("ReduceLogSumExp")[0] == -std::numeric_limits<float>::infinity());
}

TEST_CASE("ArgMax and ArgMin: keepdims, negative axis, first or last of equal values") {
  const tensor x = tensor::from<float>({2, 3}, {1.f, 5.f, 5.f, 2.f, 0.f, 0.f});
  auto arg = [&](const char* op, std::int64_t axis, std::int64_t keep, std::int64_t last) {
    auto out = run_op(op, 13, {&x}, 1, [=](quench::node& n) {
      n.set_attribute(attribute::make_int("axis", axis));
      n.set_attribute(attribute::make_int("keepdims", keep));
      n.set_attribute(attribute::make_int("select_last_index", last));
    });
    return std::move(out[0]);
  };
  CHECK(values<std::int64_t>(arg("ArgMax", 1, 1, 0)) == std::vector<std::int64_t>{1, 0});
  CHECK(arg("ArgMax", 1, 1, 0).shape() == quench::shape{2, 1});
  CHECK(values<std::int64_t>(arg("ArgMax", -1, 0, 1)) == std::vector<std::int64_t>{2, 0});
  CHECK(values<std::int64_t>(arg("ArgMin", 1, 0, 0)) == std::vector<std::int64_t>{0, 1});
  CHECK(values<std::int64_t>(arg("ArgMin", 1, 0, 1)) == std::vector<std::int64_t>{0, 2});
  CHECK(values<std::int64_t>(arg("ArgMax", 0, 0, 0)) == std::vector<std::int64_t>{1, 0, 0});
}

TEST_CASE("TopK: k as attribute or input, largest or smallest, equal values keep the lower index") {
  const tensor x = tensor::from<float>({1, 5}, {3.f, 1.f, 3.f, 2.f, 1.f});
  const tensor k = tensor::from<std::int64_t>({1}, {3});
  auto y = run_op("TopK", 11, {&x, &k}, 2);
  CHECK(values<float>(y[0]) == std::vector<float>{3.f, 3.f, 2.f});
  CHECK(values<std::int64_t>(y[1]) == std::vector<std::int64_t>{0, 2, 3});
  y = run_op("TopK", 11, {&x, &k}, 2,
             [](quench::node& n) { n.set_attribute(attribute::make_int("largest", 0)); });
  CHECK(values<float>(y[0]) == std::vector<float>{1.f, 1.f, 2.f});
  CHECK(values<std::int64_t>(y[1]) == std::vector<std::int64_t>{1, 4, 3});
  y = run_op("TopK", 9, {&x}, 2, [](quench::node& n) {
    n.set_attribute(attribute::make_int("k", 1));
    n.set_attribute(attribute::make_int("axis", 0));
  });
  CHECK(y[0].shape() == quench::shape{1, 5});
  const tensor big = tensor::from<std::int64_t>({1}, {6});
  CHECK_THROWS_WITH(run_op("TopK", 11, {&x, &big}, 2), doctest::Contains("k = 6 is outside [0, 5]"));
}

TEST_CASE("Softmax, LogSoftmax and Hardmax: coerced 2-D before opset 13, one axis after") {
  const tensor x = tensor::from<float>({1, 2, 2}, {0.f, 1.f, 2.f, 3.f});
  // Opset 11, axis 1: one softmax over all four values.
  const auto old = values<float>(run_op("Softmax", 11, {&x})[0]);
  const double z = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(old[0] == doctest::Approx(1 / z));
  CHECK(old[3] == doctest::Approx(std::exp(3.0) / z));
  // Opset 13, axis 1: softmax over pairs (0, 2) and (1, 3).
  const auto now = values<float>(run_op(
      "Softmax", 13, {&x}, 1, [](quench::node& n) { n.set_attribute(attribute::make_int("axis", 1)); })[0]);
  CHECK(now[0] == doctest::Approx(1 / (1 + std::exp(2.0))));
  CHECK(now[0] + now[2] == doctest::Approx(1.0));
  // Default axis -1: pairs (0, 1) and (2, 3).
  const auto last = values<float>(run_op("LogSoftmax", 13, {&x})[0]);
  CHECK(last[1] == doctest::Approx(1 - std::log(1 + std::exp(1.0))));
  CHECK(last[3] == doctest::Approx(last[1]));
  CHECK(values<float>(run_op("Hardmax", 13, {&x})[0]) == std::vector<float>{0.f, 1.f, 0.f, 1.f});
  CHECK(values<float>(run_op("Hardmax", 11, {&x})[0]) == std::vector<float>{0.f, 0.f, 0.f, 1.f});

  const tensor xi = tensor::from<std::int32_t>({2}, {1, 2});
  CHECK_THROWS_WITH(run_op("Softmax", 13, {&xi}), doctest::Contains("element type int32"));
}

TEST_CASE("softmax's vectorizable exp stays within 2 ulp of exp and keeps the special values") {
  namespace ro = quench::runtime::detail::reduce_ops;
  double worst = 0;
  for (float x = -87.f; x < 88.f; x += 0.000917f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(static_cast<double>(ro::vector_exp(x)) - want) / want);
  }
  CHECK(worst < 2 * 5.97e-8);  // 2 ulp of float
  CHECK(ro::vector_exp(0.f) == 1.f);
  CHECK(ro::vector_exp(-std::numeric_limits<float>::infinity()) == 0.f);
  CHECK(ro::vector_exp(-200.f) == 0.f);
  CHECK(ro::vector_exp(100.f) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(ro::vector_exp(std::numeric_limits<float>::quiet_NaN())));

  // A masked attention row: -inf scores get exactly 0, the rest share 1.
  const float inf = std::numeric_limits<float>::infinity();
  const tensor x = tensor::from<float>({1, 5}, {0.5f, -inf, 1.5f, -inf, 0.5f});
  const auto y = values<float>(run_op("Softmax", 13, {&x})[0]);
  CHECK(y[1] == 0.f);
  CHECK(y[3] == 0.f);
  CHECK(y[0] + y[2] + y[4] == doctest::Approx(1.0));
  CHECK(y[2] == doctest::Approx(std::exp(1.0) / (2 + std::exp(1.0))));
}
