// Shape and data-movement kernels (quench/runtime/ops/shape_ops.hpp): small hand-checked cases
// run through the executor, one node per model, and the errors they must raise.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/numeric/bfloat16.hpp"
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
  return quench_test::run_node(op, opset, inputs, n_out, attrs);
}

tensor ints(std::vector<std::int64_t> v) {
  tensor t(dtype::int64, quench::shape{static_cast<std::int64_t>(v.size())});
  std::copy(v.begin(), v.end(), t.view<std::int64_t>().data());
  return t;
}

tensor iota_f(quench::shape s) {
  tensor t(dtype::float32, std::move(s));
  auto v = t.view<float>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return t;
}

std::vector<std::int64_t> dims(const tensor& t) { return t.shape().dims(); }

}  // namespace

TEST_CASE("Reshape: 0 copies, -1 infers, allowzero keeps a literal 0, the attribute form before opset 5") {
  const tensor x = iota_f({2, 3, 4});
  const tensor s1 = ints({0, -1});
  CHECK(dims(run_op("Reshape", 13, {&x, &s1})[0]) == std::vector<std::int64_t>{2, 12});
  const tensor s2 = ints({-1, 0, 2});  // 0 copies input dim 1 (3), -1 becomes 24 / 6
  CHECK(dims(run_op("Reshape", 13, {&x, &s2})[0]) == std::vector<std::int64_t>{4, 3, 2});
  const tensor s4 = ints({4, 0, 2});
  CHECK(dims(run_op("Reshape", 13, {&x, &s4})[0]) == std::vector<std::int64_t>{4, 3, 2});
  const tensor empty(dtype::float32, {0, 3});
  const tensor s5 = ints({3, 0});
  CHECK(dims(run_op("Reshape", 14, {&empty, &s5}, 1, [](quench::node& n) {
          n.set_attribute(attribute::make_int("allowzero", 1));
        })[0]) == std::vector<std::int64_t>{3, 0});
  const auto y = run_op("Reshape", 4, {&x}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("shape", {4, -1}));
  });
  CHECK(dims(y[0]) == std::vector<std::int64_t>{4, 6});
  CHECK(values<float>(y[0])[23] == 23.f);

  const tensor two = ints({-1, -1});
  CHECK_THROWS_WITH(run_op("Reshape", 13, {&x, &two}),
                    doctest::Contains("node 'n' (Reshape): shape [-1, -1] has more than one -1"));
  const tensor bad = ints({5, -1});
  CHECK_THROWS_WITH(run_op("Reshape", 13, {&x, &bad}), doctest::Contains("cannot reshape [2, 3, 4]"));
}

TEST_CASE("Flatten, Squeeze and Unsqueeze in both axes signatures") {
  const tensor x = iota_f({2, 1, 3, 1});
  auto axis = [](std::int64_t a) {
    return [a](quench::node& n) { n.set_attribute(attribute::make_int("axis", a)); };
  };
  CHECK(dims(run_op("Flatten", 13, {&x}, 1, axis(0))[0]) == std::vector<std::int64_t>{1, 6});
  CHECK(dims(run_op("Flatten", 13, {&x}, 1, axis(-1))[0]) == std::vector<std::int64_t>{6, 1});
  CHECK(dims(run_op("Flatten", 13, {&x}, 1, axis(4))[0]) == std::vector<std::int64_t>{6, 1});
  CHECK_THROWS_WITH(run_op("Flatten", 13, {&x}, 1, axis(5)), doctest::Contains("axis 5 is outside"));

  CHECK(dims(run_op("Squeeze", 13, {&x})[0]) == std::vector<std::int64_t>{2, 3});
  const tensor a3 = ints({-1});
  CHECK(dims(run_op("Squeeze", 13, {&x, &a3})[0]) == std::vector<std::int64_t>{2, 1, 3});
  CHECK(dims(run_op("Squeeze", 11, {&x}, 1, [](quench::node& n) {
          n.set_attribute(attribute::make_ints("axes", {1}));
        })[0]) == std::vector<std::int64_t>{2, 3, 1});
  const tensor a0 = ints({0});
  CHECK_THROWS_WITH(run_op("Squeeze", 13, {&x, &a0}), doctest::Contains("cannot squeeze axis 0 of size 2"));

  const tensor u = ints({0, -1});
  CHECK(dims(run_op("Unsqueeze", 13, {&x, &u})[0]) == std::vector<std::int64_t>{1, 2, 1, 3, 1, 1});
  CHECK(dims(run_op("Unsqueeze", 11, {&x}, 1, [](quench::node& n) {
          n.set_attribute(attribute::make_ints("axes", {2}));
        })[0]) == std::vector<std::int64_t>{2, 1, 1, 3, 1});
  const tensor dup = ints({1, 1});
  CHECK_THROWS_WITH(run_op("Unsqueeze", 13, {&x, &dup}), doctest::Contains("listed twice"));
}

