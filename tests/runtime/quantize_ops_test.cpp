// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear as executor kernels
// (quench/runtime/ops/quantize_ops.hpp): each opset's signature, hand-computed values, and errors
// that name the node.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/runtime/executor.hpp"
#include "run_node.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::dtype;
using quench::tensor;

using quench_test::values;

namespace {

std::vector<tensor> run_op(const std::string& op, std::int64_t opset, const std::vector<const tensor*>& inputs,
                           std::size_t n_out = 1, const std::function<void(quench::node&)>& attrs = {}) {
  return quench_test::run_node(op, opset, inputs, n_out, attrs, "q");
}

std::function<void(quench::node&)> ints(std::vector<std::pair<std::string, std::int64_t>> kv) {
  return [kv](quench::node& n) {
    for (const auto& [k, v] : kv) n.set_attribute(attribute::make_int(k, v));
  };
}

}  // namespace

TEST_CASE(
    "QuantizeLinear: per tensor (10), per axis (13), blocked with output_dtype (21), float8 with saturate "
    "(19)") {
  const tensor x = tensor::from<float>({5}, {0.f, 1.f, 2.5f, -1.f, 300.f});
  const tensor s2 = tensor::from<float>({}, {2.f});
  const auto u8 = run_op("QuantizeLinear", 10, {&x, &s2});
  REQUIRE(u8[0].dtype() == dtype::uint8);                                            // no zero point: uint8
  CHECK(values<std::uint8_t>(u8[0]) == std::vector<std::uint8_t>{0, 0, 1, 0, 150});  // halves round to even

  const tensor x3 = tensor::from<float>({3}, {1.f, -1.f, 100.f});
  const tensor half = tensor::from<float>({}, {0.5f});
  const tensor zp = tensor::from<std::int8_t>({}, {-1});
  CHECK(values<std::int8_t>(run_op("QuantizeLinear", 10, {&x3, &half, &zp})[0]) ==
        std::vector<std::int8_t>{1, -3, 127});

  const tensor m = tensor::from<float>({2, 2}, {1.f, 2.f, 3.f, 4.f});
  const tensor scales = tensor::from<float>({2}, {1.f, 2.f});
  const tensor zps = tensor::from<std::uint8_t>({2}, {0, 10});
  CHECK(values<std::uint8_t>(run_op("QuantizeLinear", 13, {&m, &scales, &zps}, 1, ints({{"axis", 0}}))[0]) ==
        std::vector<std::uint8_t>{1, 2, 12, 12});

  const tensor row = tensor::from<float>({1, 4}, {1.f, 2.f, 3.f, 4.f});
  const tensor blocks = tensor::from<float>({1, 2}, {1.f, 2.f});
  const auto b = run_op("QuantizeLinear", 21, {&row, &blocks}, 1,
                        ints({{"axis", 1}, {"block_size", 2}, {"output_dtype", 22}}));
  REQUIRE(b[0].dtype() == dtype::int4);
  const auto* nib = reinterpret_cast<const std::uint8_t*>(b[0].bytes());
  CHECK(std::vector<int>{quench::get_int4(nib, 0), quench::get_int4(nib, 1), quench::get_int4(nib, 2),
                         quench::get_int4(nib, 3)} == std::vector<int>{1, 2, 2, 2});

  const tensor big = tensor::from<float>({1}, {1000.f});
  const tensor one = tensor::from<float>({}, {1.f});
  tensor f8zp(dtype::float8e4m3fn, {});
  CHECK(run_op("QuantizeLinear", 19, {&big, &one, &f8zp})[0].view<quench::float8e4m3fn>()[0].bits() == 0x7e);
  CHECK(run_op("QuantizeLinear", 19, {&big, &one, &f8zp}, 1, ints({{"saturate", 0}}))[0]
            .view<quench::float8e4m3fn>()[0]
            .bits() == 0x7f);
}

TEST_CASE("DequantizeLinear: per axis, int32, and the scale's type as output from opset 19") {
  const tensor q = tensor::from<std::uint8_t>({2, 2}, {1, 2, 12, 12});
  const tensor scales = tensor::from<float>({2}, {1.f, 2.f});
  const tensor zps = tensor::from<std::uint8_t>({2}, {0, 10});
  CHECK(values<float>(run_op("DequantizeLinear", 13, {&q, &scales, &zps}, 1, ints({{"axis", 0}}))[0]) ==
        std::vector<float>{1, 2, 4, 4});

  const tensor acc = tensor::from<std::int32_t>({2}, {4, -6});
  const tensor half = tensor::from<float>({}, {0.5f});
  CHECK(values<float>(run_op("DequantizeLinear", 10, {&acc, &half})[0]) == std::vector<float>{2.f, -3.f});

  const tensor i8 = tensor::from<std::int8_t>({1}, {2});
  tensor h(dtype::float16, {});
  h.view<quench::float16>()[0] = quench::float16(0.5f);
  const auto y = run_op("DequantizeLinear", 19, {&i8, &h});
  REQUIRE(y[0].dtype() == dtype::float16);
  CHECK(y[0].view<quench::float16>()[0].bits() == 0x3c00);
  CHECK_THROWS_WITH(run_op("DequantizeLinear", 13, {&i8, &h}),
                    doctest::Contains("a float16 scale needs opset 19"));
}

TEST_CASE("DynamicQuantizeLinear: uint8 output, scalar scale and zero point") {
  const tensor x = tensor::from<float>({3}, {0.f, 1.f, 2.55f});
  const auto y = run_op("DynamicQuantizeLinear", 11, {&x}, 3);
  CHECK(y[1].rank() == 0);
  CHECK(values<float>(y[1])[0] == 2.55f / 255.f);
  CHECK(values<std::uint8_t>(y[2]) == std::vector<std::uint8_t>{0});
  CHECK(values<std::uint8_t>(y[0]) == std::vector<std::uint8_t>{0, 100, 255});
}

TEST_CASE("quantization errors name the node: layouts and types before their opset, bad scales") {
  const tensor x = tensor::from<float>({2}, {1.f, 2.f});
  const tensor two_scales = tensor::from<float>({2}, {1.f, 2.f});
  CHECK_THROWS_WITH(
      run_op("QuantizeLinear", 10, {&x, &two_scales}),
      doctest::Contains("node 'q' (QuantizeLinear): per-axis scales (shape [2]) need opset 13"));
  const tensor one = tensor::from<float>({}, {1.f});
  const tensor zp16 = tensor::from<std::int16_t>({}, {0});
  CHECK_THROWS_WITH(run_op("QuantizeLinear", 13, {&x, &one, &zp16}),
                    doctest::Contains("element type int16, which needs opset 21"));
  const tensor zero = tensor::from<float>({}, {0.f});
  CHECK_THROWS_WITH(run_op("QuantizeLinear", 13, {&x, &zero}),
                    doctest::Contains("node 'q' (QuantizeLinear): scale[0]: expected a finite value > 0"));
  const tensor wrong_axis = tensor::from<float>({3}, {1.f, 1.f, 1.f});
  CHECK_THROWS_WITH(run_op("QuantizeLinear", 13, {&x, &wrong_axis}, 1, ints({{"axis", 0}})),
                    doctest::Contains("node 'q' (QuantizeLinear)"));
  CHECK_THROWS_WITH(run_op("QuantizeLinear", 21, {&x, &one}, 1, ints({{"output_dtype", 1}})),
                    doctest::Contains("output_dtype 1 is not a QuantizeLinear output type"));
}
