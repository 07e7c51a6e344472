#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/fallback.hpp"
#include "quench/pipeline/quantize_static.hpp"

using quench::dtype;
using quench::pipeline::profile_by_name;
using quench::pipeline::quantize_options;
using quench::pipeline::quantize_static;

namespace {
const quench::tensor& init(const quench::model& m, const std::string& name) {
  const quench::value* v = m.main_graph().find_value(name);
  REQUIRE_MESSAGE(v, name);
  REQUIRE_MESSAGE(v->initializer(), name);
  return *v->initializer();
}

double output_sqnr(const quench::model& ref, const quench::model& q, quench::data::sample_source& data) {
  return quench::pipeline::compare_models(ref, q, data, {}).output_sqnr_db();
}
}  // namespace

TEST_CASE("quantize_static ort: ONNX Runtime's layout, int32 bias = round(b / (sx * sw)), output close to float") {
  const auto ref = quench_test::residual_cnn();
  auto m = quench_test::residual_cnn();
  auto data = quench_test::residual_cnn_data(32);
  const auto r = quantize_static(m, data, quantize_options{});
  const auto& g = m.main_graph();
  CHECK(r.calibration_samples == 32);
  CHECK(r.inserted.biases == std::vector<std::string>{"B1", "B2", "B3"});
  // Every Q/DQ has its three inputs; activation scales are scalars.
  int q = 0, dq = 0;
  for (const quench::node* n : g.nodes()) {
    if (n->op_type() == "QuantizeLinear") {
      ++q;
      CHECK(n->inputs().size() == 3);
      CHECK(n->input(1)->initializer()->rank() == 0);
      CHECK(n->input(2)->initializer()->dtype() == dtype::uint8);
    }
    if (n->op_type() == "DequantizeLinear") {
      ++dq;
      CHECK(n->inputs().size() == 3);
    }
    CHECK(n->op_type() != "Relu");  // both absorbed
  }
  CHECK(q == 8);           // x, c1, p, c2, s, f, logits, y (p and f reuse c1's and s's parameters)
  CHECK(dq == q + 3 + 3);  // and the 3 weights and 3 biases
  // The bias of conv2 from the scale of its input (the pool output, shared with c1) and W2's scales.
  const float sx = init(m, "c1_scale").view<float>()[0];
  const auto& ws = init(m, "W2_scale");
  const auto& bq = init(m, "B2_quantized");
  const auto& bs = init(m, "B2_quantized_scale");
  const auto& b0 = init(ref, "B2");
  REQUIRE(bq.dtype() == dtype::int32);
  REQUIRE(bs.size() == 4);
  for (std::size_t c = 0; c < 4; ++c) {
    const float s = sx * ws.view<float>()[c];
    CHECK(bs.view<float>()[c] == s);
    CHECK(bq.view<std::int32_t>()[c] == static_cast<std::int32_t>(std::nearbyint(double(b0.view<float>()[c]) / double(s))));
  }
  CHECK(init(m, "B2_quantized_zero_point").dtype() == dtype::int32);
  CHECK(g.find_value("y")->producer()->op_type() == "DequantizeLinear");  // the graph output keeps its name
  CHECK(g.find_value("y")->elem_type() == ref.main_graph().find_value("y")->elem_type());
  bool meta = false;
  for (const auto& [k, v] : m.metadata_props) meta = meta || (k == "quench.quantize" && v.find("profile=ort") != std::string::npos);
  CHECK(meta);
  auto eval = quench_test::residual_cnn_data(8, 99);
  CHECK(output_sqnr(ref, m, eval) > 25);
}

