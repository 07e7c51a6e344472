#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pipeline_test_models.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/pipeline/fold_qdq.hpp"
#include "quench/pipeline/qat_export.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/runtime/executor.hpp"

using quench::dtype;
using quench::pipeline::export_qat;
using quench::pipeline::qat_params;
using quench::pipeline::qat_tensor_params;

namespace {

const quench::tensor& init(const quench::model& m, const std::string& name) {
  const quench::value* v = m.main_graph().find_value(name);
  REQUIRE_MESSAGE(v, name);
  REQUIRE_MESSAGE(v->initializer(), name);
  return *v->initializer();
}

std::vector<float> run(const quench::model& m, const quench::tensor& x) {
  quench::runtime::executor ex(m);
  auto out = ex.run({{"x", &x}});
  const auto v = out.at(0).view<float>();
  return {v.begin(), v.end()};
}

/// Per-channel symmetric weights as torch's MovingAveragePerChannelMinMaxObserver would pick
/// them ([-128, 127] or the given range), per-tensor uint8 activations for residual_cnn's tensors.
qat_params residual_cnn_params(quench::integer_range wr = {-128, 127}) {
  qat_params p;
  p.activations["x"] = qat_tensor_params::per_tensor(0.03125f, 128, {0, 255});
  p.activations["r1"] = qat_tensor_params::per_tensor(0.0123f, 0, {0, 255});
  p.activations["c2"] = qat_tensor_params::per_tensor(0.021f, 120, {0, 255});
  p.activations["r2"] = qat_tensor_params::per_tensor(0.0177f, 0, {0, 255});
  p.activations["logits"] = qat_tensor_params::per_tensor(0.05f, 125, {0, 255});
  auto model = quench_test::residual_cnn();
  for (const char* w : {"W1", "W2", "W3"}) {
    const quench::tensor& t = init(model, w);
    const std::int64_t axis = 0;
    const std::size_t dim = static_cast<std::size_t>(t.shape()[0]), inner = t.size() / dim;
    std::vector<float> s(dim);
    for (std::size_t c = 0; c < dim; ++c) {
      float m = 0.f;
      for (std::size_t i = 0; i < inner; ++i) m = std::max(m, std::fabs(t.view<float>()[c * inner + i]));
      s[c] = m / (static_cast<float>(wr.max - wr.min) / 2.f);
    }
    p.weights[w] = qat_tensor_params::per_channel(axis, s, {}, wr);
  }
  return p;
}

/// DQ(integer weight) as floats, integers of any 4/8-bit type.
std::vector<float> dequantized_weight(const quench::model& m, const std::string& w) {
  const quench::tensor& q = init(m, w + "_quantized");
  const quench::tensor& s = init(m, w + "_scale");
  std::vector<float> out(q.size());
  const std::size_t dim = s.size(), inner = q.size() / dim;
  for (std::size_t i = 0; i < q.size(); ++i) {
    int v = 0;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(q.bytes());
    switch (q.dtype()) {
      case dtype::int8: v = q.view<std::int8_t>()[i]; break;
      case dtype::uint8: v = q.view<std::uint8_t>()[i]; break;
      case dtype::int4: v = quench::get_int4(bytes, i); break;
      case dtype::uint4: v = quench::get_uint4(bytes, i); break;
      default: FAIL("type");
    }
    out[i] = static_cast<float>(v) * s.view<float>()[(i / inner) % dim];
  }
  return out;
}

/// torch's fake quant of the weight (quench::fake_quantize is bit-exact to torch 1.13).
std::vector<float> fake_quantized_weight(const quench::tensor& w, const qat_tensor_params& p) {
  auto fq = quench::fake_quant_params::per_channel(p.axis, p.scales, p.zero_points, p.range);
  std::vector<float> y(w.size());
  quench::fake_quantize<float>(w.view<float>(), fq, quench::tensor_view<float>(y.data(), w.shape()));
  return y;
}

}  // namespace

