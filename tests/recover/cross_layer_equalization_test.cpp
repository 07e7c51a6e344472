#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "pipeline/pipeline_test_models.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_weights.hpp"
#include "quench/recover/cross_layer_equalization.hpp"
#include "quench/runtime/executor.hpp"

using quench::dtype;

namespace {
/// x [N,3,8,8] -> Conv(3->8) -> Relu -> depthwise Conv(8) -> Relu -> MaxPool -> Conv(8->4) -> y,
/// made hard as in the issue: conv1's output channel i times f_i in [1/64, 64] and the depthwise
/// filter i divided by f_i, which leaves the function unchanged and the ranges far apart.
quench::model chain(bool hard) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  quench::tensor w1 = quench_test::random_tensor({8, 3, 3, 3}, "W1", 1, 0.3f), b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
  quench::tensor w2 = quench_test::random_tensor({8, 1, 3, 3}, "W2", 3, 0.3f), b2 = quench_test::random_tensor({8}, "B2", 4, 0.1f);
  if (hard) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> e(-6.0, 6.0);  // 2^[-6, 6]
    for (std::size_t i = 0; i < 8; ++i) {
      const float f = static_cast<float>(std::exp2(e(rng)));
      for (std::size_t k = 0; k < 27; ++k) w1.view<float>()[i * 27 + k] *= f;
      b1.view<float>()[i] *= f;
      for (std::size_t k = 0; k < 9; ++k) w2.view<float>()[i * 9 + k] /= f;
    }
  }
  auto& c1 = g.add_node("Conv", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))}, {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("Relu", {c1.output(0)}, {"r1"}, "relu1");
  auto& c2 = g.add_node("Conv", {r1.output(0), &g.add_initializer(std::move(w2)), &g.add_initializer(std::move(b2))}, {"c2"}, "dw");
  c2.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  c2.set_attribute(quench::attribute::make_int("group", 8));
  auto& r2 = g.add_node("Relu", {c2.output(0)}, {"r2"}, "relu2");
  auto& p = g.add_node("MaxPool", {r2.output(0)}, {"p"}, "pool");
  p.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  p.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
  auto& c3 = g.add_node("Conv", {p.output(0), &g.add_initializer(quench_test::random_tensor({4, 8, 1, 1}, "W3", 6, 0.3f))}, {"y"}, "conv3");
  g.add_output(*c3.output(0));
  return m;
}

std::vector<std::pair<std::string, quench::tensor>> inputs() {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", quench_test::random_tensor({8, 3, 8, 8}, "x", 9));
  return in;
}

double per_tensor_weight_sqnr(const quench::model& ref, quench::model m) {
  quench::pipeline::weight_quant_options o;
  o.per_channel = false;
  quench::pipeline::quantize_weights(m, o);
  quench::data::tensor_source data(inputs());
  return quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db();
}
}  // namespace

TEST_CASE("equalize: pairs through Relu/MaxPool and depthwise convs, function kept, ranges evened out") {
  const auto ref = chain(true);
  auto m = chain(true);
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 2);
  CHECK(r.pairs[0].producer == "conv1");
  CHECK(r.pairs[0].consumer == "dw");
  CHECK(r.pairs[1].producer == "dw");
  CHECK(r.pairs[1].consumer == "conv3");
  CHECK(r.pairs[0].spread_before > 100);
  CHECK(r.pairs[0].spread_after < r.pairs[0].spread_before / 20);
  // output_scale says what each of the producer's output channels was multiplied by.
  {
    auto weight_of = [](const quench::model& mm, const std::string& node) -> const quench::tensor& {
      for (const quench::node* n : mm.main_graph().nodes())
        if (n->name() == node) return *n->input(1)->initializer();
      throw std::runtime_error("no node " + node);
    };
    const quench::tensor& w0 = weight_of(ref, "conv1");
    const quench::tensor& w1 = weight_of(m, "conv1");
    const auto& f = r.pairs[0].output_scale;
    REQUIRE(f.size() == static_cast<std::size_t>(w0.shape()[0]));
    const std::size_t per = w0.shape().inner(0);
    for (std::size_t i = 0; i < w0.size(); ++i)
      CHECK(w1.view<float>()[i] == doctest::Approx(w0.view<float>()[i] * f[i / per]).epsilon(1e-5));
  }
  // The float function is unchanged (up to float rounding).
  quench::data::tensor_source data(inputs());
  CHECK(quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db() > 100);
  // Per-tensor int8 weights: the hard model loses most of its output, the equalized one does not.
  const double without = per_tensor_weight_sqnr(ref, chain(true));
  const double with = per_tensor_weight_sqnr(ref, std::move(m));
  MESSAGE("per-tensor int8 weights: " << without << " dB without CLE, " << with << " dB with");
  CHECK(with > without + 10);
}

