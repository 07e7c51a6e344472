// End-to-end calibration cost: the MobileNetV3-style network of tests/e2e/make_torch_models.py
// (opset 13, exported at start-up with python3-torch) on 256 samples of 3x224x224 in batches of 8,
// calibrated with each method, against plain inference over the same batches in the same run.
// Counters:
//   ratio_to_inference   calibration time / inference time (the target for entropy: <= 1.3)
//   observed_tensors     activations with an observer
//   ranges_s             of calibration_s, the range computation from the collected state
// quantize_network: the whole of quench::pipeline::quantize_static (clean-up passes, probe run,
// calibration of the tensors the QDQ placement needs, Q/DQ insertion) for the ort profile, against
// the same inference (the PTQ issue's target for entropy: <= 1.5).
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "quench/calib/calibrate.hpp"
#include "quench/pipeline/quantize_static.hpp"
#include "quench/onnx/model_io.hpp"

namespace fs = std::filesystem;

namespace {

const std::string source_dir = QUENCH_SOURCE_DIR;
constexpr std::int64_t samples = 256, batch = 8;

const fs::path& model_path() {
  static const fs::path path = [] {
    const fs::path d = fs::temp_directory_path() / ("quench_calibrate_bench_" + std::to_string(::getpid()));
    fs::create_directories(d);
    const std::string cmd = "/usr/bin/python3 " + source_dir + "/tests/e2e/make_torch_models.py " + d.string() +
                            " --size 224 --batch 1 --opsets 13 --models mobilenet --batchnorm fold > /dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "exporting the benchmark model failed: %s\n", cmd.c_str());
      std::exit(1);
    }
    return d / "mobilenet_op13.onnx";
  }();
  return path;
}

quench::data::tensor_source& data() {
  static quench::data::tensor_source src = [] {
    quench::tensor x(quench::dtype::float32, {samples, 3, 224, 224});
    std::mt19937 rng(0);
    std::normal_distribution<float> n(0.f, 1.f);
    for (auto& v : x.view<float>()) v = n(rng);
    std::vector<std::pair<std::string, quench::tensor>> in;
    in.emplace_back("input", std::move(x));
    return quench::data::tensor_source(std::move(in));
  }();
  return src;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void calibrate_network(benchmark::State& state, quench::calib::method method) {
  const quench::model m = quench::onnx::load_model(model_path());
  auto& src = data();
  // Plain inference over the same batches (a warm-up run first, as for calibration).
  quench::runtime::executor ex(m);
  auto infer = [&] {
    for (std::int64_t first = 0; first < samples; first += batch) {
      auto b = src.read(first, batch);
      auto out = ex.run({{"input", &b[0].second}});
      benchmark::DoNotOptimize(out);
    }
  };
  infer();
  auto t0 = std::chrono::steady_clock::now();
  infer();
  const double inference = seconds_since(t0);
  quench::calib::calibrate_options opt;
  opt.method = method;
  opt.batch_size = batch;
  std::size_t observed = 0;
  double best = 1e30, ranges_s = 0;
  for (auto _ : state) {
    t0 = std::chrono::steady_clock::now();
    quench::calib::calibration_result result;
    result.state = quench::calib::collect(m, src, opt);
    ranges_s = seconds_since(t0);
    result.table = quench::calib::compute_ranges(result.state);
    const double s = seconds_since(t0);
    ranges_s = s - ranges_s;
    best = std::min(best, s);
    state.SetIterationTime(s);
    observed = result.state.size();
  }
  state.counters["inference_s"] = inference;
  state.counters["calibration_s"] = best;
  state.counters["ratio_to_inference"] = best / inference;
  state.counters["observed_tensors"] = static_cast<double>(observed);
  state.counters["ranges_s"] = ranges_s;
}

void quantize_network(benchmark::State& state, quench::calib::method method) {
  auto& src = data();
  const quench::model float_model = quench::onnx::load_model(model_path());
  quench::runtime::executor ex(float_model);
  auto infer = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t first = 0; first < samples; first += batch) {
      auto b = src.read(first, batch);
      auto out = ex.run({{"input", &b[0].second}});
      benchmark::DoNotOptimize(out);
    }
    return seconds_since(t0);
  };
  infer();  // warm-up
  quench::pipeline::quantize_options opt;
  opt.calibration.method = method;
  opt.calibration.batch_size = batch;
  // Inference and quantization alternate, each keeping its best time, so a burst of load on this
  // shared machine hits both alike.
  double best = 1e30, inference = 1e30;
  std::size_t quantized = 0;
  for (auto _ : state) {
    inference = std::min(inference, infer());
    quench::model m = quench::onnx::load_model(model_path());  // quantize_static works in place
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = quench::pipeline::quantize_static(m, src, opt);
    const double s = seconds_since(t0);
    best = std::min(best, s);
    state.SetIterationTime(s);
    quantized = r.inserted.activations.size();
  }
  state.counters["inference_s"] = inference;
  state.counters["quantize_s"] = best;
  state.counters["ratio_to_inference"] = best / inference;
  state.counters["quantized_activations"] = static_cast<double>(quantized);
}

}  // namespace

BENCHMARK_CAPTURE(quantize_network, mobilenet_256x224_entropy, quench::calib::method::entropy)->UseManualTime()->Iterations(4)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_network, mobilenet_256x224_minmax, quench::calib::method::minmax)->UseManualTime()->Iterations(4)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(calibrate_network, mobilenet_256x224_minmax, quench::calib::method::minmax)->UseManualTime()->Iterations(2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(calibrate_network, mobilenet_256x224_entropy, quench::calib::method::entropy)->UseManualTime()->Iterations(2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(calibrate_network, mobilenet_256x224_percentile, quench::calib::method::percentile)->UseManualTime()->Iterations(2)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(model_path().parent_path(), ec);
  return 0;
}