TEST_CASE("qat_params JSON: exact round trip, PyTorch ranges to ONNX types, bad entries named") {
  using quench::pipeline::storage_type;
  CHECK(storage_type({0, 255}, true) == dtype::uint8);
  CHECK(storage_type({-128, 127}, true) == dtype::int8);
  CHECK(storage_type({-127, 127}, false) == dtype::int8);
  CHECK(storage_type({-8, 7}, false) == dtype::int4);
  CHECK(storage_type({0, 15}, false) == dtype::uint4);
  CHECK(storage_type({0, 15}, true) == dtype::uint8);  // no 4-bit activations
  CHECK(storage_type({0, 127}, true) == dtype::uint8);
  CHECK(storage_type({-512, 511}, false) == dtype::int16);

  qat_params p;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(1e-6f, 1.f);
  std::vector<float> scales;
  for (int i = 0; i < 64; ++i) scales.push_back(u(rng));
  p.weights["conv.w"] = qat_tensor_params::per_channel(0, scales, {}, {-8, 7});
  p.weights["fc \"w\""] = qat_tensor_params::per_channel(1, {0.1f, 3e-9f}, {1, -2}, {-127, 127});
  p.activations["x"] = qat_tensor_params::per_tensor(0.0078125f, 128, {0, 255});
  p.activations["y"] = qat_tensor_params::per_tensor(u(rng), 0, {0, 127});
  const std::string text = quench::pipeline::to_json(p);
  const qat_params back = quench::pipeline::qat_params_from_json(text);
  REQUIRE(back.weights.size() == 2);
  CHECK(back.weights.at("conv.w").type == dtype::int4);
  for (std::size_t i = 0; i < scales.size(); ++i) CHECK(back.weights.at("conv.w").scales[i] == scales[i]);  // bit for bit
  CHECK(back.weights.at("fc \"w\"").zero_points == std::vector<std::int32_t>{1, -2});
  CHECK(back.weights.at("fc \"w\"").range.min == -127);
  CHECK(back.activations.at("y").scales == p.activations.at("y").scales);
  CHECK(back.activations.at("y").range.max == 127);
  CHECK(quench::pipeline::to_json(back) == text);
  // The brief form: no format, dtype only or range only.
  const auto brief = quench::pipeline::qat_params_from_json(
      R"({"activations": {"x": {"scale": 0.02, "zero_point": 128, "dtype": "uint8"}},
          "weights": {"W": {"axis": 0, "scales": [0.5, 0.25], "quant_min": -8, "quant_max": 7}}})");
  CHECK(brief.activations.at("x").range.max == 255);
  CHECK(brief.weights.at("W").type == dtype::int4);
  CHECK(brief.weights.at("W").zero_points == std::vector<std::int32_t>{0, 0});

  auto bad = [](const char* json) { return quench::pipeline::qat_params_from_json(json, "t.json"); };
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 0, "dtype": "uint8"}}})"), doctest::Contains("activation 'a' scale"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 1e999, "dtype": "uint8"}}})"), doctest::Contains("finite"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": -1, "dtype": "uint8"}}})"), doctest::Contains("'a'"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 1, "zero_point": 300, "dtype": "uint8"}}})"), doctest::Contains("zero_point"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 1, "dtype": "int4"}}})"), doctest::Contains("'a'"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 1, "dtype": "float"}}})"), doctest::Contains("dtype"));
  CHECK_THROWS_WITH(bad(R"({"activations": {"a": {"scale": 1}}})"), doctest::Contains("quant_min"));
  CHECK_THROWS_WITH(bad(R"({"activations": {}, "weights": {"W": {"axis": 0, "scales": [1, 1], "zero_points": [0], "dtype": "int8"}}})"),
                    doctest::Contains("weight 'W'"));
  CHECK_THROWS_WITH(bad(R"({"weights": {}})"), doctest::Contains("activations"));
  CHECK_THROWS_AS(bad("{\"activations\": "), quench::error);
}

