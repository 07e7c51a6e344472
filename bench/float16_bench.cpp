// Whole-model float16 conversion of a large model, against loading and saving it unchanged in the
// same run (quench/pipeline/float16.hpp).
//
// The model: 2,048 blocks of MatMul(256 x 256 float weight) -> Add(bias) -> Relu, i.e. 6,144 nodes
// and 539 MB (514 MiB) of float32 initializers. It is built once per process in a temporary
// directory (QUENCH_BENCH_DIR, else the system temp dir), removed at exit, in two forms:
//   external  the weights in one external data file beside the model (how large models ship)
//   inline    every tensor inside the protobuf
//
// BM_convert/<form>, per iteration, interleaved (alternating order, each after a sync, so the
// kernel's write-back of one does not land on the other):
//   baseline  load_model + save_model, no conversion: reading and writing those bytes
//   convert   load_model + convert_float16 + save_model
// ratio_to_load_save = convert time / baseline time (target <= 2). convert_only_s is the
// conversion alone (bulk SIMD float -> float16 plus the graph work), measured inside `convert`.
//
//   build/bin/quench_float16_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/float16.hpp"

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

constexpr int kBlocks = 2048;
constexpr std::int64_t kDim = 256;

double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

struct fixture {
  fs::path dir;
  fs::path model[2];  // external, inline
  std::uint64_t weight_bytes = 0;

  fixture() {
    const char* env = std::getenv("QUENCH_BENCH_DIR");
    dir = fs::path(env ? env : fs::temp_directory_path().string()) / ("quench_float16_bench_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    quench::model m;
    m.producer_name = "quench_float16_bench";
    m.ir_version = 8;
    m.opset_imports.push_back({"", 17, false});
    quench::graph& g = m.main_graph();
    quench::value* x = &g.add_input("x", 1, std::vector<quench::dim>{{1, {}}, {kDim, {}}});
    std::uint32_t s = 2463534242u;  // xorshift: deterministic and cheap; values well inside float16's range
    auto fill = [&](quench::tensor& t) {
      float* f = t.view<float>().data();
      for (std::size_t i = 0; i < t.size(); ++i) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        f[i] = static_cast<float>(static_cast<std::int32_t>(s)) * (1.f / 2147483648.f) * 0.0625f;
      }
    };
    for (int i = 0; i < kBlocks; ++i) {
      const std::string id = std::to_string(i);
      quench::tensor w(quench::dtype::float32, {kDim, kDim}, "w" + id);
      quench::tensor b(quench::dtype::float32, {kDim}, "b" + id);
      fill(w);
      fill(b);
      weight_bytes += w.nbytes() + b.nbytes();
      quench::value& wv = g.add_initializer(std::move(w));
      quench::value& bv = g.add_initializer(std::move(b));
      quench::node& mm = g.add_node("MatMul", {x, &wv}, {"mm" + id}, "matmul" + id);
      quench::node& add = g.add_node("Add", {mm.output(0), &bv}, {"add" + id}, "add" + id);
      x = g.add_node("Relu", {add.output(0)}, {"relu" + id}, "relu" + id).output(0);
    }
    x->set_elem_type(1);
    x->set_dims(std::vector<quench::dim>{{1, {}}, {kDim, {}}});
    g.add_output(*x);
    model[0] = dir / "external.onnx";
    model[1] = dir / "inline.onnx";
    quench::onnx::save_options o;
    o.external_threshold = 4096;  // the weights; biases stay inline
    quench::onnx::save_model(m, model[0], o);
    quench::onnx::save_model(m, model[1]);
  }
  ~fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

fixture& the_model() {
  static fixture f;
  return f;
}

void BM_convert(benchmark::State& state) {
  fixture& f = the_model();
  const fs::path& in = f.model[state.range(0)];
  const fs::path out_base = f.dir / "baseline_out.onnx", out_conv = f.dir / "float16_out.onnx";
  double base_s = 0, conv_s = 0, convert_only_s = 0, best_ratio = 1e30;
  bool baseline_first = true;
  for (auto _ : state) {
    double b = 0, c = 0;
    auto run_baseline = [&] {
      ::sync();
      const auto t0 = clock_type::now();
      const quench::model m = quench::onnx::load_model(in);
      quench::onnx::save_model(m, out_base);
      b = seconds_since(t0);
    };
    auto run_convert = [&] {
      ::sync();
      const auto t0 = clock_type::now();
      quench::model m = quench::onnx::load_model(in);
      const auto t1 = clock_type::now();
      const auto report = quench::pipeline::convert_float16(m);
      convert_only_s += seconds_since(t1);
      quench::onnx::save_model(m, out_conv);
      c = seconds_since(t0);
      benchmark::DoNotOptimize(report.bytes_after);
    };
    if (baseline_first) {
      run_baseline();
      run_convert();
    } else {
      run_convert();
      run_baseline();
    }
    baseline_first = !baseline_first;
    base_s += b;
    conv_s += c;
    best_ratio = std::min(best_ratio, c / b);
    state.SetIterationTime(c);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["weights_MB"] = static_cast<double>(f.weight_bytes) / 1e6;
  state.counters["load_save_s"] = base_s / n;
  state.counters["convert_s"] = conv_s / n;
  state.counters["convert_only_s"] = convert_only_s / n;
  state.counters["ratio_to_load_save"] = conv_s / base_s;
  state.counters["best_ratio"] = best_ratio;
  state.counters["convert_GB/s"] = static_cast<double>(f.weight_bytes) / 1e9 / (convert_only_s / n);
}
BENCHMARK(BM_convert)->Arg(0)->Arg(1)->ArgName("inline")->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(6);

}  // namespace

BENCHMARK_MAIN();