TEST_CASE("Transpose permutes any element type, 4-bit packed ones included") {
  const tensor x = iota_f({2, 3, 4});
  const auto y = run_op("Transpose", 13, {&x}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("perm", {1, 2, 0}));
  });
  CHECK(dims(y[0]) == std::vector<std::int64_t>{3, 4, 2});
  // y[i][j][k] = x[k][i][j] = 12k + 4i + j
  CHECK(values<float>(y[0])[1] == 12.f);
  CHECK(values<float>(y[0])[2 * 8 + 3 * 2 + 1] == 12.f + 8.f + 3.f);
  CHECK(dims(run_op("Transpose", 13, {&x})[0]) == std::vector<std::int64_t>{4, 3, 2});

  tensor q(dtype::int4, {2, 3});  // values 0..5 as nibbles
  auto* b = reinterpret_cast<std::uint8_t*>(q.bytes());
  for (std::size_t i = 0; i < 6; ++i) quench::set_nibble(b, i, static_cast<std::uint8_t>(i));
  const auto t = run_op("Transpose", 13, {&q});
  REQUIRE(t[0].dtype() == dtype::int4);
  const auto* tb = reinterpret_cast<const std::uint8_t*>(t[0].bytes());
  std::vector<int> got;
  for (std::size_t i = 0; i < 6; ++i) got.push_back(quench::get_nibble(tb, i));
  CHECK(got == std::vector<int>{0, 3, 1, 4, 2, 5});

  // Large enough for the tiled path (innermost output axis strided, another contiguous), with
  // sizes that leave partial tiles.
  const tensor big = iota_f({3, 37, 53});
  const auto bt = values<float>(run_op("Transpose", 13, {&big}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("perm", {2, 0, 1}));
  })[0]);
  bool same = true;
  for (std::size_t k = 0; k < 53; ++k)
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t j = 0; j < 37; ++j)
        same = same && bt[(k * 3 + a) * 37 + j] == static_cast<float>((a * 37 + j) * 53 + k);
  CHECK(same);

  CHECK_THROWS_WITH(run_op("Transpose", 13, {&x}, 1,
                           [](quench::node& n) {
                             n.set_attribute(attribute::make_ints("perm", {0, 0, 1}));
                           }),
                    doctest::Contains("not a permutation"));
}

TEST_CASE("Concat and Split, Split's sizes from attribute, input or num_outputs") {
  const tensor a = iota_f({2, 1});
  const tensor b = iota_f({2, 2});
  auto axis1 = [](quench::node& n) { n.set_attribute(attribute::make_int("axis", 1)); };
  const auto c = run_op("Concat", 13, {&a, &b}, 1, axis1);
  CHECK(values<float>(c[0]) == std::vector<float>{0, 0, 1, 1, 2, 3});
  const tensor bad = iota_f({3, 2});
  CHECK_THROWS_WITH(run_op("Concat", 13, {&a, &bad}, 1, axis1), doctest::Contains("does not match input 0"));
  CHECK_THROWS_WITH(run_op("Concat", 13, {&a, &b}), doctest::Contains("requires the 'axis' attribute"));

  const tensor x = iota_f({5});
  auto s = run_op("Split", 11, {&x}, 2, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("split", {2, 3}));
  });
  CHECK(values<float>(s[1]) == std::vector<float>{2, 3, 4});
  const tensor sp = ints({4, 1});
  s = run_op("Split", 13, {&x, &sp}, 2);
  CHECK(values<float>(s[0]) == std::vector<float>{0, 1, 2, 3});
  s = run_op("Split", 18, {&x}, 3,
             [](quench::node& n) { n.set_attribute(attribute::make_int("num_outputs", 3)); });
  CHECK(values<float>(s[0]) == std::vector<float>{0, 1});
  CHECK(values<float>(s[2]) == std::vector<float>{4});
  CHECK_THROWS_WITH(run_op("Split", 13, {&x}, 2), doctest::Contains("does not split into 2 equal parts"));
  const tensor wrong = ints({1, 1});
  CHECK_THROWS_WITH(run_op("Split", 13, {&x, &wrong}, 2), doctest::Contains("split sums to 2"));
}