TEST_CASE("export_qat ort: the trained scales and zero points, weights as torch's fake quant rounds them") {
  const qat_params p = residual_cnn_params();
  auto m = quench_test::residual_cnn();
  const auto r = export_qat(m, p, {});
  CHECK(init(m, "x_scale").view<float>()[0] == 0.03125f);
  CHECK(init(m, "x_zero_point").view<std::uint8_t>()[0] == 128);
  // The Conv output takes the trained range of the Relu after it (ConvBnReLU's fake quant).
  const quench::tensor* c1s = nullptr;
  for (const quench::value* v : m.main_graph().initializers())
    if (v->name().rfind("c1", 0) == 0 && v->name().find("scale") != std::string::npos) c1s = v->initializer();
  REQUIRE(c1s);
  CHECK(c1s->view<float>()[0] == 0.0123f);
  const auto float_model = quench_test::residual_cnn();
  for (const char* w : {"W1", "W2", "W3"}) {
    const auto got = dequantized_weight(m, w);
    const auto want = fake_quantized_weight(init(float_model, w), p.weights.at(w));
    REQUIRE(got.size() == want.size());
    std::size_t diff = 0;
    for (std::size_t i = 0; i < got.size(); ++i) diff += got[i] != want[i];
    CHECK_MESSAGE(diff == 0, w);
  }
  CHECK(r.unused.empty());
  // The model runs, close to float (8-bit everywhere).
  auto x = quench_test::random_tensor({2, 3, 8, 8}, "x", 5);
  const auto a = run(float_model, x), b = run(m, x);
  double err = 0;
  for (std::size_t i = 0; i < a.size(); ++i) err = std::max(err, std::fabs(double(a[i]) - b[i]));
  CHECK(err < 0.1);
  // extract_qat_params gives the parameters back, with the integers.
  const qat_params back = quench::pipeline::extract_qat_params(m);
  CHECK(back.activations.at("x").scales[0] == 0.03125f);
  CHECK(back.weights.at("W2").scales == p.weights.at("W2").scales);
  CHECK(back.values.count("W2") == 1);
}

TEST_CASE("export_qat: int4 and narrow weights clamp as the fake quant; reduce_range activations get a Clip") {
  SUBCASE("int4 per channel: opset 21, int4 initializers") {
    const qat_params p = residual_cnn_params({-8, 7});
    auto m = quench_test::residual_cnn();
    export_qat(m, p, {});
    CHECK(m.opset() == 21);
    CHECK(init(m, "W2_quantized").dtype() == dtype::int4);
    const auto want = fake_quantized_weight(init(quench_test::residual_cnn(), "W2"), p.weights.at("W2"));
    CHECK(dequantized_weight(m, "W2") == want);
  }
  SUBCASE("narrow int8 [-127, 127]") {
    qat_params p = residual_cnn_params({-127, 127});
    for (float& s : p.weights["W3"].scales) s *= 0.5f;  // clipping happens
    auto m = quench_test::residual_cnn();
    export_qat(m, p, {});
    const quench::tensor& q = init(m, "W3_quantized");
    int lo = 0;
    for (std::int8_t v : q.view<std::int8_t>()) lo = std::min<int>(lo, v);
    CHECK(lo == -127);
    CHECK(dequantized_weight(m, "W3") == fake_quantized_weight(init(quench_test::residual_cnn(), "W3"), p.weights.at("W3")));
  }
  SUBCASE("reduce_range (0, 127) activation") {
    qat_params p = residual_cnn_params();
    p.activations["x"] = qat_tensor_params::per_tensor(0.03125f, 64, {0, 127});
    auto m = quench_test::residual_cnn();
    const auto r = export_qat(m, p, {});
    REQUIRE(r.clipped == std::vector<std::string>{"x"});
    auto x = quench_test::random_tensor({1, 3, 8, 8}, "x", 9, 4.f);
    // The DQ of x equals torch's fake quant of x with (0, 127).
    quench::runtime::executor ex(m);
    std::vector<float> dq;
    ex.run({{"x", &x}}, [&](const std::string& name, const quench::tensor& t) {
      if (t.dtype() == dtype::float32 && name.find("x_DequantizeLinear") != std::string::npos && dq.empty())
        dq.assign(t.view<float>().begin(), t.view<float>().end());
    });
    std::vector<float> want(x.size());
    quench::fake_quantize<float>(x.view<float>(), quench::fake_quant_params::per_tensor(0.03125f, 64, {0, 127}),
                                 quench::tensor_view<float>(want.data(), x.shape()));
    CHECK(dq == want);
    // Extract sees through the Clip and keeps the range from the metadata.
    CHECK(quench::pipeline::extract_qat_params(m).activations.at("x").range.max == 127);
  }
}