TEST_CASE("quantize_static: deterministic, methods, tensorrt, fp8, int16 override, weight-only int4 blocked") {
  const auto ref = quench_test::residual_cnn();
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto run = [&](quantize_options o) {
    auto m = quench_test::residual_cnn();
    auto data = quench_test::residual_cnn_data(32);
    auto r = quantize_static(m, data, o);
    return std::make_pair(std::move(m), std::move(r));
  };
  SUBCASE("the same inputs give the same ranges and parameters") {
    auto [a, ra] = run({});
    auto [b, rb] = run({});
    REQUIRE(ra.tensors.size() == rb.tensors.size());
    for (std::size_t i = 0; i < ra.tensors.size(); ++i) {
      CHECK(ra.tensors[i].scale == rb.tensors[i].scale);
      CHECK(ra.tensors[i].zero_point == rb.tensors[i].zero_point);
    }
  }
  SUBCASE("every range method gives a usable model") {
    for (auto method : {quench::calib::method::minmax, quench::calib::method::entropy, quench::calib::method::percentile,
                        quench::calib::method::mse}) {
      quantize_options o;
      o.select_ranges = false;
      o.calibration.method = method;
      auto [m, r] = run(o);
      CAPTURE(quench::calib::method_name(method));
      CHECK(output_sqnr(ref, m, eval) > 12);
      for (const auto& t : r.tensors) CHECK((t.method == quench::calib::method_name(method) || t.method == "shared" || t.method == "fixed"));
    }
  }
  SUBCASE("by default each tensor gets the method with the smallest quantization error, and all are listed") {
    auto [m, r] = run({});
    int selected = 0;
    for (const auto& t : r.tensors) {
      if (!t.shared_with.empty() || t.method == "fixed") continue;
      REQUIRE(t.candidates.size() >= 4);
      CHECK(t.method == t.candidates.front().method);
      CHECK(t.range == t.candidates.front().range);
      for (const auto& c : t.candidates) CHECK(c.error >= t.candidates.front().error);
      ++selected;
    }
    CHECK(selected == 5);  // x, r1 (for c1), c2, r2 (for s), logits
    CHECK(output_sqnr(ref, m, eval) > 25);
  }
  SUBCASE("tensorrt: int8, zero points 0, float biases") {
    quantize_options o;
    o.profile = profile_by_name("tensorrt");
    auto [m, r] = run(o);
    CHECK(r.inserted.biases.empty());
    for (const quench::node* n : m.main_graph().nodes()) {
      if (n->op_type() != "QuantizeLinear" && n->op_type() != "DequantizeLinear") continue;
      const auto& z = *n->input(2)->initializer();
      REQUIRE(z.dtype() == dtype::int8);
      for (auto v : z.view<std::int8_t>()) CHECK(v == 0);
    }
    CHECK(output_sqnr(ref, m, eval) > 25);
  }
  SUBCASE("fp8 upgrades to opset 19 and writes float8e4m3fn") {
    quantize_options o;
    o.profile = profile_by_name("fp8");
    auto [m, r] = run(o);
    CHECK(r.opset_before == 13);
    CHECK(m.opset() == 19);
    CHECK(init(m, "W1_quantized").dtype() == dtype::float8e4m3fn);
    CHECK(output_sqnr(ref, m, eval) > 15);
  }
  SUBCASE("an int16 activation upgrades to opset 21") {
    quantize_options o;
    o.type_overrides["c2"] = dtype::int16;
    auto [m, r] = run(o);
    CHECK(m.opset() == 21);
    CHECK(init(m, "c2_zero_point").dtype() == dtype::int16);
    CHECK(output_sqnr(ref, m, eval) > 25);
  }
  SUBCASE("uint16 activations for the whole profile upgrade to opset 21") {
    quantize_options o;
    o.profile.activation_type = dtype::uint16;
    auto [m, r] = run(o);
    CHECK(r.opset_before == 13);
    CHECK(m.opset() == 21);
    CHECK(init(m, "c2_zero_point").dtype() == dtype::uint16);
    CHECK(output_sqnr(ref, m, eval) > 35);  // 16-bit activations: only the int8 weights are coarse
  }
  SUBCASE("range override") {
    quantize_options o;
    o.range_overrides["c2"] = {-0.5, 0.5};
    auto [m, r] = run(o);
    for (const auto& t : r.tensors)
      if (t.name == "c2") {
        CHECK(t.method == "override");
        CHECK(t.scale == doctest::Approx(1.0 / 255));
      }
  }
  SUBCASE("weight-only int4 blocked along the reduction axis") {
    auto m = quench_test::residual_cnn();
    quantize_options o;
    o.profile = profile_by_name("weight-only");
    o.profile.weight_type = dtype::int4;
    o.profile.block_size = 32;
    const auto r = quantize_static(m, o);
    CHECK(m.opset() == 21);
    const auto& w3 = init(m, "W3_quantized");
    CHECK(w3.dtype() == dtype::int4);
    CHECK(init(m, "W3_scale").shape() == quench::shape{10, 2});  // [N, K / 32] for transB = 1
    const quench::node* dq = m.main_graph().find_value("W3_DequantizeLinear_Output")->producer();
    CHECK(dq->attr_int("block_size", 0) == 32);
    CHECK(dq->attr_int("axis", 0) == 1);
    CHECK(r.inserted.weights == std::vector<std::string>{"W3"});  // blocked 4-bit is for Gemm/MatMul
    CHECK(r.inserted.weight_bytes_after * 5 < r.inserted.weight_bytes_before);
    CHECK(output_sqnr(ref, m, eval) > 15);
  }
}

