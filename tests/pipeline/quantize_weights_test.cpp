#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "quench/pipeline/quantize_weights.hpp"
#include "quench/runtime/executor.hpp"

using quench::dim;
using quench::dtype;
using quench::tensor;

namespace {
tensor random_tensor(quench::shape s, const std::string& name, std::uint32_t seed, float spread = 1.f) {
  tensor t(dtype::float32, std::move(s), name);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, spread);
  for (auto& v : t.view<float>()) v = n(rng);
  return t;
}

/// x [N,3,8,8] -> Conv(W [4,3,3,3], pads 1) -> Relu -> Flatten -> Gemm(B [10,256], transB) -> MatMul(M [10,5]).
quench::model cnn(std::int64_t opset) {
  quench::model m;
  m.set_opset("", opset);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{{}, "N"}, dim{3, {}}, dim{8, {}}, dim{8, {}}});
  auto& w = g.add_initializer(random_tensor({4, 3, 3, 3}, "W", 1));
  auto& conv = g.add_node("Conv", {&x, &w}, {"c"}, "conv");
  conv.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& relu = g.add_node("Relu", {conv.output(0)}, {"r"});
  auto& flat = g.add_node("Flatten", {relu.output(0)}, {"f"});
  auto& b = g.add_initializer(random_tensor({10, 256}, "B", 2, 0.1f));
  auto& gemm = g.add_node("Gemm", {flat.output(0), &b}, {"g"}, "gemm");
  gemm.set_attribute(quench::attribute::make_int("transB", 1));
  auto& mm = g.add_initializer(random_tensor({10, 5}, "M", 3));
  auto& matmul = g.add_node("MatMul", {gemm.output(0), &mm}, {"y"}, "matmul");
  g.add_output(*matmul.output(0));
  return m;
}

double sqnr_db(const tensor& ref, const tensor& got) {
  double s = 0, e = 0;
  const auto a = ref.view<float>(), b = got.view<float>();
  for (std::size_t i = 0; i < a.size(); ++i) {
    s += double(a[i]) * a[i];
    e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  }
  return 10 * std::log10(s / e);
}
}  // namespace

TEST_CASE("quantize_weights: int8 per-channel DequantizeLinear weights as ONNX Runtime lays them out") {
  auto m = cnn(13);
  const auto original = cnn(13);
  const auto report = quench::pipeline::quantize_weights(m);
  CHECK(report.quantized == std::vector<std::string>{"W", "B", "M"});
  CHECK(report.bytes_after * 3 < report.bytes_before);
  const auto& g = m.main_graph();
  CHECK(g.find_value("W") == nullptr);  // the float weights are gone
  const quench::node* dq = g.find_value("W_DequantizeLinear_Output")->producer();
  REQUIRE(dq != nullptr);
  CHECK(dq->op_type() == "DequantizeLinear");
  CHECK(dq->name() == "W_DequantizeLinear");
  CHECK(dq->attr_int("axis", 1) == 0);
  CHECK(g.find_value("B_DequantizeLinear_Output")->producer()->attr_int("axis", -1) == 0);  // transB = 1
  CHECK(g.find_value("M_DequantizeLinear_Output")->producer()->attr_int("axis", -1) == 1);  // MatMul B [K, N]
  // Symmetric int8 with ORT's narrow range: scale = absmax / 127 per channel, zero point 0.
  const tensor& wq = *g.find_value("W_quantized")->initializer();
  const tensor& ws = *g.find_value("W_scale")->initializer();
  const tensor& w0 = *original.main_graph().find_value("W")->initializer();
  CHECK(wq.dtype() == dtype::int8);
  CHECK(ws.shape() == quench::shape{4});
  for (std::size_t c = 0; c < 4; ++c) {
    float amax = 0;
    for (std::size_t i = 0; i < 27; ++i) amax = std::max(amax, std::fabs(w0.view<float>()[c * 27 + i]));
    CHECK(ws.view<float>()[c] == doctest::Approx(amax / 127.f).epsilon(1e-6));
    for (std::size_t i = 0; i < 27; ++i) {
      const float want = std::nearbyint(w0.view<float>()[c * 27 + i] / ws.view<float>()[c]);
      CHECK(wq.view<std::int8_t>()[c * 27 + i] == static_cast<std::int8_t>(want));
    }
  }
  CHECK(g.find_value("W_zero_point")->initializer()->view<std::int8_t>()[0] == 0);
  // The model still runs and stays close to the float one.
  const tensor x = random_tensor({2, 3, 8, 8}, "x", 9);
  quench::runtime::executor a(original), b(m);
  const auto ya = a.run({{"x", &x}}), yb = b.run({{"x", &x}});
  CHECK(sqnr_db(ya[0], yb[0]) > 30.0);
}

TEST_CASE("quantize_weights: per tensor below opset 13, exclusions, shared weights, errors") {
  auto m = cnn(11);
  quench::pipeline::weight_quant_options opt;
  opt.exclude_nodes = {"gemm"};
  const auto report = quench::pipeline::quantize_weights(m, opt);
  CHECK(report.quantized == std::vector<std::string>{"W", "M"});
  CHECK(m.main_graph().find_value("B") != nullptr);  // excluded: still float
  CHECK(m.main_graph().find_value("W_scale")->initializer()->rank() == 0);
  CHECK(m.main_graph().find_value("W_DequantizeLinear_Output")->producer()->attr_int("axis", -7) == -7);  // no axis
  // Running it twice quantizes nothing more (the weights are no longer float initializers).
  CHECK(quench::pipeline::quantize_weights(m, opt).quantized.empty());

  auto bad = cnn(13);
  quench::pipeline::weight_quant_options int16;
  int16.type = dtype::int16;
  CHECK_THROWS_WITH(quench::pipeline::quantize_weights(bad, int16), doctest::Contains("opset 21"));
  auto nan_model = cnn(13);
  const_cast<tensor*>(nan_model.main_graph().find_value("M")->initializer())->view<float>()[3] = NAN;
  CHECK_THROWS_WITH(quench::pipeline::quantize_weights(nan_model), doctest::Contains("'M'"));
}

TEST_CASE("quantize_weights: a weight two consumers share is quantized once") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{2, {}}, dim{6, {}}});
  auto& w = g.add_initializer(random_tensor({6, 6}, "W", 4));
  auto& a = g.add_node("MatMul", {&x, &w}, {"a"});
  auto& b = g.add_node("MatMul", {a.output(0), &w}, {"b"});
  g.add_output(*b.output(0));
  const auto report = quench::pipeline::quantize_weights(m);
  CHECK(report.quantized == std::vector<std::string>{"W"});
  std::size_t dequantize_nodes = 0;
  for (const quench::node* n : g.nodes()) dequantize_nodes += n->op_type() == "DequantizeLinear";
  CHECK(dequantize_nodes == 1);
  CHECK(a.input(1) == b.input(1));
  CHECK(g.nodes().front()->op_type() == "DequantizeLinear");  // topologically first
}
