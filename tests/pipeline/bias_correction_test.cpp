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

/// x [N,3,10,10] -> Conv 3x3 -> BatchNorm -> Relu -> Conv 3x3 -> BatchNorm -> LeakyRelu 0.1 -> Conv
/// 1x1 -> y, with each BatchNorm's mean and var those of its input on the data `stats_of` gives
/// (so that its output really is about N(B, scale^2), as after training).
quench::model bn_chain(const std::vector<std::vector<float>>& mean, const std::vector<std::vector<float>>& var) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  quench::value* v = &g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{10, {}}, quench::dim{10, {}}});
  const std::int64_t in[2] = {3, 8};
  for (int i = 0; i < 2; ++i) {
    const std::string k = std::to_string(i + 1);
    auto& w = g.add_initializer(quench_test::random_tensor({8, in[i], 3, 3}, "W" + k, 70 + static_cast<std::uint32_t>(i), 0.3f));
    auto& b = g.add_initializer(quench_test::random_tensor({8}, "B" + k, 80 + static_cast<std::uint32_t>(i), 0.1f));
    auto& c = g.add_node("Conv", {v, &w, &b}, {"c" + k}, "conv" + k);
    // No padding: data-free correction assumes every position of a layer's input has the same
    // distribution, which zero-padded borders break (on maps this small they are almost half).
    auto& gamma = g.add_initializer(quench_test::random_tensor({8}, "gamma" + k, 90 + static_cast<std::uint32_t>(i), 0.5f, 1.f));
    auto& beta = g.add_initializer(quench_test::random_tensor({8}, "beta" + k, 95 + static_cast<std::uint32_t>(i), 1.f, 0.2f));
    auto vector_tensor = [](const std::vector<float>& values, const std::string& name) {
      quench::tensor t(quench::dtype::float32, {static_cast<std::int64_t>(values.size())}, name);
      std::copy(values.begin(), values.end(), t.view<float>().begin());
      return t;
    };
    auto& mu = g.add_initializer(vector_tensor(mean[static_cast<std::size_t>(i)], "mean" + k));
    auto& var_t = g.add_initializer(vector_tensor(var[static_cast<std::size_t>(i)], "var" + k));
    auto& bn = g.add_node("BatchNormalization", {c.output(0), &gamma, &beta, &mu, &var_t}, {"b" + k}, "bn" + k);
    auto& act = i == 0 ? g.add_node("Relu", {bn.output(0)}, {"a" + k}, "relu" + k) : g.add_node("LeakyRelu", {bn.output(0)}, {"a" + k}, "leaky" + k);
    if (i == 1) act.set_attribute(quench::attribute::make_float("alpha", 0.1f));
    v = act.output(0);
  }
  auto& w3 = g.add_initializer(quench_test::random_tensor({4, 8, 1, 1}, "W3", 77, 0.4f));
  auto& b3 = g.add_initializer(quench_test::random_tensor({4}, "B3", 78, 0.1f));
  g.add_output(*g.add_node("Conv", {v, &w3, &b3}, {"y"}, "conv3").output(0));
  return m;
}

quench::data::tensor_source chain_data(std::int64_t n, std::uint32_t seed) {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({n, 4, 8, 8}, "x", seed, 1.f, 0.5f));
  return quench::data::tensor_source(std::move(in));
}
quench::data::tensor_source chain_data3(std::int64_t n, std::uint32_t seed) {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({n, 3, 10, 10}, "x", seed, 1.f, 0.5f));
  return quench::data::tensor_source(std::move(in));
}

/// chain() quantized with `o` on its 32 calibration samples.
std::pair<quench::model, quench::pipeline::quantize_report> quantized_chain(const quench::pipeline::quantize_options& o) {
  auto m = chain();
  auto data = chain_data(32, 3);
  auto r = quench::pipeline::quantize_static(m, data, o);
  return std::make_pair(std::move(m), std::move(r));
}