TEST_CASE("quantize_static refuses what it cannot do, naming it, and leaves nothing half-done in the report") {
  auto m = quench_test::residual_cnn();
  SUBCASE("NaN everywhere") {
    std::vector<std::pair<std::string, quench::tensor>> in;
    quench::tensor x(dtype::float32, {4, 3, 8, 8}, "x");
    for (auto& v : x.view<float>()) v = NAN;
    in.emplace_back("x", std::move(x));
    quench::data::tensor_source data(std::move(in));
    CHECK_THROWS_WITH(quantize_static(m, data, {}), doctest::Contains("'x'"));
  }
  SUBCASE("data for an input the model does not have") {
    std::vector<std::pair<std::string, quench::tensor>> in;
    in.emplace_back("image", quench_test::random_tensor({4, 3, 8, 8}, "image", 1));
    quench::data::tensor_source data(std::move(in));
    CHECK_THROWS_WITH(quantize_static(m, data, {}), doctest::Contains("image"));
  }
  SUBCASE("a table without a needed tensor") {
    quench::calib::calibration_table t;
    quantize_options o;
    o.table = &t;
    auto data = quench_test::residual_cnn_data(4);
    CHECK_THROWS_WITH(quantize_static(m, data, o), doctest::Contains("calibration table has no range"));
  }
  SUBCASE("the weight-only entry point refuses calibrated profiles") {
    CHECK_THROWS_WITH(quantize_static(m, quantize_options{}), doctest::Contains("needs calibration data"));
  }
}

TEST_CASE("error report: per-tensor SQNR worst first; fallback never makes the output worse") {
  const auto ref = quench_test::residual_cnn();
  auto m = quench_test::residual_cnn();
  auto data = quench_test::residual_cnn_data(32);
  const auto r = quantize_static(m, data, {});
  auto eval = quench_test::residual_cnn_data(8, 99);
  const auto e = quench::pipeline::compare_models(ref, m, eval, r.inserted.dq_of);
  CHECK(e.samples == 8);
  REQUIRE(e.tensors.size() == r.inserted.dq_of.size());  // every quantized activation, the input included
  for (std::size_t i = 1; i < e.tensors.size(); ++i) CHECK(e.tensors[i - 1].sqnr_db() <= e.tensors[i].sqnr_db());
  for (const auto& t : e.tensors) {
    CHECK(t.cosine() > 0.9);
    CHECK(t.max_abs_error > 0);
    CHECK(t.elements > 0);
  }
  REQUIRE(e.outputs.size() == 1);
  CHECK(e.outputs[0].name == "y");

  quench::pipeline::fallback_options fo;
  fo.target_sqnr_db = 1000;  // unreachable: keeps going up to max_fallback
  fo.max_fallback = 2;
  auto load = [] { return quench_test::residual_cnn(); };
  auto calib = quench_test::residual_cnn_data(32);
  const auto fr = quench::pipeline::quantize_with_fallback(load, calib, eval, {}, fo);
  CHECK_FALSE(fr.target_met);
  CHECK(fr.sensitivity.size() >= 4);
  CHECK(fr.fell_back.size() <= 2);
  for (std::size_t i = 0; i < fr.sqnr_after.size(); ++i) CHECK(fr.sqnr_after[i] > (i ? fr.sqnr_after[i - 1] : fr.initial_sqnr_db));
  for (std::size_t i = 1; i < fr.sensitivity.size(); ++i) CHECK(fr.sensitivity[i - 1].sqnr_db >= fr.sensitivity[i].sqnr_db);
  CHECK(fr.errors.output_sqnr_db() >= fr.initial_sqnr_db);
}