TEST_CASE("export_qat refuses missing tensors, wrong axes and bad scales, naming them") {
  SUBCASE("missing activation") {
    qat_params p = residual_cnn_params();
    p.activations.erase("c2");
    auto m = quench_test::residual_cnn();
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("'c2'"));
  }
  SUBCASE("missing weight") {
    qat_params p = residual_cnn_params();
    p.weights.erase("W3");
    auto m = quench_test::residual_cnn();
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("W3"));
  }
  SUBCASE("wrong axis") {
    qat_params p = residual_cnn_params();
    p.weights["W2"] = qat_tensor_params::per_channel(1, {1.f, 1.f, 1.f, 1.f}, {}, {-128, 127});
    auto m = quench_test::residual_cnn();
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("weight 'W2': parameters are per channel on axis 1"));
  }
  SUBCASE("channel count") {
    qat_params p = residual_cnn_params();
    p.weights["W1"] = qat_tensor_params::per_channel(0, {1.f, 1.f}, {}, {-128, 127});
    auto m = quench_test::residual_cnn();
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("W1"));
  }
  SUBCASE("NaN and zero scale") {
    qat_params p = residual_cnn_params();
    p.activations["r2"].scales[0] = std::nanf("");
    auto m = quench_test::residual_cnn();
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("r2"));
    p = residual_cnn_params();
    p.weights["W1"].scales[2] = 0.f;
    CHECK_THROWS_WITH(export_qat(m, p, {}), doctest::Contains("weight 'W1' scale[2]"));
  }
}