TEST_CASE("equalize leaves alone what it cannot rescale exactly") {
  auto m = chain(false);
  // A Clip between layers does not commute with scaling; a second consumer pins the channel scale.
  auto& g = m.main_graph();
  quench::node* relu1 = nullptr;
  for (auto* n : g.nodes())
    if (n->name() == "relu1") relu1 = n;
  REQUIRE(relu1);
  relu1->set_op_type("Clip");  // Clip without bounds: still not a scaling-commuting op for CLE
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 1);
  CHECK(r.pairs[0].producer == "dw");
  auto m2 = chain(false);
  auto& g2 = m2.main_graph();
  g2.add_output(*g2.find_value("r2"));  // r2 is now also a graph output
  CHECK(quench::recover::equalize(m2).pairs.size() == 1);
}

namespace {
/// x [N,3,8,8] -> Conv(3->8) -> Relu -> pool -> Flatten -> Gemm(8*hw -> 4): a MobileNet head with
/// conv channel i times f_i in [1/64, 64] and Gemm input i divided by f_i (hw = 1: GlobalAveragePool;
/// hw = 4: AveragePool to 2x2, where Flatten mixes channels and positions).
quench::model head(int hw) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  quench::tensor w1 = quench_test::random_tensor({8, 3, 3, 3}, "W1", 1, 0.3f), b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
  quench::tensor w2 = quench_test::random_tensor({8 * hw, 4}, "W2", 3, 0.3f);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> e(-6.0, 6.0);
  for (std::size_t i = 0; i < 8; ++i) {
    const float f = static_cast<float>(std::exp2(e(rng)));
    for (std::size_t k = 0; k < 27; ++k) w1.view<float>()[i * 27 + k] *= f;
    b1.view<float>()[i] *= f;
    for (std::size_t p = 0; p < static_cast<std::size_t>(hw); ++p)
      for (std::size_t j = 0; j < 4; ++j) w2.view<float>()[(i * static_cast<std::size_t>(hw) + p) * 4 + j] /= f;
  }
  auto& c1 = g.add_node("Conv", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))}, {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("Relu", {c1.output(0)}, {"r1"}, "relu1");
  quench::node* pool = nullptr;
  if (hw == 1) {
    pool = &g.add_node("GlobalAveragePool", {r1.output(0)}, {"p"}, "pool");
  } else {
    pool = &g.add_node("AveragePool", {r1.output(0)}, {"p"}, "pool");
    pool->set_attribute(quench::attribute::make_ints("kernel_shape", {4, 4}));
    pool->set_attribute(quench::attribute::make_ints("strides", {4, 4}));
  }
  auto& f = g.add_node("Flatten", {pool->output(0)}, {"f"}, "flatten");
  auto& fc = g.add_node("Gemm", {f.output(0), &g.add_initializer(std::move(w2))}, {"y"}, "fc");
  g.add_output(*fc.output(0));
  return m;
}
}  // namespace

