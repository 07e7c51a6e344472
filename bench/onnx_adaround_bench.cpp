// AdaRound against round-to-nearest for W4A8 (4-bit per-channel weights, 8-bit activations,
// profile "ort"): output SQNR against the float model, top-1 accuracy when labels are given, and
// AdaRound's time per layer and in total.
//
//   quench_onnx_adaround_bench MODEL.onnx INPUT CALIB.npy|random:N:C:H:W TEST.npy|random:N [LABELS.npy]
//                              [--iterations 10000] [--samples 256] [--threads 2]
//
//   digits:    quench_onnx_adaround_bench examples/data/digits/digits_cnn.onnx input
//                examples/data/digits/digits_calib.npy examples/data/digits/digits_test.npy
//                examples/data/digits/digits_test_labels.npy
//   MobileNet: quench_onnx_adaround_bench mobilenet_op13.onnx input random:256:3:32:32 random:64
//
// quantize_static refuses per-channel (unblocked) int4 weights, so the 4-bit weights are int8
// qparams with scale max|w| / 7 per output channel and the integer range [-7, 7] (AdaRound's
// target range): numerically W4, stored in int8. Both runs use the same qparams; only the
// rounding differs. Activations are the usual calibrated uint8 (min-max/entropy/... selection).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_static.hpp"
#include "quench/recover/adaround.hpp"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

