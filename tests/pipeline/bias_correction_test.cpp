#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/bias_correction.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_static.hpp"

namespace {
constexpr int depth = 8;

/// x [N,4,8,8] -> depth x (Conv 3x3 4->4 pad 1 -> Relu) -> y: a chain where every layer's output
/// mean also carries what all layers above it shifted.
quench::model chain() {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  quench::value* v = &g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{4, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  for (int i = 0; i < depth; ++i) {
    const std::string k = std::to_string(i);
    auto& w = g.add_initializer(quench_test::random_tensor({4, 4, 3, 3}, "W" + k, 10 + static_cast<std::uint32_t>(i), 0.35f));
    auto& b = g.add_initializer(quench_test::random_tensor({4}, "B" + k, 40 + static_cast<std::uint32_t>(i), 0.1f, 0.05f));
    auto& c = g.add_node("Conv", {v, &w, &b}, {"c" + k}, "conv" + k);
    c.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
    v = g.add_node("Relu", {c.output(0)}, {"r" + k}, "relu" + k).output(0);
  }
  g.add_output(*v);
  return m;
}

quench::data::tensor_source chain_data(std::int64_t n, std::uint32_t seed) {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({n, 4, 8, 8}, "x", seed, 1.f, 0.5f));
  return quench::data::tensor_source(std::move(in));
}
}  // namespace

TEST_CASE("bias correction goes layer by layer in one run: every layer's output mean matches the float model's; a second run removes only rounding") {
  const auto ref = chain();
  std::vector<std::string> outs;
  for (int i = 0; i < depth; ++i) outs.push_back("c" + std::to_string(i));
  auto calib = chain_data(32, 3);
  const auto want = quench::pipeline::layer_output_means(ref, calib, outs);
  auto build = [&](bool correct) {
    auto m = chain();
    auto data = chain_data(32, 3);
    quench::pipeline::quantize_options o;
    o.profile.per_channel = false;  // coarse weights: every layer shifts its mean
    o.correct_bias = correct;
    o.bias_correction.samples = 32;
    o.bias_correction.passes = 1;
    auto r = quench::pipeline::quantize_static(m, data, o);
    return std::make_pair(std::move(m), std::move(r));
  };
  // Largest |float mean - QDQ mean| over every layer's channels, on the calibration samples.
  auto gap = [&](const quench::model& q) {
    const auto got = quench::pipeline::layer_output_means(q, calib, outs);
    double worst = 0;
    for (const auto& name : outs)
      for (std::size_t k = 0; k < want.at(name).size(); ++k) worst = std::max(worst, std::fabs(want.at(name)[k] - got.at(name)[k]));
    return worst;
  };
  auto [plain, rp] = build(false);
  auto [fixed, rf] = build(true);
  REQUIRE(rf.bias_correction.layers.size() == static_cast<std::size_t>(depth));
  CHECK(rf.bias_correction.passes == 1);  // one run of the QDQ model for all 8 layers
  const double before = gap(plain), after = gap(fixed);
  MESSAGE("largest layer mean gap: " << before << " plain, " << after << " corrected");
  // Each layer is measured once every layer above it is corrected, so only the int32 rounding of
  // its own bias (half a step of input scale x weight scale) is left. Correcting all layers from
  // one measurement would leave each layer off by what the layers above it removed.
  CHECK(before > 0.01);
  CHECK(after < 2e-3);
  CHECK(after < before / 10);
  auto eval = chain_data(16, 99);
  const double sqnr_plain = quench::pipeline::compare_models(ref, plain, eval, {}).output_sqnr_db();
  const double sqnr_fixed = quench::pipeline::compare_models(ref, fixed, eval, {}).output_sqnr_db();
  MESSAGE("output SQNR on held-out samples: " << sqnr_plain << " dB plain, " << sqnr_fixed << " dB corrected");
  CHECK(sqnr_fixed > sqnr_plain);
  // A second sweep only removes rounding: no layer moves by more than a few int32 steps.
  auto m2 = chain();
  auto d2 = chain_data(32, 3);
  quench::pipeline::quantize_options o2;
  o2.profile.per_channel = false;
  o2.correct_bias = true;
  o2.bias_correction.samples = 32;
  o2.bias_correction.passes = 2;
  const auto r2 = quench::pipeline::quantize_static(m2, d2, o2);
  CHECK(r2.bias_correction.passes == 2);
  CHECK(gap(m2) < 2e-3);
  for (std::size_t i = 0; i < rf.bias_correction.layers.size(); ++i) {
    // The second run's changes are int32 rounding only: far below the first run's.
    const double second = r2.bias_correction.layers[i].max_shift - rf.bias_correction.layers[i].max_shift;
    CHECK(std::fabs(second) < 0.1 * rf.bias_correction.layers[i].max_shift + 1e-3);
  }
}

TEST_CASE("correct_biases refuses zero passes, samples or batch size") {
  auto m = chain();
  auto data = chain_data(4, 1);
  quench::pipeline::bias_correction_options o;
  o.passes = 0;
  CHECK_THROWS_AS(quench::pipeline::correct_biases(m, {}, data, o), quench::error);
}