TEST_CASE("equalize: conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm is a pair; Flatten of 2x2 positions is not") {
  const auto ref = head(1);
  auto m = head(1);
  const auto r = quench::recover::equalize(m);
  REQUIRE(r.pairs.size() == 1);
  CHECK(r.pairs[0].producer == "conv1");
  CHECK(r.pairs[0].consumer == "fc");
  CHECK(r.pairs[0].spread_before > 100);
  CHECK(r.pairs[0].spread_after < r.pairs[0].spread_before / 20);
  quench::data::tensor_source data(inputs());
  CHECK(quench::pipeline::compare_models(ref, m, data, {}).output_sqnr_db() > 100);
  const double without = per_tensor_weight_sqnr(ref, head(1));
  const double with = per_tensor_weight_sqnr(ref, std::move(m));
  MESSAGE("head, per-tensor int8 weights: " << without << " dB without CLE, " << with << " dB with");
  CHECK(with > without + 10);
  // AveragePool to 2x2: the Gemm reads 32 inputs, 4 per channel; not a channel-to-channel pair.
  auto m4 = head(4);
  CHECK(quench::recover::equalize(m4).pairs.empty());
}

namespace {
/// Multiplies output channel i of `w` (and `b`) by f_i in 2^[-6, 6] and divides input channel i of
/// `next` (`per_in` consecutive entries each: [O, C, 1, 1] -> 1, [C, O] -> O): the function is
/// unchanged and the producer's ranges are far apart.
void scale_badly(quench::tensor& w, quench::tensor& b, quench::tensor& next, std::size_t per_in,
                 std::uint32_t seed) {
  const std::size_t channels = static_cast<std::size_t>(w.shape()[0]), row = w.size() / channels;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> e(-6.0, 6.0);
  for (std::size_t i = 0; i < channels; ++i) {
    const float f = static_cast<float>(std::exp2(e(rng)));
    for (std::size_t k = 0; k < row; ++k) w.view<float>()[i * row + k] *= f;
    b.view<float>()[i] *= f;
    for (std::size_t o = 0; o < next.size() / (channels * per_in); ++o)
      for (std::size_t k = 0; k < per_in; ++k) next.view<float>()[(o * channels + i) * per_in + k] /= f;
  }
}

quench::tensor filled(quench::shape s, const std::string& name, float v) {
  quench::tensor t(dtype::float32, std::move(s), name);
  for (auto& x : t.view<float>()) x = v;
  return t;
}

/// openWakeWord's block, as tf2onnx writes it: x [N,3,8,8] -> Conv(3->8) -> LeakyRelu(0.2) ->
/// op(., c) -> MaxPool -> Conv(8->4, 1x1) -> op(., c) -> y, c one [1,1,1,1] initializer
/// ('const_fold_opt__287') shared by both op nodes (Max or Min); conv1 badly scaled per channel.
/// `const_first` puts c before the chain value in the first op; `depthwise` adds a depthwise
/// Conv(8) -> op(., c) after it (badly scaled in turn), so two pairs share the depthwise weights.
quench::model clamped(const char* op, float c, bool const_first = false, bool depthwise = false) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1,
                        std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{3, {}}, quench::dim{8, {}},
                                                 quench::dim{8, {}}});
  quench::tensor w1 = quench_test::random_tensor({8, 3, 3, 3}, "W1", 1, 0.3f),
                 b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
  quench::tensor w2 = quench_test::random_tensor({4, 8, 1, 1}, "W2", 3, 0.3f);
  quench::tensor wd = quench_test::random_tensor({8, 1, 3, 3}, "Wd", 6, 0.3f),
                 bd = quench_test::random_tensor({8}, "Bd", 7, 0.1f);
  scale_badly(w1, b1, depthwise ? wd : w2, depthwise ? 9 : 1, 5);
  if (depthwise) scale_badly(wd, bd, w2, 1, 8);
  auto& k = g.add_initializer(filled({1, 1, 1, 1}, "const_fold_opt__287", c));
  auto& c1 = g.add_node("Conv", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))},
                        {"c1"}, "conv1");
  c1.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  auto& r1 = g.add_node("LeakyRelu", {c1.output(0)}, {"r1"}, "leaky1");
  r1.set_attribute(quench::attribute::make_float("alpha", 0.2f));
  std::vector<quench::value*> in1{r1.output(0), &k};
  if (const_first) std::swap(in1[0], in1[1]);
  auto& f1 = g.add_node(op, in1, {"m1"}, "floor1");
  quench::value* pool_in = f1.output(0);
  if (depthwise) {
    auto& d = g.add_node(
        "Conv", {pool_in, &g.add_initializer(std::move(wd)), &g.add_initializer(std::move(bd))}, {"d"}, "dw");
    d.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
    d.set_attribute(quench::attribute::make_int("group", 8));
    pool_in = g.add_node(op, {d.output(0), &k}, {"md"}, "floor_dw").output(0);
  }
  auto& p = g.add_node("MaxPool", {pool_in}, {"p"}, "pool");
  p.set_attribute(quench::attribute::make_ints("kernel_shape", {2, 2}));
  p.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
  auto& c2 = g.add_node("Conv", {p.output(0), &g.add_initializer(std::move(w2))}, {"c2"}, "conv2");
  auto& f2 = g.add_node(op, {c2.output(0), &k}, {"y"}, "floor2");
  g.add_output(*f2.output(0));
  return m;
}