TEST_CASE("Slice clamps starts and ends, walks negative steps, and takes attributes before opset 10") {
  const tensor x = iota_f({10});
  const tensor st = ints({-1}), en = ints({std::numeric_limits<std::int64_t>::min()}), ax = ints({0}),
               step = ints({-3});
  CHECK(values<float>(run_op("Slice", 13, {&x, &st, &en, &ax, &step})[0]) == std::vector<float>{9, 6, 3, 0});
  const tensor st2 = ints({-100}), en2 = ints({1000});
  CHECK(values<float>(run_op("Slice", 13, {&x, &st2, &en2})[0]).size() == 10);
  const tensor st3 = ints({5}), en3 = ints({2});
  CHECK(run_op("Slice", 13, {&x, &st3, &en3})[0].size() == 0);

  const tensor m = iota_f({3, 4});
  const auto y = run_op("Slice", 9, {&m}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("starts", {1, 1}));
    n.set_attribute(attribute::make_ints("ends", {1000, 3}));
  });
  CHECK(dims(y[0]) == std::vector<std::int64_t>{2, 2});
  CHECK(values<float>(y[0]) == std::vector<float>{5, 6, 9, 10});
  const tensor zero = ints({0});
  CHECK_THROWS_WITH(run_op("Slice", 13, {&x, &st, &en, &ax, &zero}), doctest::Contains("step 0"));
  const tensor empty(dtype::float32, {0});
  CHECK(run_op("Slice", 13, {&empty, &st, &en, &ax, &step})[0].shape() == quench::shape{0});
}

TEST_CASE("Gather, GatherElements, Expand and Tile") {
  const tensor x = iota_f({3, 2});
  const tensor idx = ints({-1, 0});
  const auto g = run_op("Gather", 13, {&x, &idx});
  CHECK(values<float>(g[0]) == std::vector<float>{4, 5, 0, 1});
  const tensor far = ints({3});
  CHECK_THROWS_WITH(run_op("Gather", 13, {&x, &far}), doctest::Contains("index 3 is outside [-3, 2]"));

  tensor ge_idx(dtype::int64, {2, 2});
  auto gv = ge_idx.view<std::int64_t>();
  gv[0] = 1;
  gv[1] = 0;
  gv[2] = -1;
  gv[3] = 1;
  const auto ge = run_op("GatherElements", 13, {&x, &ge_idx}, 1,
                         [](quench::node& n) { n.set_attribute(attribute::make_int("axis", 1)); });
  CHECK(values<float>(ge[0]) == std::vector<float>{1, 0, 3, 3});

  const tensor row = iota_f({1, 3});
  const tensor shp = ints({2, 1, 1});
  const auto e = run_op("Expand", 13, {&row, &shp});
  CHECK(dims(e[0]) == std::vector<std::int64_t>{2, 1, 3});
  CHECK(values<float>(e[0]) == std::vector<float>{0, 1, 2, 0, 1, 2});

  const tensor neg = ints({-2, 3});
  CHECK_THROWS_WITH(run_op("Expand", 13, {&row, &neg}),
                    doctest::Contains("node 'n' (Expand): shape entry -2 is negative"));

  const tensor reps = ints({2, 2});
  const tensor small = iota_f({1, 2});
  const auto t = run_op("Tile", 13, {&small, &reps});
  CHECK(dims(t[0]) == std::vector<std::int64_t>{2, 4});
  CHECK(values<float>(t[0]) == std::vector<float>{0, 1, 0, 1, 0, 1, 0, 1});
  const tensor short_reps = ints({2});
  CHECK_THROWS_WITH(run_op("Tile", 13, {&small, &short_reps}), doctest::Contains("repeats has 1 entries"));
}

