// quench's reference executor against ONNX Runtime (single thread) on the ResNet-style and
// MobileNetV3-style networks of tests/e2e/make_torch_models.py at batch 8, 224x224.
//
// The models are exported at start-up into a temporary directory (python3-torch). quench runs in
// this process; ONNX Runtime runs in a node child process (bench/ort_time.js) on the same model
// file and input bytes, timed inside that process. Counters:
//   ratio_to_ort   quench time / ORT time (the target: <= 2)
//   mem_ratio      quench peak RSS growth / ORT peak RSS growth for one session + runs
#include <benchmark/benchmark.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "quench/onnx/model_io.hpp"
#include "quench/runtime/executor.hpp"

namespace fs = std::filesystem;

namespace {

/// The source tree (bench/CMakeLists.txt defines QUENCH_SOURCE_DIR).
const std::string source_dir = QUENCH_SOURCE_DIR;

/// Set by --model-dir in child mode: the parent's exported models.
fs::path given_model_dir;
/// The directory this process exported into (removed at exit).
fs::path exported_dir;

const fs::path& model_dir() {
  static const fs::path dir = [] {
    if (!given_model_dir.empty()) return given_model_dir;
    fs::path d = fs::temp_directory_path() / ("quench_executor_bench_" + std::to_string(::getpid()));
    fs::create_directories(d);
    exported_dir = d;
    const std::string cmd = "/usr/bin/python3 " + source_dir + "/tests/e2e/make_torch_models.py " + d.string() +
                            " --size 224 --batch 8 --opsets 13 --models resnet,mobilenet --batchnorm fold > /dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "exporting the benchmark models failed: %s\n", cmd.c_str());
      std::exit(1);
    }
    return d;
  }();
  return dir;
}

quench::tensor input_of(const std::string& name) {
  quench::tensor x(quench::dtype::float32, {8, 3, 224, 224});
  std::ifstream in(model_dir() / (name + "_input.bin"), std::ios::binary);
  in.read(reinterpret_cast<char*>(x.bytes()), static_cast<std::streamsize>(x.nbytes()));
  return x;
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

/// Child mode (`--measure-peak NAME`, see main): load + prepare + one run in a fresh process, and
/// print the peak RSS growth over the process's size before loading, in bytes.
int measure_peak(const std::string& name) {
  const quench::tensor x = input_of(name);
  const long before = rss_kib();
  {
    const quench::model m = quench::onnx::load_model(model_dir() / (name + "_op13.onnx"));
    quench::runtime::executor ex(m);
    auto out = ex.run({{"input", &x}});
    benchmark::DoNotOptimize(out);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("%.0f\n", (static_cast<double>(ru.ru_maxrss) - static_cast<double>(before)) * 1024.0);
  return 0;
}

/// Peak RSS growth of load + prepare + one run, measured in a freshly executed copy of this
/// program: a forked child would start with this process's heap already resident.
double quench_peak_delta_bytes(const std::string& name) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string cmd = "'" + self + "' --measure-peak " + name + " --model-dir '" + model_dir().string() + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  double delta = 0;
  char line[128] = {};
  if (p && std::fgets(line, sizeof line, p.get())) delta = std::atof(line);
  return delta;
}

struct ort_result {
  double seconds = 0;
  double peak_delta = 0;
};

ort_result ort_time(const std::string& name, int runs) {
  const std::string cmd = "node " + source_dir + "/bench/ort_time.js " + (model_dir() / (name + "_op13.onnx")).string() +
                          " input " + (model_dir() / (name + "_input.bin")).string() + " 8,3,224,224 " +
                          std::to_string(runs);
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  ort_result r;
  char line[512] = {};
  if (p && std::fgets(line, sizeof line, p.get()))
    std::sscanf(line, "{\"seconds_per_run\":%lf,\"peak_rss_delta_bytes\":%lf}", &r.seconds, &r.peak_delta);
  return r;
}

void run_network(benchmark::State& state, const std::string& name) {
  const quench::model m = quench::onnx::load_model(model_dir() / (name + "_op13.onnx"));
  const quench::tensor x = input_of(name);
  quench::runtime::executor ex(m);
  ex.run({{"input", &x}});  // warm-up
  for (auto _ : state) {
    auto out = ex.run({{"input", &x}});
    benchmark::DoNotOptimize(out);
  }
  // The baseline, in the same run: ORT on the same file and bytes, as many runs.
  const ort_result ort = ort_time(name, static_cast<int>(state.iterations()));
  // Rate counters divide by the measured (real) time; inverted, they give time per unit:
  // elapsed / iterations = quench seconds per run, elapsed / (iterations * ort) = the ratio.
  const auto iters = static_cast<double>(state.iterations());
  state.counters["ort_seconds"] = ort.seconds;
  state.counters["quench_seconds"] = benchmark::Counter(iters, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["ratio_to_ort"] =
      benchmark::Counter(iters * ort.seconds, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  const double mine = quench_peak_delta_bytes(name);
  state.counters["quench_peak_MB"] = mine / 1e6;
  state.counters["ort_peak_MB"] = ort.peak_delta / 1e6;
  state.counters["mem_ratio"] = ort.peak_delta > 0 ? mine / ort.peak_delta : 0;
}

}  // namespace

BENCHMARK_CAPTURE(run_network, resnet_b8_224, std::string("resnet"))->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(run_network, mobilenet_b8_224, std::string("mobilenet"))->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--measure-peak" && std::string(argv[3]) == "--model-dir") {
    given_model_dir = argv[4];
    return measure_peak(argv[2]);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (!exported_dir.empty()) fs::remove_all(exported_dir);
  return 0;
}