quench::node& node_named(quench::model& m, const std::string& name) {
  quench::node* found = nullptr;
  for (auto* n : m.main_graph().nodes())
    if (n->name() == name) found = n;
  REQUIRE(found);
  return *found;
}

/// max |a - b| / max |a| over the outputs of the reference executor on `x` (relative to the output's
/// scale: element by element, outputs where the conv sums cancel to ~0 would measure only rounding).
double max_relative_difference(const quench::model& ref, const quench::model& m, const quench::tensor& x) {
  quench::runtime::executor ea(ref), eb(m);
  const auto ya = ea.run({{"x", &x}}), yb = eb.run({{"x", &x}});
  const auto a = ya[0].view<float>(), b = yb[0].view<float>();
  REQUIRE(a.size() == b.size());
  double peak = 0, worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    peak = std::max(peak, std::fabs(double(a[i])));
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  }
  REQUIRE(peak > 0);
  return worst / peak;
}

/// The share of the first op's outputs that are the constant (the floor is active, not vacuous).
double clamped_share(const quench::model& m, const quench::tensor& x, float c) {
  quench::runtime::executor ex(m);
  double share = 0;
  ex.run({{"x", &x}}, [&](const std::string& name, const quench::tensor& t) {
    if (name != "m1") return;
    const auto v = t.view<float>();
    share = double(std::count(v.begin(), v.end(), c)) / double(v.size());
  });
  return share;
}
}  // namespace