TEST_CASE("Pad: constant, reflect, edge and wrap; attribute, input and axes forms; negative pads crop") {
  const tensor x = iota_f({1, 3});  // [0 1 2]
  auto mode = [](const char* m) {
    return [m](quench::node& n) { n.set_attribute(attribute::make_string("mode", m)); };
  };
  const tensor pads = ints({0, 2, 0, 1});
  CHECK(values<float>(run_op("Pad", 13, {&x, &pads})[0]) == std::vector<float>{0, 0, 0, 1, 2, 0});
  const tensor value = tensor::from<float>({}, {9.f});
  CHECK(values<float>(run_op("Pad", 13, {&x, &pads, &value})[0]) == std::vector<float>{9, 9, 0, 1, 2, 9});
  CHECK(values<float>(run_op("Pad", 13, {&x, &pads}, 1, mode("reflect"))[0]) ==
        std::vector<float>{2, 1, 0, 1, 2, 1});
  CHECK(values<float>(run_op("Pad", 13, {&x, &pads}, 1, mode("edge"))[0]) ==
        std::vector<float>{0, 0, 0, 1, 2, 2});
  CHECK(values<float>(run_op("Pad", 19, {&x, &pads}, 1, mode("wrap"))[0]) ==
        std::vector<float>{1, 2, 0, 1, 2, 0});
  CHECK_THROWS_WITH(run_op("Pad", 13, {&x, &pads}, 1, mode("wrap")),
                    doctest::Contains("mode 'wrap' is not supported before opset 19"));

  const auto old = run_op("Pad", 2, {&x}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("pads", {1, 0, 0, 1}));
    n.set_attribute(attribute::make_float("value", 7.f));
  });
  CHECK(dims(old[0]) == std::vector<std::int64_t>{2, 4});
  CHECK(values<float>(old[0]) == std::vector<float>{7, 7, 7, 7, 0, 1, 2, 7});

  const tensor axis_pads = ints({1, 1});
  const tensor axes = ints({-1});
  CHECK(values<float>(run_op("Pad", 18, {&x, &axis_pads, nullptr, &axes})[0]) ==
        std::vector<float>{0, 0, 1, 2, 0});

  const tensor crop = ints({0, -1, 0, 2});
  CHECK(values<float>(run_op("Pad", 13, {&x, &crop}, 1, mode("edge"))[0]) == std::vector<float>{1, 2, 2, 2});
  const tensor wrong = ints({1, 1});
  CHECK_THROWS_WITH(run_op("Pad", 13, {&x, &wrong}), doctest::Contains("pads has 2 entries, expected 4"));
}

TEST_CASE("DepthToSpace (DCR and CRD) and SpaceToDepth") {
  const tensor x = iota_f({1, 4, 1, 1});
  auto attrs = [](const char* mode) {
    return [mode](quench::node& n) {
      n.set_attribute(attribute::make_int("blocksize", 2));
      n.set_attribute(attribute::make_string("mode", mode));
    };
  };
  const auto dcr = run_op("DepthToSpace", 13, {&x}, 1, attrs("DCR"));
  CHECK(dims(dcr[0]) == std::vector<std::int64_t>{1, 1, 2, 2});
  CHECK(values<float>(dcr[0]) == std::vector<float>{0, 1, 2, 3});
  const tensor x8 = iota_f({1, 8, 1, 1});
  // DCR: output channel c, offsets (i, j) read channel (i * 2 + j) * 2 + c; CRD: c * 4 + i * 2 + j.
  CHECK(values<float>(run_op("DepthToSpace", 13, {&x8}, 1, attrs("DCR"))[0]) ==
        std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7});
  CHECK(values<float>(run_op("DepthToSpace", 13, {&x8}, 1, attrs("CRD"))[0]) ==
        std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK_THROWS_WITH(run_op("DepthToSpace", 13, {&x8}, 1, attrs("XYZ")),
                    doctest::Contains("mode 'XYZ' is not DCR or CRD"));

  const tensor img = iota_f({1, 1, 2, 4});
  const auto s2d = run_op("SpaceToDepth", 13, {&img}, 1,
                          [](quench::node& n) { n.set_attribute(attribute::make_int("blocksize", 2)); });
  CHECK(dims(s2d[0]) == std::vector<std::int64_t>{1, 4, 1, 2});
  CHECK(values<float>(s2d[0]) == std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7});
}