TEST_CASE("bias correction: layer output means match the float model's; never worse on this model; TensorRT keeps float biases") {
  const auto ref = quench_test::residual_cnn();
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto build = [&](bool correct, const char* profile) {
    auto m = quench_test::residual_cnn();
    auto data = quench_test::residual_cnn_data(32);
    quantize_options o;
    o.profile = profile_by_name(profile);
    o.profile.per_channel = false;  // larger weight error, larger mean shift to correct
    o.correct_bias = correct;
    auto r = quantize_static(m, data, o);
    return std::make_pair(std::move(m), std::move(r));
  };
  auto [plain, rp] = build(false, "ort");
  auto [fixed, rf] = build(true, "ort");
  CHECK(rp.bias_correction.layers.empty());
  CHECK(rf.bias_correction.layers.size() == 3);  // conv1, conv2, gemm
  CHECK(rf.bias_correction.passes == 1);
  // The corrected means: measured again on the calibration samples, closer to the float ones.
  auto calib = quench_test::residual_cnn_data(32);
  const std::vector<std::string> outs{"c1", "c2", "logits"};
  const auto want = quench::pipeline::layer_output_means(ref, calib, outs);
  auto gap = [&](const quench::model& q) {
    const auto got = quench::pipeline::layer_output_means(q, calib, {"c2"});
    double worst = 0;
    for (std::size_t k = 0; k < want.at("c2").size(); ++k) worst = std::max(worst, std::fabs(want.at("c2")[k] - got.at("c2")[k]));
    return worst;
  };
  CHECK(gap(fixed) < gap(plain));
  CHECK(output_sqnr(ref, fixed, eval) > output_sqnr(ref, plain, eval) - 0.5);
  auto [trt, rt] = build(true, "tensorrt");
  for (const quench::node* n : trt.main_graph().nodes())
    if (n->op_type() == "DequantizeLinear" && n->input(0)->initializer()) CHECK(n->input(0)->initializer()->dtype() != dtype::int32);
  CHECK(rt.bias_correction.layers.size() == 3);
}

TEST_CASE("quantize_static: given activation and weight qparams (QAT, AdaRound) are used as they are") {
  auto plain = quench_test::residual_cnn();
  auto data = quench_test::residual_cnn_data(16);
  quantize_static(plain, data, quantize_options{});
  const quench::tensor& w2q = init(plain, "W2_quantized");
  const quench::tensor& w2s = init(plain, "W2_scale");

  auto m = quench_test::residual_cnn();
  quantize_options o;
  o.activation_params["x"] = quench::qparams::per_tensor(dtype::uint8, 0.0625f, 100);
  std::vector<float> scales(w2s.view<float>().begin(), w2s.view<float>().end());
  for (float& s : scales) s *= 2.f;
  o.weight_params["W2"] = quench::qparams::per_axis(dtype::int8, 0, scales);
  auto given = std::make_shared<quench::tensor>(w2q.clone());  // nearest-rounded, one element changed
  given->view<std::int8_t>()[0] = static_cast<std::int8_t>(given->view<std::int8_t>()[0] == 5 ? 6 : 5);
  const quench::tensor& values = *given;
  o.weight_values["W2"] = given;
  auto data2 = quench_test::residual_cnn_data(16);
  const auto r = quantize_static(m, data2, o);
  CHECK(init(m, "x_scale").view<float>()[0] == 0.0625f);
  CHECK(init(m, "x_zero_point").view<std::uint8_t>()[0] == 100);
  for (std::size_t c = 0; c < scales.size(); ++c) CHECK(init(m, "W2_scale").view<float>()[c] == scales[c]);
  const quench::tensor& got = init(m, "W2_quantized");
  REQUIRE(got.size() == values.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got.view<std::int8_t>()[i] == values.view<std::int8_t>()[i]);
  // Not given: calibrated and rounded as before.
  CHECK(init(m, "W1_quantized").view<std::int8_t>()[3] == init(plain, "W1_quantized").view<std::int8_t>()[3]);
  bool reported = false;
  for (const auto& t : r.tensors) reported = reported || (t.name == "x" && t.method == "given");
  CHECK(reported);
  // A per-channel weight on the wrong axis is refused, naming the weight.
  auto bad = quench_test::residual_cnn();
  quantize_options ob;
  ob.weight_params["W2"] = quench::qparams::per_axis(dtype::int8, 1, {1.f, 1.f});
  auto data3 = quench_test::residual_cnn_data(4);
  CHECK_THROWS_WITH(quantize_static(bad, data3, ob), doctest::Contains("W2"));
}