/// Largest |float mean - QDQ mean| over every layer's channels of chain(), on the calibration samples.
double largest_mean_gap(const quench::model& q) {
  std::vector<std::string> outs;
  for (int i = 0; i < depth; ++i) outs.push_back("c" + std::to_string(i));
  auto calib = chain_data(32, 3);
  const auto want = quench::pipeline::layer_output_means(chain(), calib, outs);
  const auto got = quench::pipeline::layer_output_means(q, calib, outs);
  double worst = 0;
  for (const auto& name : outs)
    for (std::size_t k = 0; k < want.at(name).size(); ++k) worst = std::max(worst, std::fabs(want.at(name)[k] - got.at(name)[k]));
  return worst;
}
}  // namespace

TEST_CASE("bias correction goes layer by layer in one run: every layer's output mean matches the float model's; a second run removes only rounding") {
  const auto ref = chain();
  auto build = [&](bool correct) {
    quench::pipeline::quantize_options o;
    o.profile.per_channel = false;  // coarse weights: every layer shifts its mean
    o.correct_bias = correct;
    o.bias_correction.samples = 32;
    o.bias_correction.passes = 1;
    return quantized_chain(o);
  };
  auto gap = largest_mean_gap;
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

TEST_CASE("data-free bias correction: the expected input through an activation is the Gaussian's") {
  // y ~ N(0.3, 0.8^2) -> Relu: E = mu Phi(mu / sd) + sd phi(mu / sd).
  quench::graph g;
  auto& y = g.add_input("y", 1);
  auto& r = g.add_node("Relu", {&y}, {"r"});
  auto& q = g.add_node("QuantizeLinear", {r.output(0)}, {"q"});
  auto& d = g.add_node("DequantizeLinear", {q.output(0)}, {"d"});
  quench::passes::batch_norm_statistics stats;
  stats["y"] = {{0.3, -1.0}, {0.8, 0.0}};
  const auto e = quench::pipeline::detail::expected_input(d.output(0), stats, 13);
  REQUIRE(e.size() == 2);
  const double mu = 0.3, sd = 0.8, a = mu / sd;
  const double want = mu * 0.5 * std::erfc(-a / std::sqrt(2.0)) + sd * std::exp(-0.5 * a * a) / std::sqrt(2 * 3.14159265358979323846);
  CHECK(e[0] == doctest::Approx(want).epsilon(1e-5));  // Simpson's rule across Relu's kink
  CHECK(e[1] == 0.0);  // a constant channel: Relu(-1)
  stats.clear();
  CHECK(quench::pipeline::detail::expected_input(d.output(0), stats, 13).empty());  // no statistics upstream
}

TEST_CASE("data-free bias correction from folded BatchNorm statistics moves layer output means towards the float model's without data") {
  auto data = [] { return chain_data3(256, 5); };
  // BatchNorm statistics that match the data: measure each conv's output, then set its BatchNorm.
  std::vector<std::vector<float>> mean(2, std::vector<float>(8, 0.f)), var(2, std::vector<float>(8, 1.f));
  for (int layer = 0; layer < 2; ++layer) {
    const auto m = bn_chain(mean, var);
    auto d = data();
    const auto mv = quench_test::channel_moments(m, d, "c" + std::to_string(layer + 1));
    mean[static_cast<std::size_t>(layer)] = mv.first;
    var[static_cast<std::size_t>(layer)] = mv.second;
  }
  const auto ref = bn_chain(mean, var);
  const std::vector<std::string> outs{"b2", "y"};  // conv2 and conv3 outputs (conv1 reads the raw input: no statistics)
  auto calib = data();
  const auto want = quench::pipeline::layer_output_means(ref, calib, outs, [] {
    quench::pipeline::bias_correction_options o;
    o.samples = 256;
    return o;
  }());
  auto gap = [&](const quench::model& q, const std::string& name) {
    auto d = data();
    quench::pipeline::bias_correction_options o;
    o.samples = 256;
    const auto got = quench::pipeline::layer_output_means(q, d, {name}, o);
    double worst = 0;
    for (std::size_t k = 0; k < want.at(name).size(); ++k) worst = std::max(worst, std::fabs(want.at(name)[k] - got.at(name)[k]));
    return worst;
  };
  for (const std::string profile : {"weight-only", "ort"}) {
    CAPTURE(profile);
    auto build = [&](bool correct) {
      auto m = bn_chain(mean, var);
      auto d = data();
      quench::pipeline::quantize_options o;
      o.profile = quench::pipeline::profile_by_name(profile);
      o.profile.per_channel = false;  // coarse weights: large shifts
      o.correct_bias_data_free = correct;
      // conv1 reads the raw input (no statistics) and stays float, so its rounding does not
      // shift the inputs of the layers corrected here.
      o.placement.exclude_nodes = {"conv1"};
      auto r = quench::pipeline::quantize_static(m, d, o);
      return std::make_pair(std::move(m), std::move(r));
    };
    auto [plain, rp] = build(false);
    auto [fixed, rf] = build(true);
    CHECK(rf.bias_correction.data_free);
    CHECK(rf.bias_correction.passes == 0);
    REQUIRE(rf.bias_correction.layers.size() == 2);  // conv2 and conv3
    for (const auto& name : outs) {
      const double before = gap(plain, name), after = gap(fixed, name);
      MESSAGE(profile << " " << name << ": largest mean gap " << before << " plain, " << after << " data-free corrected");
      CHECK(before > 0.005);
      // Weight rounding is what data-free correction models: with float activations it removes
      // nearly all of the shift (measured: 98-99 %); quantized activations add a shift of their
      // own that it does not see (measured: 84-98 % removed).
      CHECK(after < (profile == "weight-only" ? 0.05 : 0.25) * before);
    }
  }
}

TEST_CASE("correct_biases refuses zero passes, samples or batch size") {
  auto m = chain();
  auto data = chain_data(4, 1);
  quench::pipeline::bias_correction_options o;
  o.passes = 0;
  CHECK_THROWS_AS(quench::pipeline::correct_biases(m, {}, data, o), quench::error);
}

TEST_CASE("bias correction with weight-only quantization: float biases matched to the float model, and it refuses to run without data") {
  const auto ref = chain();
  auto build = [&](bool correct) {
    quench::pipeline::quantize_options o;
    o.profile = quench::pipeline::profile_by_name("weight-only");
    o.profile.per_channel = false;
    o.profile.weight_type = quench::dtype::int4;  // coarse weights, and int4 needs a newer opset
    o.correct_bias = correct;
    o.bias_correction.samples = 32;
    return quantized_chain(o);
  };
  auto gap = largest_mean_gap;
  auto [plain, rp] = build(false);
  auto [fixed, rf] = build(true);
  CHECK(rp.bias_correction.layers.empty());
  REQUIRE(rf.bias_correction.layers.size() == static_cast<std::size_t>(depth));
  // The biases stay float initializers: no input scale to put an int32 bias on.
  for (const quench::node* n : fixed.main_graph().nodes())
    if (n->is("Conv")) CHECK(n->input(2)->is_initializer());
  const double before = gap(plain), after = gap(fixed);
  MESSAGE("weight-only int4: largest layer mean gap " << before << " plain, " << after << " corrected");
  CHECK(before > 0.01);
  CHECK(after < 1e-4);  // float biases: no int32 rounding is left
  auto eval = chain_data(16, 99);
  CHECK(quench::pipeline::compare_models(ref, fixed, eval, {}).output_sqnr_db() >
        quench::pipeline::compare_models(ref, plain, eval, {}).output_sqnr_db());
  // Without samples there is nothing to measure: an error, not a silent no-op.
  auto m = chain();
  quench::pipeline::quantize_options o;
  o.profile = quench::pipeline::profile_by_name("weight-only");
  o.correct_bias = true;
  CHECK_THROWS_WITH_AS(quench::pipeline::quantize_static(m, o), doctest::Contains("bias correction"), quench::error);
}