TEST_CASE("Shape with start and end, Size, NonZero") {
  const tensor x = iota_f({2, 3, 4});
  CHECK(values<std::int64_t>(run_op("Shape", 13, {&x})[0]) == std::vector<std::int64_t>{2, 3, 4});
  CHECK(values<std::int64_t>(run_op("Shape", 15, {&x}, 1, [](quench::node& n) {
          n.set_attribute(attribute::make_int("start", -2));
          n.set_attribute(attribute::make_int("end", 100));
        })[0]) == std::vector<std::int64_t>{3, 4});
  CHECK(values<std::int64_t>(run_op("Size", 13, {&x})[0]) == std::vector<std::int64_t>{24});

  const tensor m = tensor::from<float>({2, 2}, {0.f, 1.f, 2.f, 0.f});
  const auto nz = run_op("NonZero", 13, {&m});
  CHECK(dims(nz[0]) == std::vector<std::int64_t>{2, 2});
  CHECK(values<std::int64_t>(nz[0]) == std::vector<std::int64_t>{0, 1, 1, 0});
}

TEST_CASE("Cast: float16, bfloat16, float8 with saturate, bool, integers; strings rejected before running") {
  auto to = [](dtype t) {
    return [t](quench::node& n) { n.set_attribute(attribute::make_int("to", static_cast<std::int64_t>(t))); };
  };
  const tensor f = tensor::from<float>({4}, {1.5f, -2.75f, 0.f, 70000.f});
  const auto h = run_op("Cast", 13, {&f}, 1, to(dtype::float16));
  CHECK(h[0].dtype() == dtype::float16);
  CHECK(h[0].view<quench::float16>()[0].bits() == 0x3e00);
  CHECK(h[0].view<quench::float16>()[3].bits() == 0x7c00);  // overflow to +inf
  CHECK(run_op("Cast", 13, {&f}, 1, to(dtype::bfloat16))[0].view<quench::bfloat16>()[1].bits() == 0xc030);
  CHECK(values<bool>(run_op("Cast", 13, {&f}, 1, to(dtype::bool_))[0]) ==
        std::vector<bool>{true, true, false, true});
  CHECK(values<std::int32_t>(run_op("Cast", 13, {&f}, 1, to(dtype::int32))[0]) ==
        std::vector<std::int32_t>{1, -2, 0, 70000});
  CHECK(values<float>(run_op("Cast", 13, {&h[0]}, 1, to(dtype::float32))[0])[1] == -2.75f);

  // 1 + 2^-11 + 2^-40 is just above the float16 tie between 1 and 1 + 2^-10: rounding through
  // float first would land on the tie and round to even (1.0); direct rounding gives 1 + 2^-10.
  const tensor d = tensor::from<double>({1}, {1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)});
  CHECK(run_op("Cast", 13, {&d}, 1, to(dtype::float16))[0].view<quench::float16>()[0].bits() == 0x3c01);

  const tensor big = tensor::from<float>({1}, {1000.f});
  auto f8 = [](bool sat) {
    return [sat](quench::node& n) {
      n.set_attribute(attribute::make_int("to", static_cast<std::int64_t>(dtype::float8e4m3fn)));
      n.set_attribute(attribute::make_int("saturate", sat ? 1 : 0));
    };
  };
  CHECK(run_op("Cast", 19, {&big}, 1, f8(true))[0].view<quench::float8e4m3fn>()[0].bits() == 0x7e);   // 448
  CHECK(run_op("Cast", 19, {&big}, 1, f8(false))[0].view<quench::float8e4m3fn>()[0].bits() == 0x7f);  // NaN

  const auto old = run_op("Cast", 5, {&f}, 1,
                          [](quench::node& n) { n.set_attribute(attribute::make_string("to", "INT64")); });
  CHECK(values<std::int64_t>(old[0]) == std::vector<std::int64_t>{1, -2, 0, 70000});
  const tensor like(dtype::float64, {1});
  CHECK(run_op("CastLike", 15, {&f, &like})[0].dtype() == dtype::float64);

  CHECK_THROWS_WITH(run_op("Cast", 13, {&f}, 1, to(dtype::string)),
                    doctest::Contains("cast to string is not supported"));

  // Out-of-range and NaN conversions are undefined in C++; quench gives what ONNX Runtime gives on
  // x86-64 (checked against onnxruntime-node 1.30).
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const tensor odd = tensor::from<float>({6}, {-1.f, 300.6f, -1e10f, 3e9f, nan, -inf});
  CHECK(values<std::uint8_t>(run_op("Cast", 13, {&odd}, 1, to(dtype::uint8))[0]) ==
        std::vector<std::uint8_t>{255, 44, 0, 0, 0, 0});
  const std::int32_t lo = std::numeric_limits<std::int32_t>::min();
  CHECK(values<std::int32_t>(run_op("Cast", 13, {&odd}, 1, to(dtype::int32))[0]) ==
        std::vector<std::int32_t>{-1, 300, lo, lo, lo, lo});
  CHECK(values<std::uint32_t>(run_op("Cast", 13, {&odd}, 1, to(dtype::uint32))[0]) ==
        std::vector<std::uint32_t>{4294967295u, 300, 2147483648u, 3000000000u, 0, 2147483648u});
}

