#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/weight_qparams.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

using quench::dtype;
using quench::pipeline::weight_method;
using quench::pipeline::weight_qparams;
using quench::pipeline::weight_qparams_options;

namespace {
double sse(const quench::tensor& w, const quench::qparams& p) {
  const quench::tensor back = quench::dequantize(quench::quantize(w, p), p);
  double e = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double d = double(w.view<float>()[i]) - back.view<float>()[i];
    e += d * d;
  }
  return e;
}
}  // namespace

TEST_CASE("weight_qparams: minmax equals ONNX Runtime's per-channel rule; mse clips outliers and lowers the error") {
  // Heavy-tailed (Laplace) channels of 2048 weights: a few large values set the min-max step for
  // all, and clipping them costs less than the rounding error it saves. (A single outlier is not
  // such a case: clipping it costs more than everything else together.)
  quench::tensor w(dtype::float32, {8, 2048}, "w");
  std::mt19937 rng(3);
  std::exponential_distribution<float> e(1.f);
  for (auto& v : w.view<float>()) v = e(rng) - e(rng);
  weight_qparams_options o;
  o.axis = 0;
  const auto mm = weight_qparams(w, o);
  quench::range_options symmetric;
  symmetric.symmetric = true;
  const auto ref = quench::qparams_from_data(w.view<float>(), dtype::int8, 0, symmetric);
  CHECK(mm.scales == ref.scales);
  o.method = weight_method::mse;
  const auto ms = weight_qparams(w, o);
  int clipped = 0;
  for (std::size_t c = 0; c < 8; ++c) {
    CHECK(ms.scales[c] <= mm.scales[c]);
    clipped += ms.scales[c] < mm.scales[c];
  }
  CHECK(clipped >= 4);
  CHECK(sse(w, ms) < sse(w, mm));
}

TEST_CASE("weight_qparams: blocked scales have the weight's shape with ceil(D / block) along the axis") {
  quench::tensor w = quench_test::random_tensor({70, 6}, "w", 4);
  weight_qparams_options o;
  o.type = dtype::int4;
  o.axis = 0;
  o.block_size = 32;
  const auto p = weight_qparams(w, o);
  CHECK(p.granularity == quench::quant_granularity::blocked);
  CHECK(p.param_shape == quench::shape{3, 6});
  // Block 2 of column 5 holds rows 64..69 only: its scale is 2 absmax / 15 (ORT uses the full int4 range).
  float amax = 0;
  for (std::size_t r = 64; r < 70; ++r) amax = std::max(amax, std::fabs(w.view<float>()[r * 6 + 5]));
  CHECK(p.scales[2 * 6 + 5] == doctest::Approx(2 * amax / 15.f).epsilon(1e-6));  // ORT: int4 keeps [-8, 7] when symmetric
  CHECK(sse(w, p) > 0);
}

TEST_CASE("weight_qparams refuses NaN weights naming the tensor") {
  quench::tensor w = quench_test::random_tensor({4, 4}, "conv.weight", 5);
  w.view<float>()[5] = NAN;
  CHECK_THROWS_WITH(weight_qparams(w, {}), doctest::Contains("conv.weight"));
}
