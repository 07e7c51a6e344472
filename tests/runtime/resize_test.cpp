// Resize and Upsample (quench/runtime/ops/resize.hpp): hand-computed cases for every mode,
// rounding, coordinate transform and signature, and the errors raised before running.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/runtime/executor.hpp"
#include "run_node.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::dtype;
using quench::tensor;

using quench_test::values;

namespace {

std::vector<tensor> run_op(const std::string& op, std::int64_t opset, const std::vector<const tensor*>& inputs,
                           const std::function<void(quench::node&)>& attrs = {}) {
  return quench_test::run_node(op, opset, inputs, 1, attrs);
}

tensor floats(quench::shape s, std::vector<float> v) {
  tensor t(dtype::float32, std::move(s));
  std::copy(v.begin(), v.end(), t.view<float>().data());
  return t;
}

tensor ramp(std::int64_t n) {
  tensor t(dtype::float32, {n});
  for (std::int64_t i = 0; i < n; ++i) t.view<float>()[static_cast<std::size_t>(i)] = static_cast<float>(i);
  return t;
}

using attrs_fn = std::function<void(quench::node&)>;

attrs_fn strings(std::vector<std::pair<std::string, std::string>> kv,
                 std::vector<std::pair<std::string, std::int64_t>> ints = {}) {
  return [kv, ints](quench::node& n) {
    for (const auto& [k, v] : kv) n.set_attribute(attribute::make_string(k, v));
    for (const auto& [k, v] : ints) n.set_attribute(attribute::make_int(k, v));
  };
}

}  // namespace

TEST_CASE("nearest: half_pixel with round_prefer_floor by default, the four rounding modes") {
  const tensor x = floats({1, 1, 2, 2}, {1, 2, 3, 4});
  const tensor scales = floats({4}, {1, 1, 2, 2});
  const auto y = run_op("Resize", 13, {&x, nullptr, &scales});
  CHECK(y[0].shape() == quench::shape{1, 1, 4, 4});
  CHECK(values<float>(y[0]) == std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});

  // asymmetric on [1, 2] x4: source coordinates 0, .25, .5, .75, 1, 1.25, 1.5, 1.75.
  const tensor x2 = floats({2}, {1, 2});
  const tensor s4 = floats({1}, {4});
  auto mode = [&](const char* m) {
    return values<float>(
        run_op("Resize", 13, {&x2, nullptr, &s4},
               strings({{"coordinate_transformation_mode", "asymmetric"}, {"nearest_mode", m}}))[0]);
  };
  CHECK(mode("round_prefer_floor") == std::vector<float>{1, 1, 1, 2, 2, 2, 2, 2});
  CHECK(mode("round_prefer_ceil") == std::vector<float>{1, 1, 2, 2, 2, 2, 2, 2});
  CHECK(mode("floor") == std::vector<float>{1, 1, 1, 1, 2, 2, 2, 2});
  CHECK(mode("ceil") == std::vector<float>{1, 2, 2, 2, 2, 2, 2, 2});

  const tensor xi = tensor::from<std::int32_t>({2}, {5, 6});
  CHECK(values<std::int32_t>(run_op("Resize", 13, {&xi, nullptr, &s4},
                                    strings({{"coordinate_transformation_mode", "asymmetric"}}))[0]) ==
        std::vector<std::int32_t>{5, 5, 5, 6, 6, 6, 6, 6});
}

TEST_CASE("sizes from scales are computed in float, as ONNX Runtime: 10 x 0.7f gives 7, not 6") {
  const tensor x(dtype::float32, {10});
  const tensor s = floats({1}, {0.7f});
  CHECK(run_op("Resize", 13, {&x, nullptr, &s})[0].shape() == quench::shape{7});
  // A length-1 output of pytorch_half_pixel reads coordinate 0 (the operator text; the reference uses -0.5).
  const tensor r = ramp(4);
  const tensor one = tensor::from<std::int64_t>({1}, {1});
  CHECK(values<float>(run_op(
            "Resize", 13, {&r, nullptr, nullptr, &one},
            strings({{"mode", "cubic"}, {"coordinate_transformation_mode", "pytorch_half_pixel"}}))[0]) ==
        std::vector<float>{0.f});
}