TEST_CASE("Constant, ConstantOfShape, Range, Identity and Dropout") {
  auto c = run_op("Constant", 13, {}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_ints("value_ints", {3, 4}));
  });
  CHECK(values<std::int64_t>(c[0]) == std::vector<std::int64_t>{3, 4});
  c = run_op("Constant", 13, {}, 1,
             [](quench::node& n) { n.set_attribute(attribute::make_float("value_float", 2.5f)); });
  CHECK(c[0].rank() == 0);
  CHECK(values<float>(c[0]) == std::vector<float>{2.5f});
  c = run_op("Constant", 13, {}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_tensor("value", tensor::from<std::int32_t>({2}, {7, 8})));
  });
  CHECK(values<std::int32_t>(c[0]) == std::vector<std::int32_t>{7, 8});
  CHECK_THROWS_WITH(
      run_op("Constant", 13, {}, 1,
             [](quench::node& n) { n.set_attribute(attribute::make_string("value_string", "x")); }),
      doctest::Contains("not strings or sparse tensors"));

  const tensor shp = ints({2, 2});
  CHECK(values<float>(run_op("ConstantOfShape", 13, {&shp})[0]) == std::vector<float>{0, 0, 0, 0});
  const auto ones = run_op("ConstantOfShape", 13, {&shp}, 1, [](quench::node& n) {
    n.set_attribute(attribute::make_tensor("value", tensor::from<std::int64_t>({1}, {1})));
  });
  CHECK(values<std::int64_t>(ones[0]) == std::vector<std::int64_t>{1, 1, 1, 1});

  const tensor s = tensor::from<float>({}, {1.f}), l = tensor::from<float>({}, {2.f}),
               dl = tensor::from<float>({}, {0.25f});
  CHECK(values<float>(run_op("Range", 13, {&s, &l, &dl})[0]) == std::vector<float>{1.f, 1.25f, 1.5f, 1.75f});
  const tensor si = tensor::from<std::int32_t>({}, {10}), li = tensor::from<std::int32_t>({}, {4}),
               di = tensor::from<std::int32_t>({}, {-3});
  CHECK(values<std::int32_t>(run_op("Range", 13, {&si, &li, &di})[0]) == std::vector<std::int32_t>{10, 7});
  const tensor inf = tensor::from<float>({}, {std::numeric_limits<float>::infinity()});
  CHECK_THROWS_WITH(run_op("Range", 13, {&s, &inf, &dl}), doctest::Contains("elements"));

  const tensor x = iota_f({3});
  CHECK(values<float>(run_op("Identity", 13, {&x})[0]) == std::vector<float>{0, 1, 2});
  const auto dr = run_op("Dropout", 13, {&x}, 2);
  CHECK(values<float>(dr[0]) == std::vector<float>{0, 1, 2});
  CHECK(values<bool>(dr[1]) == std::vector<bool>{true, true, true});
  const tensor ratio = tensor::from<float>({}, {0.5f});
  const tensor train = tensor::from<bool>({}, {true});
  CHECK_THROWS_WITH(run_op("Dropout", 13, {&x, &ratio, &train}),
                    doctest::Contains("training_mode is a graph input"));
}