TEST_CASE("mixed precision: int16 activations tried before float; the float budget holds; never worse") {
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto calib = quench_test::residual_cnn_data(32);
  auto load = [] { return quench_test::residual_cnn(); };
  quench::pipeline::fallback_options fo;
  fo.target_sqnr_db = 1000;  // unreachable: widens up to max_fallback
  fo.max_fallback = 3;
  fo.try_int16 = true;
  fo.max_float = 0;  // int16 only
  const auto r = quench::pipeline::quantize_with_fallback(load, calib, eval, {}, fo);
  REQUIRE_FALSE(r.fell_back.empty());
  REQUIRE(r.precision.size() == r.fell_back.size());
  for (const auto& p : r.precision) CHECK(p == "int16");
  REQUIRE_FALSE(r.int16_tensors.empty());
  CHECK(r.quantized.opset() == 21);  // 16-bit QuantizeLinear
  // Every widened tensor is uint16 in the report and its QuantizeLinear writes uint16.
  for (const auto& name : r.int16_tensors) {
    bool found = false;
    for (const auto& t : r.report.tensors)
      if (t.name == name) {
        found = true;
        CHECK(t.type == dtype::uint16);
      }
    CHECK_MESSAGE(found, name);
  }
  for (std::size_t i = 0; i < r.sqnr_after.size(); ++i) CHECK(r.sqnr_after[i] > (i ? r.sqnr_after[i - 1] : r.initial_sqnr_db));
  // 16-bit inputs buy real precision on this model: at least 3 dB over all-int8.
  CHECK(r.errors.output_sqnr_db() > r.initial_sqnr_db + 3);
  // With float allowed, the choice per layer is reported either way.
  fo.max_float = -1;
  const auto mixed = quench::pipeline::quantize_with_fallback(load, calib, eval, {}, fo);
  CHECK(mixed.errors.output_sqnr_db() >= mixed.initial_sqnr_db);
  for (const auto& p : mixed.precision) CHECK((p == "int16" || p == "float"));
}

TEST_CASE("quantize_static adaround: every weight optimized with weight_qparams' scales, its integers written as they are") {
  auto m = quench_test::residual_cnn();
  auto data = quench_test::residual_cnn_data(16);
  quantize_options o;
  o.adaround = true;
  o.adaround_options.iterations = 300;
  const auto r = quantize_static(m, data, o);
  REQUIRE(r.adaround.layers.size() == 3);
  REQUIRE(r.adaround_params.size() == 3);
  for (const char* w : {"W1", "W2", "W3"}) {
    REQUIRE(r.adaround.values.count(w));
    const quench::tensor& want = *r.adaround.values.at(w);
    const quench::tensor& got = init(m, std::string(w) + "_quantized");
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got.view<std::int8_t>()[i] == want.view<std::int8_t>()[i]);
    const auto& p = r.adaround_params.at(w);
    for (std::size_t c = 0; c < p.scales.size(); ++c) CHECK(init(m, std::string(w) + "_scale").view<float>()[c] == p.scales[c]);
  }
  bool meta = false;
  for (const auto& [k, v] : m.metadata_props) meta = meta || (k == "quench.quantize" && v.find("adaround=1") != std::string::npos);
  CHECK(meta);
}

TEST_CASE("quantize_static W4A8: per-channel int4 weights at opset 21 (upgraded), values in [-8, 7], output still close") {
  const auto ref = quench_test::residual_cnn();
  auto m = quench_test::residual_cnn();
  auto data = quench_test::residual_cnn_data(16);
  quantize_options o;
  o.profile.weight_type = dtype::int4;
  const auto r = quantize_static(m, data, o);
  CHECK(r.opset_before == 13);
  CHECK(m.opset() == 21);
  const quench::tensor& w = init(m, "W2_quantized");
  CHECK(w.dtype() == dtype::int4);
  CHECK(init(m, "W2_scale").size() == 4);  // per output channel
  auto eval = quench_test::residual_cnn_data(8, 99);
  const double sqnr = output_sqnr(ref, m, eval);
  MESSAGE("W4A8 per channel: " << sqnr << " dB");
  CHECK(sqnr > 10);
}

