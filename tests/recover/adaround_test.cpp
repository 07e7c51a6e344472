#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "pipeline/pipeline_test_models.hpp"
#include "quench/adapt/npy.hpp"
#include "quench/pipeline/weight_qparams.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"
#include "quench/recover/adaround.hpp"

namespace {
using quench::recover::adaround_target;

/// x [N, 4, 8, 8] -> Conv W [6, 4, 3, 3] (pads 1) -> y, with the given weight.
quench::model conv_model(const quench::tensor& w, std::int64_t group = 1, std::int64_t stride = 1) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1,
                        std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{4, {}}, quench::dim{8, {}},
                                                 quench::dim{8, {}}});
  quench::tensor wc = w.clone();
  auto& conv = g.add_node("Conv",
                          {&x, &g.add_initializer(std::move(wc)),
                           &g.add_initializer(quench_test::random_tensor({w.shape()[0]}, "B", 9, 0.1f))},
                          {"y"}, "conv");
  conv.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
  conv.set_attribute(quench::attribute::make_ints("strides", {stride, stride}));
  conv.set_attribute(quench::attribute::make_int("group", group));
  g.add_output(*conv.output(0));
  return m;
}

/// x [N, 16] -> Gemm W [8, 16] (transB) -> y.
quench::model gemm_model(const quench::tensor& w) {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{16, {}}});
  quench::tensor wc = w.clone();
  auto& gemm = g.add_node("Gemm", {&x, &g.add_initializer(std::move(wc))}, {"y"}, "gemm");
  gemm.set_attribute(quench::attribute::make_int("transB", 1));
  g.add_output(*gemm.output(0));
  return m;
}

/// Correlated inputs (white inputs make ||W x - W_soft x||^2 the plain weight error, which
/// round-to-nearest already minimises): [N, K] rows share a common component with per-column
/// gains; [N, C, H, W] images are smooth 2x2 averages of noise shared across channels.
quench::data::tensor_source source_of(quench::shape s, std::uint32_t seed) {
  quench::tensor z = quench_test::random_tensor(s, "z", seed);
  quench::tensor x(quench::dtype::float32, s, "x");
  const float* zd = z.view<float>().data();
  float* xd = x.view<float>().data();
  if (s.rank() == 2) {
    const std::int64_t n = s[0], k = s[1];
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < k; ++j)
        xd[i * k + j] = 0.4f * zd[i * k + j] +
                        (0.5f + 0.1f * static_cast<float>(j)) * zd[i * k + (j + 1) % k] + zd[i * k];
  } else {
    const std::int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    auto at = [&](std::int64_t b, std::int64_t y, std::int64_t xx) {
      return zd[((b * c) * h + std::min(y, h - 1)) * w + std::min(xx, w - 1)];
    };
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t ch = 0; ch < c; ++ch)
        for (std::int64_t y = 0; y < h; ++y)
          for (std::int64_t xx = 0; xx < w; ++xx) {
            const float common =
                0.5f * (at(b, y, xx) + at(b, y + 1, xx) + at(b, y, xx + 1) + at(b, y + 1, xx + 1));
            xd[((b * c + ch) * h + y) * w + xx] =
                (1.f + 0.3f * static_cast<float>(ch)) * common + 0.3f * zd[((b * c + ch) * h + y) * w + xx];
          }
  }
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("x", std::move(x));
  return quench::data::tensor_source(std::move(in));
}

/// Output MSE of the model with weight `wq` against the float model's, on `data`.
double output_mse(const quench::model& ref, const quench::model& q, quench::data::tensor_source& data) {
  quench::runtime::executor a(ref), b(q);
  auto batch = data.read(0, data.size());
  const auto ya = a.run({{"x", &batch[0].second}}), yb = b.run({{"x", &batch[0].second}});
  const float* pa = ya[0].view<float>().data();
  const float* pb = yb[0].view<float>().data();
  double s = 0;
  for (std::size_t i = 0; i < ya[0].size(); ++i) s += (double(pa[i]) - pb[i]) * (double(pa[i]) - pb[i]);
  return s / static_cast<double>(ya[0].size());
}