TEST_CASE(
    "Upsample-7/9 and Resize-10: asymmetric, nearest rounds down when upsampling and up when downsampling") {
  const tensor x = floats({1, 1, 2, 2}, {1, 2, 3, 4});
  const auto up7 = run_op("Upsample", 7, {&x}, [](quench::node& n) {
    attribute a;
    a.name = "scales";
    a.type = quench::attribute_type::floats;
    a.floats = {1, 1, 2, 3};
    n.set_attribute(std::move(a));
  });
  CHECK(up7[0].shape() == quench::shape{1, 1, 4, 6});
  CHECK(values<float>(up7[0])[0] == 1.f);
  CHECK(values<float>(up7[0])[3] == 2.f);
  CHECK(values<float>(up7[0])[12] == 3.f);
  const tensor scales = floats({4}, {1, 1, 2, 3});
  CHECK(values<float>(run_op("Upsample", 9, {&x, &scales})[0]) == values<float>(up7[0]));

  // width 5 x 0.6 = 3 outputs at source 0, 1.67, 3.33: ONNX Runtime's "simple" rounding takes the ceiling.
  const tensor row = floats({1, 1, 1, 5}, {1, 2, 3, 4, 5});
  const tensor down = floats({4}, {1, 1, 1, 0.6f});
  CHECK(values<float>(run_op("Resize", 10, {&row, &down})[0]) == std::vector<float>{1, 3, 5});
}

TEST_CASE("linear: half_pixel, align_corners, half_pixel_symmetric, sizes instead of scales") {
  const tensor x = floats({2}, {1, 2});
  const tensor s2 = floats({1}, {2});
  CHECK(values<float>(run_op("Resize", 13, {&x, nullptr, &s2}, strings({{"mode", "linear"}}))[0]) ==
        std::vector<float>{1, 1.25f, 1.75f, 2});
  const tensor sizes = tensor::from<std::int64_t>({1}, {4});
  const auto ac = values<float>(
      run_op("Resize", 13, {&x, nullptr, nullptr, &sizes},
             strings({{"mode", "linear"}, {"coordinate_transformation_mode", "align_corners"}}))[0]);
  CHECK(ac[1] == doctest::Approx(4.0 / 3));
  CHECK(ac[3] == 2.f);

  // 4 x 0.6 = 2.4 -> 2 outputs; half_pixel_symmetric recentres by 4 / 2 * (1 - 2 / 2.4) = 1/3.
  const tensor r4 = ramp(4);
  const tensor s06 = floats({1}, {0.6f});
  const auto sym = values<float>(
      run_op("Resize", 19, {&r4, nullptr, &s06},
             strings({{"mode", "linear"}, {"coordinate_transformation_mode", "half_pixel_symmetric"}}))[0]);
  REQUIRE(sym.size() == 2);
  const double scale = 0.6f, offset = 4.0 / 2 * (1 - 2 / (scale * 4));
  CHECK(sym[0] == doctest::Approx(offset + 0.5 / scale - 0.5));
  CHECK(sym[1] == doctest::Approx(offset + 1.5 / scale - 0.5));
  CHECK_THROWS_WITH(run_op("Resize", 18, {&r4, nullptr, &s06},
                           strings({{"coordinate_transformation_mode", "half_pixel_symmetric"}})),
                    doctest::Contains("'half_pixel_symmetric' is not supported at opset 18"));
}

TEST_CASE("cubic: Keys kernel with cubic_coeff_a, edge repetition, exclude_outside") {
  const tensor x = ramp(8);
  const tensor s2 = floats({1}, {2});
  auto cubic = [&](std::int64_t exclude) {
    return values<float>(run_op("Resize", 13, {&x, nullptr, &s2},
                                strings({{"mode", "cubic"}, {"coordinate_transformation_mode", "asymmetric"}},
                                        {{"exclude_outside", exclude}}))[0]);
  };
  const auto y = cubic(0);
  // At 0.5 the weights for -1, 0, 1, 2 are -0.09375, 0.59375, 0.59375, -0.09375; index -1 repeats 0.
  CHECK(y[1] == 0.40625f);
  CHECK(y[5] == 2.5f);  // the kernel reproduces a ramp away from the borders
  CHECK(y[4] == 2.f);
  CHECK(cubic(1)[1] == doctest::Approx((0.59375 - 2 * 0.09375) / (1 + 0.09375)));
}