TEST_CASE("equalize: through Max/Min with a shared constant, made per channel and private to the node") {
  const auto x = quench_test::random_tensor({4, 3, 8, 8}, "x", 9);
  for (const std::string op : {"Max", "Min"})
    for (const bool const_first : {false, true}) {
      CAPTURE(op);
      CAPTURE(const_first);
      const float c = op[1] == 'a' ? -0.4f : 0.4f;
      const auto ref = clamped(op.c_str(), c, const_first);
      auto m = clamped(op.c_str(), c, const_first);
      const double share = clamped_share(ref, x, c);
      CHECK(share > 0.1);  // the floor (ceiling) acts on many outputs
      const auto r = quench::recover::equalize(m);
      REQUIRE(r.pairs.size() == 1);
      CHECK(r.pairs[0].producer == "conv1");
      CHECK(r.pairs[0].consumer == "conv2");
      CHECK(r.pairs[0].max_min == std::vector<std::string>{"floor1"});
      CHECK(r.pairs[0].spread_before > 100);
      CHECK(r.pairs[0].spread_after < r.pairs[0].spread_before / 20);
      const double diff = max_relative_difference(ref, m, x);
      MESSAGE(op << (const_first ? "(c, x)" : "(x, c)") << ": spread " << r.pairs[0].spread_before << " -> "
                 << r.pairs[0].spread_after << ", " << share * 100 << "% clamped, max relative difference "
                 << diff);
      CHECK(diff < 1e-5);
      // The shared constant is untouched and still read by floor2; floor1 reads a private copy.
      auto& g = m.main_graph();
      const quench::value* shared = g.find_value("const_fold_opt__287");
      REQUIRE(shared);
      REQUIRE(shared->is_initializer());
      CHECK(shared->initializer()->shape() == quench::shape{1, 1, 1, 1});
      CHECK(shared->initializer()->view<float>()[0] == c);
      REQUIRE(shared->uses().size() == 1);
      CHECK(shared->uses()[0].user == &node_named(m, "floor2"));
      const quench::value* own = node_named(m, "floor1").input(const_first ? 0 : 1);
      REQUIRE(own);
      REQUIRE(own->is_initializer());
      CHECK(own != shared);
      CHECK(own->uses().size() == 1);
      CHECK(own->initializer()->shape() == quench::shape{1, 8, 1, 1});
      const auto v = own->initializer()->view<float>();
      CHECK(*std::min_element(v.begin(), v.end()) != *std::max_element(v.begin(), v.end()));  // c / s_i
      CHECK(std::all_of(v.begin(), v.end(), [&](float e) { return (e > 0) == (c > 0); }));
    }
}

TEST_CASE("equalize: a Max/Min of a non-constant or of a constant not per channel ends the chain") {
  for (const std::string op : {"Max", "Min"})
    for (const std::string kind :
         {"graph input", "graph input with a default", "per position [1,1,8,8]", "rank 5"}) {
      CAPTURE(op);
      CAPTURE(kind);
      const float c = op[1] == 'a' ? -0.4f : 0.4f;
      auto m = clamped(op.c_str(), c);
      auto& g = m.main_graph();
      quench::value* floor = nullptr;
      if (kind.rfind("graph input", 0) == 0) {
        floor = &g.add_input("floor", 1, std::vector<quench::dim>(4, quench::dim{1, {}}));
        // With a default: an initializer a caller may still override, so not a constant.
        if (kind != "graph input") g.set_initializer(*floor, filled({1, 1, 1, 1}, "floor", c));
      } else {
        floor = &g.add_initializer(kind == "rank 5" ? filled({1, 1, 1, 1, 1}, "floor", c)
                                                    : filled({1, 1, 8, 8}, "floor", c));
      }
      g.set_input(node_named(m, "floor1"), 1, floor);
      CHECK(quench::recover::equalize(m).pairs.empty());
      // The shared constant is left alone too.
      CHECK(g.find_value("const_fold_opt__287")->uses().size() == 1);
    }
}