quench::tensor dequantized(const quench::tensor& q, const quench::qparams& p, const std::string& name) {
  quench::tensor d = quench::dequantize(q, p);
  quench::tensor out(quench::dtype::float32, q.shape(), name);
  std::copy_n(d.view<float>().data(), d.size(), out.view<float>().data());
  return out;
}

/// A random problem for the loss tests: W [3, 5] in 2 groups? One group, rows of X from a generator.
quench::recover::detail::adaround_problem tiny_problem(Eigen::MatrixXf& x) {
  quench::recover::detail::adaround_problem p;
  p.m = 4;
  p.k = 6;
  p.groups = 2;
  std::mt19937 gen(3);
  std::normal_distribution<float> nd;
  p.w.resize(24);
  for (float& v : p.w) v = 0.4f * nd(gen);
  p.scale.resize(4);
  for (std::size_t r = 0; r < 4; ++r) {
    float a = 0;
    for (std::size_t k = 0; k < 6; ++k) a = std::max(a, std::fabs(p.w[r * 6 + k]));
    p.scale[r] = a / 7.f;  // nothing clamps: W_soft(V0) = W exactly
  }
  p.lo.assign(4, -8.f);
  p.hi.assign(4, 7.f);
  p.zero.assign(4, 0);
  x.resize(50, 12);  // 50 rows; columns [0, 6) group 0, [6, 12) group 1
  for (int i = 0; i < x.size(); ++i) x.data()[i] = nd(gen);
  p.rows = 50;
  p.gram.assign(2 * 36, 0.f);
  for (int g = 0; g < 2; ++g) {
    Eigen::MatrixXf s = x.middleCols(6 * g, 6).transpose() * x.middleCols(6 * g, 6) / 50.f;
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 6; ++c) p.gram[static_cast<std::size_t>(g * 36 + r * 6 + c)] = s(r, c);
  }
  return p;
}
}  // namespace

TEST_CASE(
    "adaround: the hand-written gradient matches finite differences; the loss at V0 is the float weights' "
    "(zero)") {
  Eigen::MatrixXf x;
  auto p = tiny_problem(x);
  auto st = quench::recover::detail::adaround_init(p);
  double rec0 = -1;
  quench::recover::detail::adaround_loss(p, st, 2, 0, nullptr, &rec0);
  CHECK(rec0 < 1e-12);  // W_soft = W at V0 (up to float rounding)
  // Move V off its start so the reconstruction term is not at its minimum.
  std::mt19937 gen(4);
  std::normal_distribution<float> nd;
  for (float& v : st.v) v += 0.5f * nd(gen);
  // The Gram form equals the loss written on the rows: mean over rows of sum over outputs.
  {
    double direct = 0;
    for (int r = 0; r < 50; ++r)
      for (int m = 0; m < 4; ++m) {
        const int g = m / 2;
        double d = 0;
        for (int k = 0; k < 6; ++k) {
          const std::size_t i = static_cast<std::size_t>(m * 6 + k);
          const double q = std::min(
              7.0,
              std::max(-8.0, double(st.floor_w[i]) + quench::recover::detail::rectified_sigmoid(st.v[i])));
          d += (p.scale[static_cast<std::size_t>(m)] * q - p.w[i]) * x(r, 6 * g + k);
        }
        direct += d * d;
      }
    double rec = 0;
    quench::recover::detail::adaround_loss(p, st, 2, 0, nullptr, &rec);
    CHECK(rec == doctest::Approx(direct / 50).epsilon(1e-4));
  }
  for (double reg : {0.0, 0.05}) {
    std::vector<float> grad;
    quench::recover::detail::adaround_loss(p, st, 3.0, reg, &grad);
    for (std::size_t i = 0; i < st.v.size(); ++i) {
      const float raw = 1.2f / (1.f + std::exp(-st.v[i])) - 0.1f;
      if (raw < 0.02f || raw > 0.98f) continue;  // h clamped nearby: not differentiable there
      auto plus = st, minus = st;
      const float e = 1e-2f;
      plus.v[i] += e;
      minus.v[i] -= e;
      const double fd = (quench::recover::detail::adaround_loss(p, plus, 3.0, reg, nullptr) -
                         quench::recover::detail::adaround_loss(p, minus, 3.0, reg, nullptr)) /
                        (2 * e);
      CAPTURE(i);
      CAPTURE(reg);
      CHECK(grad[i] == doctest::Approx(fd).epsilon(2e-2).scale(1e-4));
    }
  }
}