TEST_CASE("tf_crop_and_resize writes extrapolation_value outside the roi") {
  const tensor x = ramp(4);
  const tensor roi = floats({2}, {0.f, 1.5f});
  const tensor sizes = tensor::from<std::int64_t>({1}, {3});
  const auto y = run_op("Resize", 13, {&x, &roi, nullptr, &sizes}, [](quench::node& n) {
    n.set_attribute(attribute::make_string("mode", "linear"));
    n.set_attribute(attribute::make_string("coordinate_transformation_mode", "tf_crop_and_resize"));
    n.set_attribute(attribute::make_float("extrapolation_value", 10.f));
  });
  CHECK(values<float>(y[0]) == std::vector<float>{0.f, 2.25f, 10.f});
}

TEST_CASE("opset 18: axes, keep_aspect_ratio_policy and antialias") {
  const tensor x(dtype::float32, {1, 1, 2, 4});
  const tensor sizes = tensor::from<std::int64_t>({2}, {4, 4});
  auto policy = [](const char* p) {
    return [p](quench::node& n) {
      n.set_attribute(attribute::make_ints("axes", {2, 3}));
      n.set_attribute(attribute::make_string("keep_aspect_ratio_policy", p));
    };
  };
  CHECK(run_op("Resize", 18, {&x, nullptr, nullptr, &sizes}, policy("not_larger"))[0].shape() ==
        quench::shape{1, 1, 2, 4});
  CHECK(run_op("Resize", 18, {&x, nullptr, nullptr, &sizes}, policy("not_smaller"))[0].shape() ==
        quench::shape{1, 1, 4, 8});
  CHECK(run_op("Resize", 18, {&x, nullptr, nullptr, &sizes}, policy("stretch"))[0].shape() ==
        quench::shape{1, 1, 4, 4});

  // Downsampling [0, 1, 2, 3] by 2 with a linear kernel widened to 4 taps: .125, .375, .375, .125.
  const tensor r4 = ramp(4);
  const tensor half = floats({1}, {0.5f});
  const auto aa =
      run_op("Resize", 18, {&r4, nullptr, &half}, strings({{"mode", "linear"}}, {{"antialias", 1}}));
  CHECK(values<float>(aa[0]) == std::vector<float>{0.625f, 2.375f});
  CHECK(values<float>(run_op("Resize", 18, {&r4, nullptr, &half}, strings({{"mode", "linear"}}))[0]) ==
        std::vector<float>{0.5f, 2.5f});
}

TEST_CASE("Resize errors: scales and sizes together, unknown modes, linear on integers") {
  const tensor x = ramp(4);
  const tensor s2 = floats({1}, {2});
  const tensor sizes = tensor::from<std::int64_t>({1}, {8});
  CHECK_THROWS_WITH(run_op("Resize", 13, {&x, nullptr, &s2, &sizes}),
                    doctest::Contains("node 'n' (Resize): needs exactly one of scales and sizes"));
  CHECK_THROWS_WITH(run_op("Resize", 13, {&x, nullptr}), doctest::Contains("neither given"));
  CHECK_THROWS_WITH(run_op("Resize", 13, {&x, nullptr, &s2}, strings({{"mode", "bicubic"}})),
                    doctest::Contains("mode 'bicubic' is not supported"));
  CHECK_THROWS_WITH(run_op("Resize", 10, {&x, &s2}, strings({{"mode", "cubic"}})),
                    doctest::Contains("mode 'cubic' is not supported at opset 10"));
  const tensor xi = tensor::from<std::int32_t>({2}, {1, 2});
  CHECK_THROWS_WITH(run_op("Resize", 13, {&xi, nullptr, &s2}, strings({{"mode", "linear"}})),
                    doctest::Contains("need a float or double input"));
  const tensor s_bad = floats({2}, {1, 2});
  CHECK_THROWS_WITH(run_op("Resize", 13, {&x, nullptr, &s_bad}),
                    doctest::Contains("scales has 2 entries for 1 axes"));
}