quench::tensor load_or_random(const std::string& spec, const std::vector<std::int64_t>& like,
                              std::uint32_t seed) {
  if (spec.rfind("random:", 0) != 0) return quench::read_npy(spec);
  std::vector<std::int64_t> dims;
  std::size_t pos = 7;
  while (pos <= spec.size()) {
    const std::size_t next = spec.find(':', pos);
    dims.push_back(std::stoll(spec.substr(pos, next - pos)));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  if (dims.size() == 1)
    for (std::size_t i = 1; i < like.size(); ++i) dims.push_back(like[i]);
  quench::tensor t(quench::dtype::float32, quench::shape(dims), "input");
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd;
  for (std::size_t i = 0; i < t.size(); ++i) t.view<float>()[i] = nd(gen);
  return t;
}

quench::data::tensor_source source_of(const std::string& input, const quench::tensor& t) {
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back(input, t.clone());
  return quench::data::tensor_source(std::move(in));
}

double accuracy(const quench::model& m, const std::string& input, const quench::tensor& x,
                const quench::tensor& labels) {
  quench::runtime::executor ex(m);
  const std::int64_t n = x.shape()[0];
  std::int64_t right = 0;
  for (std::int64_t first = 0; first < n; first += 64) {
    const std::int64_t count = std::min<std::int64_t>(64, n - first);
    auto src = source_of(input, x);
    auto b = src.read(first, count);
    const auto y = ex.run({{input, &b[0].second}});
    const std::int64_t classes = y[0].shape()[1];
    for (std::int64_t i = 0; i < count; ++i) {
      const float* row = y[0].view<float>().data() + i * classes;
      const std::int64_t arg = std::max_element(row, row + classes) - row;
      right += arg == labels.view<std::int64_t>()[static_cast<std::size_t>(first + i)];
    }
  }
  return 100.0 * static_cast<double>(right) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: %s MODEL.onnx INPUT CALIB.npy|random:N:C:H:W TEST.npy|random:N [LABELS.npy] "
                 "[--iterations N] [--samples N] [--threads N]\n",
                 argv[0]);
    return 2;
  }
  const std::string path = argv[1], input = argv[2];
  std::string labels_path;
  quench::recover::adaround_options ao;
  for (int i = 5; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc)
      ao.iterations = std::atoll(argv[++i]);
    else if (a == "--samples" && i + 1 < argc)
      ao.samples = std::atoll(argv[++i]);
    else if (a == "--threads" && i + 1 < argc)
      ao.threads = std::atoi(argv[++i]);
    else
      labels_path = a;
  }
  const quench::model original = quench::onnx::load_model(path);
  // The model quantize_static will see: its clean-up passes (BatchNorm folded) and node names.
  quench::model prepared = quench::onnx::load_model(path);
  quench::passes::standard_passes(prepared.main_graph(), prepared.opset());
  quench::pipeline::detail::name_all_nodes(prepared.main_graph());
  prepared.main_graph().topological_sort();

  const quench::tensor calib = load_or_random(argv[3], {}, 1);
  const quench::tensor test =
      load_or_random(argv[4], std::vector<std::int64_t>(calib.shape().begin(), calib.shape().end()), 2);
  std::printf("model %s: calibration %s, test %s, AdaRound %lld iterations on %lld samples, %d threads\n",
              path.c_str(), quench::to_string(calib.shape()).c_str(), quench::to_string(test.shape()).c_str(),
              static_cast<long long>(ao.iterations), static_cast<long long>(ao.samples), ao.threads);

  // Plain W4A8 first: it gives the plan (which weights, which axis).
  quench::pipeline::quantize_options qo;
  auto run = [&](const quench::pipeline::quantize_options& o, quench::model& m) {
    auto src = source_of(input, calib);
    return quench::pipeline::quantize_static(m, src, o);
  };
  quench::model probe = quench::onnx::load_model(path);
  const auto r8 = run(qo, probe);
  std::vector<quench::recover::adaround_target> targets;
  std::map<std::string, quench::qparams> params;
  for (const auto& pw : r8.plan.weights) {
    const quench::node* n = nullptr;
    for (const quench::node* c : prepared.main_graph().nodes())
      if (c->name() == pw.node) n = c;
    if (!n || !(n->is("Conv") || n->is("Gemm") || n->is("MatMul"))) continue;
    const quench::tensor& w = *n->input(pw.input)->initializer();
    // Symmetric 4 bits in int8: scale max|w| / 7 per output channel, values in [-7, 7].
    const std::size_t axis = static_cast<std::size_t>(pw.axis),
                      dim = static_cast<std::size_t>(w.shape()[axis]);
    const std::size_t inner = w.shape().inner(axis);
    std::vector<float> scales(dim, 0.f);
    for (std::size_t i = 0; i < w.size(); ++i) {
      float& s = scales[(i / inner) % dim];
      s = std::max(s, std::fabs(w.view<float>()[i]));
    }
    for (float& s : scales) s = s > 0 ? s / 7.f : 1.f;
    const quench::qparams p = quench::qparams::per_axis(quench::dtype::int8, pw.axis, scales);
    quench::recover::adaround_target t{pw.node, pw.input, p};
    t.range = {-7, 7};
    targets.push_back(t);
    params[n->input(pw.input)->name()] = p;
  }

  auto evaluate = [&](const char* label, quench::model& q, double seconds) {
    auto src = source_of(input, test);
    quench::pipeline::compare_options co;
    co.samples = test.shape()[0];
    co.batch_size = 16;
    const double sqnr = quench::pipeline::compare_models(original, q, src, {}, co).output_sqnr_db();
    if (!labels_path.empty())
      std::printf("%-22s output SQNR %6.2f dB   accuracy %6.2f %%   %.1f s\n", label, sqnr,
                  accuracy(q, input, test, quench::read_npy(labels_path)), seconds);
    else
      std::printf("%-22s output SQNR %6.2f dB   %.1f s\n", label, sqnr, seconds);
  };
  if (!labels_path.empty())
    std::printf("%-22s accuracy %6.2f %%\n", "float",
                accuracy(original, input, test, quench::read_npy(labels_path)));
  {
    quench::model q = quench::onnx::load_model(path);
    auto t0 = now();
    run(qo, q);
    evaluate("W8A8 nearest", q, now() - t0);
  }
  qo.weight_params = params;
  {
    quench::model q = quench::onnx::load_model(path);
    auto t0 = now();
    run(qo, q);
    evaluate("W4A8 nearest", q, now() - t0);
  }
  const double t0 = now();
  auto calib_src = source_of(input, calib);
  const auto ar = quench::recover::adaround(prepared, calib_src, targets, ao);
  const double t_ada = now() - t0;
  double sum_layers = 0;
  for (const auto& l : ar.layers) {
    std::printf("  %-28s %7zu weights  layer MSE nearest %.3e -> %.3e  flipped %5.1f %%  %.2f s\n",
                l.node.c_str(), l.elements, l.mse_nearest, l.mse_adaround,
                100.0 * static_cast<double>(l.flipped) / static_cast<double>(l.elements), l.seconds);
    sum_layers += l.seconds;
  }
  std::printf(
      "AdaRound: %zu layers, inputs collected in %.1f s, layers %.1f s (sum of per-layer times), total %.1f "
      "s\n",
      ar.layers.size(), ar.collect_seconds, sum_layers, t_ada);
  qo.weight_values = ar.values;
  {
    quench::model q = quench::onnx::load_model(path);
    auto t1 = now();
    run(qo, q);
    evaluate("W4A8 AdaRound", q, now() - t1 + t_ada);
  }
  return 0;
}