TEST_CASE(
    "adaround: 4-bit Conv and Gemm weights beat round-to-nearest on held-out samples, on the grid, "
    "deterministic") {
  struct layer_case {
    const char* name;
    quench::model (*make)(const quench::tensor&);
    quench::shape w, x_calib, x_test;
  };
  const layer_case cases[] = {
      {"conv",
       [](const quench::tensor& w) { return conv_model(w); },
       {6, 4, 3, 3},
       {48, 4, 8, 8},
       {32, 4, 8, 8}},
      {"gemm", gemm_model, {8, 16}, {256, 16}, {256, 16}},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    quench::tensor w = quench_test::random_tensor(c.w, "W", 21, 0.3f);
    const quench::model ref = c.make(w);
    const auto p = quench::pipeline::weight_qparams(w, {quench::dtype::int4, 0});
    auto calib = source_of(c.x_calib, 1);
    quench::recover::adaround_options o;
    o.iterations = 1500;
    o.samples = c.x_calib[0];
    o.learning_rate = 1e-2;
    const auto r = quench::recover::adaround(ref, calib, {{c.name, 1, p}}, o);
    REQUIRE(r.values.count("W"));
    REQUIRE(r.layers.size() == 1);
    const quench::tensor& q = *r.values.at("W");
    CHECK(q.dtype() == quench::dtype::int4);
    CHECK(q.shape() == w.shape());
    MESSAGE(c.name << ": calibration output MSE nearest " << r.layers[0].mse_nearest << ", AdaRound "
                   << r.layers[0].mse_adaround << ", flipped " << r.layers[0].flipped << " of "
                   << r.layers[0].elements);
    CHECK(r.layers[0].mse_adaround < r.layers[0].mse_nearest);
    CHECK(r.layers[0].flipped > 0);
    // (d) floor or ceil of W / s, inside [-8, 7].
    const quench::tensor qn = quench::quantize(w, p);
    const std::uint8_t* bytes = reinterpret_cast<const std::uint8_t*>(q.bytes());
    const std::uint8_t* nbytes = reinterpret_cast<const std::uint8_t*>(qn.bytes());
    std::size_t differ = 0;
    const std::size_t per_channel = w.size() / static_cast<std::size_t>(c.w[0]);
    for (std::size_t i = 0; i < w.size(); ++i) {
      const int v = quench::get_int4(bytes, i), vn = quench::get_int4(nbytes, i);
      const float xs = w.view<float>()[i] / p.scales[i / per_channel];
      CHECK(v >= -8);
      CHECK(v <= 7);
      CHECK((v == std::floor(xs) || v == std::ceil(xs) || v == 7 || v == -8));
      CHECK(std::abs(v - vn) <= 1);
      differ += v != vn;
    }
    CHECK(differ == r.layers[0].flipped);
    // (c) held-out samples: the layer's output error is lower with AdaRound's rounding.
    auto test = source_of(c.x_test, 2);
    const double mse_ada = output_mse(ref, c.make(dequantized(q, p, "W")), test);
    const double mse_near = output_mse(ref, c.make(dequantized(qn, p, "W")), test);
    MESSAGE(c.name << ": held-out output MSE nearest " << mse_near << ", AdaRound " << mse_ada);
    CHECK(mse_ada < 0.8 * mse_near);
    // (f) the same inputs give the same bytes, with any thread count.
    o.threads = 2;
    auto calib2 = source_of(c.x_calib, 1);
    const auto r2 = quench::recover::adaround(ref, calib2, {{c.name, 1, p}}, o);
    CHECK(std::equal(q.bytes(), q.bytes() + q.nbytes(), r2.values.at("W")->bytes()));
  }
}