TEST_CASE("quantize_static reduce_range: int8 weights on [-64, 64], each channel reaching 64 (min-max) or clipped into it (MSE)") {
  const auto ref = quench_test::residual_cnn();
  for (const auto method : {quench::pipeline::weight_method::minmax, quench::pipeline::weight_method::mse}) {
    CAPTURE(static_cast<int>(method));
    auto m = quench_test::residual_cnn();
    auto data = quench_test::residual_cnn_data(16);
    quantize_options o;
    o.profile.weight_reduce_range = true;
    o.weights = method;
    quantize_static(m, data, o);
    for (const char* name : {"W1_quantized", "W2_quantized", "W3_quantized"}) {
      const quench::tensor& w = init(m, name);
      REQUIRE(w.dtype() == dtype::int8);
      int lo = 0, hi = 0;
      for (std::int8_t v : w.view<std::int8_t>()) lo = std::min<int>(lo, v), hi = std::max<int>(hi, v);
      CHECK(lo >= -64);
      CHECK(hi <= 64);
      if (method == quench::pipeline::weight_method::minmax) CHECK(std::max(-lo, hi) == 64);  // symmetric max |w| / 64
    }
    auto eval = quench_test::residual_cnn_data(8, 99);
    const double sqnr = output_sqnr(ref, m, eval);
    MESSAGE("reduce_range: " << sqnr << " dB");
    CHECK(sqnr > 20);
  }
}

TEST_CASE("error report of a QDQ model: float tensors clamped to the saturation bounds their quantizers were planned with") {
  const auto ref = quench_test::saturating_chain();
  auto m = quench_test::saturating_chain();
  auto samples = [](std::int64_t n, std::uint32_t seed) {
    std::vector<std::pair<std::string, quench::tensor>> in;
    in.emplace_back("x", quench_test::random_tensor({n, 2, 6, 6}, "x", seed, 3.f));  // c1 goes well below -2
    return quench::data::tensor_source(std::move(in));
  };
  auto data = samples(16, 5);
  quantize_options o;
  o.calibration.batch_size = 1;
  o.select_ranges = false;  // min-max: the bound alone narrows c1's range
  o.calibration.method = quench::calib::method::minmax;
  const auto r = quantize_static(m, data, o);
  // c1's DQ output carries the bound LeakyRelu(0.2) -> Max(x, -0.4) puts on it.
  std::string c1;
  for (const auto& [dq, of] : r.inserted.dq_of)
    if (of == "c1") c1 = dq;
  REQUIRE(!c1.empty());
  REQUIRE(r.inserted.bounds.count(c1));
  CHECK(r.inserted.bounds.at(c1).first == doctest::Approx(-2.f));
  auto eval = samples(8, 77);
  const auto raw = quench::pipeline::compare_models(ref, m, eval, r.inserted.dq_of);
  const auto seen = quench::pipeline::compare_quantized(ref, m, eval, r.inserted);
  auto find = [&](const quench::pipeline::model_error_report& e) {
    for (const auto& t : e.tensors)
      if (t.name == "c1") return t;
    FAIL("no c1 in the report");
    return quench::pipeline::tensor_error{};
  };
  const double unclamped = find(raw).sqnr_db(), clamped = find(seen).sqnr_db();
  MESSAGE("c1: " << unclamped << " dB against the float tensor, " << clamped << " dB against what its consumers see");
  CHECK(unclamped < 15);       // the cut below -2 counted as error
  CHECK(clamped > unclamped + 10);  // against the clamped tensor only rounding is left
  // The outputs are compared as they are, by both.
  REQUIRE(raw.outputs.size() == seen.outputs.size());
  for (std::size_t i = 0; i < raw.outputs.size(); ++i) CHECK(raw.outputs[i].sqnr_db() == seen.outputs[i].sqnr_db());
}