TEST_CASE("fold_qdq: weight Q/DQ to integers as QuantizeLinear computes them, redundant pairs gone, outputs unchanged") {
  // x -> Q -> DQ -> Conv(W: Q -> DQ) -> Q -> DQ -> MaxPool -> Q -> DQ (same grid: redundant) -> Relu -> y
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{1, {}}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  auto scalar = [&](const std::string& name, float s) {
    quench::tensor t(dtype::float32, quench::shape{}, name);
    t.view<float>()[0] = s;
    return &g.add_initializer(std::move(t));
  };
  auto zp = [&](const std::string& name, std::uint8_t z) {
    quench::tensor t(dtype::uint8, quench::shape{}, name);
    t.view<std::uint8_t>()[0] = z;
    return &g.add_initializer(std::move(t));
  };
  auto qdq = [&](quench::value* in, quench::value* s, quench::value* z, const std::string& name) {
    auto& q = g.add_node("QuantizeLinear", {in, s, z}, {name + "_q"}, name + "_Q");
    return g.add_node("DequantizeLinear", {q.output(0), s, z}, {name + "_dq"}, name + "_DQ").output(0);
  };
  auto* sx = scalar("sx", 0.02f);
  auto* zx = zp("zx", 128);
  auto* xd = qdq(&x, sx, zx, "x");
  auto& w = g.add_initializer(quench_test::random_tensor({4, 3, 3, 3}, "W", 7, 0.3f));
  quench::tensor ws(dtype::float32, quench::shape{4}, "ws");
  for (int c = 0; c < 4; ++c) ws.view<float>()[c] = 0.004f + 0.001f * c;
  auto& wsv = g.add_initializer(std::move(ws));
  quench::tensor wz(dtype::int8, quench::shape{4}, "wz");
  for (auto& v : wz.view<std::int8_t>()) v = 0;
  auto& wzv = g.add_initializer(std::move(wz));
  auto& wq = g.add_node("QuantizeLinear", {&w, &wsv, &wzv}, {"w_q"}, "W_Q");
  wq.set_attribute(quench::attribute::make_int("axis", 0));
  auto& wdq = g.add_node("DequantizeLinear", {wq.output(0), &wsv, &wzv}, {"w_dq"}, "W_DQ");
  wdq.set_attribute(quench::attribute::make_int("axis", 0));
  auto& conv = g.add_node("Conv", {xd, wdq.output(0)}, {"c"}, "conv");
  auto* sc = scalar("sc", 0.05f);
  auto* zc = zp("zc", 100);
  auto* cd = qdq(conv.output(0), sc, zc, "c");
  auto& pool = g.add_node("MaxPool", {cd}, {"p"}, "pool");
  pool.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  auto* pd = qdq(pool.output(0), sc, zc, "p");
  auto& relu = g.add_node("Relu", {pd}, {"y"}, "relu");
  g.add_output(*relu.output(0));

  auto x_in = quench_test::random_tensor({1, 3, 8, 8}, "x", 8, 1.f);
  const auto before = run(m, x_in);
  const quench::tensor want_ints = quench::quantize(*w.initializer(), quench::qparams::per_axis(dtype::int8, 0, {0.004f, 0.005f, 0.006f, 0.007f}));
  const auto r = quench::pipeline::fold_qdq(m);
  CHECK(r.weights_folded == 1);
  CHECK(r.pairs_removed == 1);
  CHECK(r.initializer_bytes_after < r.initializer_bytes_before);
  const quench::tensor& got = init(m, "W_quantized");
  REQUIRE(got.dtype() == dtype::int8);
  CHECK(std::memcmp(got.bytes(), want_ints.bytes(), got.nbytes()) == 0);
  CHECK_FALSE(g.find_value("W"));
  std::size_t qs = 0;
  for (const quench::node* n : g.nodes()) qs += n->is("QuantizeLinear");
  CHECK(qs == 2);  // x and c
  CHECK(run(m, x_in) == before);

  SUBCASE("strip then extract: the float model and the same parameters") {
    const auto p = quench::pipeline::extract_qat_params(m);
    CHECK(p.activations.at("x").zero_points[0] == 128);
    CHECK(p.activations.at("c").scales[0] == 0.05f);
    CHECK(p.weights.at("W").axis == 0);
    quench::pipeline::strip_qdq(m);
    for (const quench::node* n : g.nodes()) CHECK_FALSE((n->is("QuantizeLinear") || n->is("DequantizeLinear")));
    CHECK(g.outputs().at(0)->name() == "y");
  }
  SUBCASE("unsupported patterns are named") {
    auto& bad = g.add_node("QuantizeLinear", {relu.output(0), sx, zx}, {"yq"}, "stray_Q");
    g.add_output(*bad.output(0));
    auto& neg = g.add_node("Neg", {conv.output(0)}, {"n"}, "neg");
    auto& dq = g.add_node("DequantizeLinear", {neg.output(0), sx, zx}, {"nd"}, "odd_DQ");
    g.add_output(*dq.output(0));
    CHECK_THROWS_WITH(quench::pipeline::strip_qdq(m), doctest::Contains("odd_DQ"));
  }
}

TEST_CASE("fold_qdq re-targets ort -> tensorrt -> ort with the same parameters") {
  auto m = quench_test::residual_cnn();
  export_qat(m, residual_cnn_params(), {});
  auto first = quench_test::residual_cnn();
  export_qat(first, residual_cnn_params(), {});
  quench::pipeline::fold_options o;
  o.profile = quench::pipeline::profile_by_name("tensorrt");
  const auto r = quench::pipeline::fold_qdq(m, o);
  REQUIRE(r.retarget);
  std::size_t int32 = 0, qs = 0;
  for (const quench::value* v : m.main_graph().initializers()) int32 += v->initializer()->dtype() == dtype::int32;
  for (const quench::node* n : m.main_graph().nodes()) qs += n->is("QuantizeLinear");
  CHECK(int32 == 0);  // TensorRT keeps float biases
  CHECK(qs == 4);     // x, pool input r1, Add's residual p, Gemm input f
  o.profile = quench::pipeline::profile_by_name("ort");
  quench::pipeline::fold_qdq(m, o);
  auto x = quench_test::random_tensor({2, 3, 8, 8}, "x", 12);
  CHECK(run(m, x) == run(first, x));
}