TEST_CASE(
    "adaround: int8 qparams with a narrow 4-bit range stay in it; progress is reported; several layers at "
    "once") {
  quench::tensor w = quench_test::random_tensor({6, 1, 3, 3}, "W", 5, 0.3f);
  const quench::model ref =
      conv_model(quench_test::random_tensor({4, 1, 3, 3}, "W", 5, 0.3f), 4, 2);  // depthwise, stride 2
  const quench::tensor& wd = *ref.main_graph().find_value("W")->initializer();
  std::vector<float> scales(4);
  for (std::size_t c = 0; c < 4; ++c) {
    float a = 0;
    for (std::size_t i = 0; i < 9; ++i) a = std::max(a, std::fabs(wd.view<float>()[c * 9 + i]));
    scales[c] = a / 7;
  }
  adaround_target t{"conv", 1, quench::qparams::per_axis(quench::dtype::int8, 0, scales)};
  t.range = {-7, 7};
  auto calib = source_of({16, 4, 8, 8}, 3);
  quench::recover::adaround_options o;
  o.iterations = 200;
  o.samples = 16;
  o.batch_size = 5;
  std::int64_t calls = 0;
  o.progress = [&](const quench::recover::adaround_progress& pr) {
    ++calls;
    CHECK(pr.name == "conv");
    CHECK(pr.iterations == 200);
  };
  const auto r = quench::recover::adaround(ref, calib, {t}, o);
  CHECK(calls == 200);
  const quench::tensor& q = *r.values.at("W");
  CHECK(q.dtype() == quench::dtype::int8);
  for (std::size_t i = 0; i < q.size(); ++i) {
    CHECK(q.view<std::int8_t>()[i] >= -7);
    CHECK(q.view<std::int8_t>()[i] <= 7);
  }
  CHECK(r.layers[0].mse_adaround <= r.layers[0].mse_nearest);
}