TEST_CASE("equalize: Gemm -> LeakyRelu -> Min(., per-channel [C] constant) -> Gemm") {
  // x [N,16] -> Gemm(16->8, transB) -> LeakyRelu -> Min(., c[8]) -> Gemm(8->4) -> y.
  quench::model ref, m;
  for (quench::model* mm : {&ref, &m}) {
    mm->set_opset("", 13);
    auto& g = mm->main_graph();
    auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{16, {}}});
    quench::tensor w1 = quench_test::random_tensor({8, 16}, "W1", 1, 0.3f),
                   b1 = quench_test::random_tensor({8}, "B1", 2, 0.1f);
    quench::tensor w2 = quench_test::random_tensor({8, 4}, "W2", 3, 0.3f);
    scale_badly(w1, b1, w2, 4, 7);
    quench::tensor c = quench_test::random_tensor({8}, "c", 4, 0.2f, 0.5f);
    auto& fc1 = g.add_node("Gemm", {&x, &g.add_initializer(std::move(w1)), &g.add_initializer(std::move(b1))},
                           {"h"}, "fc1");
    fc1.set_attribute(quench::attribute::make_int("transB", 1));
    auto& r = g.add_node("LeakyRelu", {fc1.output(0)}, {"r"}, "leaky");
    auto& mn = g.add_node("Min", {r.output(0), &g.add_initializer(std::move(c))}, {"m1"}, "ceiling");
    auto& fc2 = g.add_node("Gemm", {mn.output(0), &g.add_initializer(std::move(w2))}, {"y"}, "fc2");
    g.add_output(*fc2.output(0));
  }
  const auto rep = quench::recover::equalize(m);
  REQUIRE(rep.pairs.size() == 1);
  CHECK(rep.pairs[0].producer == "fc1");
  CHECK(rep.pairs[0].consumer == "fc2");
  CHECK(rep.pairs[0].max_min == std::vector<std::string>{"ceiling"});
  CHECK(rep.pairs[0].spread_after < rep.pairs[0].spread_before / 20);
  const auto x = quench_test::random_tensor({16, 16}, "x", 9);
  const double diff = max_relative_difference(ref, m, x);
  MESSAGE("Gemm/Min: spread " << rep.pairs[0].spread_before << " -> " << rep.pairs[0].spread_after
                              << ", max relative difference " << diff);
  CHECK(diff < 1e-5);
  // The private copy is [1, C] for a [N, C] activation; the original, read by nothing now, is gone.
  auto& g = m.main_graph();
  CHECK(g.find_value("c") == nullptr);
  const quench::value* own = node_named(m, "ceiling").input(1);
  REQUIRE(own);
  CHECK(own->initializer()->shape() == quench::shape{1, 8});
}

TEST_CASE("equalize: conv -> Max -> depthwise -> Max -> conv, the per-channel constants follow every pass") {
  const auto x = quench_test::random_tensor({4, 3, 8, 8}, "x", 9);
  for (const std::string op : {"Max", "Min"}) {
    CAPTURE(op);
    const float c = op[1] == 'a' ? -0.4f : 0.4f;
    const auto ref = clamped(op.c_str(), c, false, true);
    auto m = clamped(op.c_str(), c, false, true);
    const auto r = quench::recover::equalize(m);
    REQUIRE(r.pairs.size() == 2);
    CHECK(r.pairs[0].producer == "conv1");
    CHECK(r.pairs[0].consumer == "dw");
    CHECK(r.pairs[0].max_min == std::vector<std::string>{"floor1"});
    CHECK(r.pairs[1].producer == "dw");
    CHECK(r.pairs[1].consumer == "conv2");
    CHECK(r.pairs[1].max_min == std::vector<std::string>{"floor_dw"});
    CHECK(r.passes > 2);  // the depthwise weights move in both pairs: several passes
    for (const auto& pr : r.pairs) CHECK(pr.spread_after < pr.spread_before / 20);
    const double diff = max_relative_difference(ref, m, x);
    MESSAGE(op << " with depthwise: " << r.passes << " passes, spread " << r.pairs[0].spread_before << " -> "
               << r.pairs[0].spread_after << " and " << r.pairs[1].spread_before << " -> "
               << r.pairs[1].spread_after << ", max relative difference " << diff);
    CHECK(diff < 1e-5);
    const quench::value* shared = m.main_graph().find_value("const_fold_opt__287");
    REQUIRE(shared);
    REQUIRE(shared->uses().size() == 1);
    CHECK(shared->uses()[0].user == &node_named(m, "floor2"));
    CHECK(shared->initializer()->view<float>()[0] == c);
  }
}