TEST_CASE("adaround: bad targets are errors naming them") {
  quench::tensor w = quench_test::random_tensor({6, 4, 3, 3}, "W", 21, 0.3f);
  const quench::model m = conv_model(w);
  const auto p = quench::pipeline::weight_qparams(w, {quench::dtype::int4, 0});
  auto calib = source_of({4, 4, 8, 8}, 1);
  quench::recover::adaround_options o;
  o.iterations = 2;
  auto fails = [&](const std::vector<adaround_target>& t, const std::string& needle) {
    try {
      quench::recover::adaround(m, calib, t, o);
      FAIL("no error for " << needle);
    } catch (const quench::error& e) {
      CAPTURE(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  fails({{"nope", 1, p}}, "'nope'");
  fails({{"conv", 0, p}}, "input 0");
  fails({{"conv", 1, quench::qparams::per_axis(quench::dtype::int4, 0, {0.1f, 0.1f})}},
        "'W' qparams");  // 2 scales for 6 channels
  fails({{"conv", 1, quench::qparams::per_axis(quench::dtype::int4, 1, {0.1f, 0.1f, 0.1f, 0.1f})}}, "axis 0");
  fails({{"conv", 1, quench::qparams::per_tensor(quench::dtype::float32, 0.1f)}}, "'W' qparams");
  fails({{"conv", 1, p}, {"conv", 1, p}}, "already a target");
  // A weight that is a graph input, not a constant.
  quench::model g2;
  g2.set_opset("", 13);
  auto& g = g2.main_graph();
  auto& x = g.add_input("x", 1, std::vector<quench::dim>{quench::dim{{}, "N"}, quench::dim{16, {}}});
  auto& wi = g.add_input("Wi", 1, std::vector<quench::dim>{quench::dim{16, {}}, quench::dim{4, {}}});
  auto& mm = g.add_node("MatMul", {&x, &wi}, {"y"}, "mm");
  g.add_output(*mm.output(0));
  try {
    quench::recover::adaround(g2, calib, {{"mm", 1, quench::qparams::per_tensor(quench::dtype::int8, 0.1f)}},
                              o);
    FAIL("no error for a non-constant weight");
  } catch (const quench::error& e) {
    CHECK(std::string(e.what()).find("'Wi' is not a constant") != std::string::npos);
  }
}

TEST_CASE(
    "adaround: V after 40 Adam steps matches torch's autograd + Adam on the paper's loss (Conv group 2 "
    "stride 2, Gemm)") {
  const std::filesystem::path dir = std::filesystem::path(QUENCH_TEST_BINARY_DIR) / "data" / "recover";
  if (!std::filesystem::exists(dir / "conv_v.npy")) {
    MESSAGE("reference data missing: run ctest's recover_reference_data first");
    CHECK(false);
    return;
  }
  for (const char* name : {"conv", "gemm"}) {
    const std::string n(name);
    CAPTURE(n);
    quench::tensor x = quench::read_npy(dir / (n + "_x.npy"));
    quench::tensor w = quench::read_npy(dir / (n + "_w.npy"));
    const quench::tensor s = quench::read_npy(dir / (n + "_scale.npy"));
    const quench::tensor v = quench::read_npy(dir / (n + "_v.npy"));
    const quench::tensor qt = quench::read_npy(dir / (n + "_q.npy"));
    w.set_name("W");
    quench::model m;
    m.set_opset("", 13);
    auto& g = m.main_graph();
    std::vector<quench::dim> dims;
    dims.push_back(quench::dim{{}, "N"});
    for (std::size_t i = 1; i < x.rank(); ++i) dims.push_back(quench::dim{x.shape()[i], {}});
    auto& xi = g.add_input("x", 1, dims);
    auto& layer =
        g.add_node(n == "conv" ? "Conv" : "Gemm", {&xi, &g.add_initializer(w.clone())}, {"y"}, name);
    if (n == "conv") {
      layer.set_attribute(quench::attribute::make_ints("pads", {1, 1, 1, 1}));
      layer.set_attribute(quench::attribute::make_ints("strides", {2, 2}));
      layer.set_attribute(quench::attribute::make_int("group", 2));
    } else {
      layer.set_attribute(quench::attribute::make_int("transB", 1));
    }
    g.add_output(*layer.output(0));
    std::vector<std::pair<std::string, quench::tensor>> in;
    in.emplace_back("x", x.clone());
    quench::data::tensor_source src(std::move(in));
    std::vector<float> scales(s.view<float>().data(), s.view<float>().data() + s.size());
    const std::vector<adaround_target> targets{
        {name, 1, quench::qparams::per_axis(quench::dtype::int4, 0, scales)}};
    quench::recover::adaround_options o;
    o.iterations = 40;
    o.learning_rate = 1e-2;
    o.samples = x.shape()[0];
    o.batch_size = 3;  // the collection pass in uneven batches
    double secs = 0;
    auto specs = quench::recover::detail::adaround_prepare(m, src, targets, o, secs);
    std::vector<std::size_t> index;
    const auto pr = quench::recover::detail::adaround_problem_of(specs[0], targets[0], index);
    auto st = quench::recover::detail::adaround_init(pr);
    const quench::tensor v0 = quench::read_npy(dir / (n + "_v0.npy"));
    // torch's V0 before its offset is ours.
    for (std::size_t i = 0; i < st.v.size(); ++i) st.v[i] = v0.view<float>()[index[i]];
    quench::recover::detail::adaround_optimize(pr, st, o, {});
    double worst = 0;
    for (std::size_t i = 0; i < st.v.size(); ++i)
      worst = std::max(worst, std::fabs(double(st.v[i]) - v.view<float>()[index[i]]));
    MESSAGE(name << ": max |V - V_torch| after 40 steps = " << worst);
    CHECK(worst < 2e-4);
    // Hard rounding of our V equals torch's.
    std::size_t mismatch = 0;
    for (std::size_t i = 0; i < st.v.size(); ++i) {
      const float up = quench::recover::detail::rectified_sigmoid(st.v[i]) >= 0.5f ? 1.f : 0.f;
      mismatch += std::min(7.f, std::max(-8.f, st.floor_w[i] + up)) !=
                  static_cast<float>(qt.view<std::int32_t>()[index[i]]);
    }
    CHECK(mismatch == 0);
  }
}
