// Loading and saving a large model with external data, against plain protobuf in the same run.
//
// The model: 3,400 blocks of MatMul(200x200 float weight) -> Add(bias) -> Relu, i.e. 10,200 nodes
// and 544 MB (519 MiB) of weights in one external data file; the biases (800 bytes each) stay in
// the protobuf. It is built once per process in a temporary directory (QUENCH_BENCH_DIR, else the
// system temp dir) and removed at exit.
//
// BM_load_save, per iteration, interleaved (in alternating order, after a sync) so that drift of the
// machine and the kernel's write-back affect both alike:
//   quench:   load_model (mmap the external file, build the graph view) + save_model (external)
//   protobuf: read the model file, ParseFromString, read the external data file into memory,
//             SerializeToString, write both files
// ratio_to_protobuf = quench time / protobuf time (target <= 1.5: I/O, not quench, dominates).
//
// BM_peak_rss runs each of the two once in a fresh child process (this binary re-executed with
// --peak=quench|protobuf) and reports the child's peak resident set (ru_maxrss via wait4) as a
// ratio to the model's size on disk (target <= 1.3: initializer bytes are mapped, not copied).
//
//   build/bin/quench_onnx_io_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"

namespace {

namespace fs = std::filesystem;

constexpr int kBlocks = 3400;
constexpr std::int64_t kDim = 200;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s;
  in.seekg(0, std::ios::end);
  s.resize(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return s;
}

void write_file(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// The synthetic model on disk, made once per process.
struct fixture {
  fs::path dir, model, data;
  std::uint64_t model_bytes = 0;  // model.onnx + its external data file

  fixture() {
    const char* env = std::getenv("QUENCH_BENCH_DIR");
    dir = fs::path(env ? env : fs::temp_directory_path().string()) / ("quench_onnx_io_bench_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    model = dir / "model.onnx";
    data = dir / "model.onnx.data";

    quench::model m;
    m.producer_name = "quench_onnx_io_bench";
    m.opset_imports.push_back({"", 17, false});
    quench::graph& g = m.main_graph();
    quench::value* x = &g.add_input("x", 1, std::vector<quench::dim>{{1, {}}, {kDim, {}}});
    std::uint32_t state = 12345;  // xorshift: deterministic weights, cheap to make
    auto fill = [&](quench::tensor& t) {
      float* f = reinterpret_cast<float*>(t.bytes());
      for (std::size_t i = 0; i < t.size(); ++i) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        f[i] = static_cast<float>(static_cast<std::int32_t>(state)) * 1e-11f;
      }
    };
    for (int i = 0; i < kBlocks; ++i) {
      const std::string id = std::to_string(i);
      quench::tensor w(quench::dtype::float32, {kDim, kDim}, "w" + id);
      quench::tensor b(quench::dtype::float32, {kDim}, "b" + id);
      fill(w);
      fill(b);
      quench::value& wv = g.add_initializer(std::move(w));
      quench::value& bv = g.add_initializer(std::move(b));
      quench::node& mm = g.add_node("MatMul", {x, &wv}, {"mm" + id}, "matmul" + id);
      quench::node& add = g.add_node("Add", {mm.output(0), &bv}, {"add" + id}, "add" + id);
      quench::node& relu = g.add_node("Relu", {add.output(0)}, {"relu" + id}, "relu" + id);
      x = relu.output(0);
    }
    x->set_elem_type(1);
    x->set_dims(std::vector<quench::dim>{{1, {}}, {kDim, {}}});
    g.add_output(*x);
    quench::onnx::save_options o;
    o.external_threshold = 4096;  // the weights; biases stay inline
    quench::onnx::save_model(m, model, o);
    model_bytes = fs::file_size(model) + fs::file_size(data);
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

void quench_load_save(const fs::path& in, const fs::path& out) {
  const quench::model m = quench::onnx::load_model(in);
  quench::onnx::save_model(m, out);  // external tensors stay external, in out + ".data"
}

void protobuf_load_save(const fs::path& in, const fs::path& in_data, const fs::path& out) {
  ::ONNX_NAMESPACE::ModelProto mp;
  if (!mp.ParseFromString(read_file(in))) throw std::runtime_error("protobuf parse failed");
  const std::string data = read_file(in_data);
  std::string bytes;
  mp.SerializeToString(&bytes);
  write_file(out, bytes);
  write_file(fs::path(out) += ".data", data);
}

void BM_load_save(benchmark::State& state) {
  using clock = std::chrono::steady_clock;
  fixture& f = the_model();
  double quench_s = 0, proto_s = 0;
  bool quench_first = true;
  for (auto _ : state) {
    double q = 0, p = 0;
    auto timed = [](auto&& work) {
      // Both write 0.5 GB; without a flush in between, whichever runs second would wait for the
      // kernel to write back the first one's dirty pages.
      ::sync();
      const auto t0 = clock::now();
      work();
      return std::chrono::duration<double>(clock::now() - t0).count();
    };
    auto run_quench = [&] { q = timed([&] { quench_load_save(f.model, f.dir / "quench_out.onnx"); }); };
    auto run_proto = [&] { p = timed([&] { protobuf_load_save(f.model, f.data, f.dir / "protobuf_out.onnx"); }); };
    // Alternating the order cancels what the first of the two leaves behind for the second.
    if (quench_first) {
      run_quench();
      run_proto();
    } else {
      run_proto();
      run_quench();
    }
    quench_first = !quench_first;
    quench_s += q;
    proto_s += p;
    state.SetIterationTime(q);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["quench_s"] = quench_s / n;
  state.counters["protobuf_s"] = proto_s / n;
  state.counters["ratio_to_protobuf"] = quench_s / proto_s;
  state.counters["model_MiB"] = static_cast<double>(f.model_bytes) / (1 << 20);
  state.counters["quench_MiB/s"] = static_cast<double>(f.model_bytes) / (1 << 20) / (quench_s / n);
}
BENCHMARK(BM_load_save)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(6);

/// Peak RSS in KiB of this binary re-executed with `--peak=<mode>`, or -1.
long child_peak_kib(const std::string& mode, const fixture& f) {
  const std::string flag = "--peak=" + mode;
  const std::string model = f.model.string(), out = (f.dir / ("peak_" + mode + ".onnx")).string();
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::execl("/proc/self/exe", "quench_onnx_io_bench", flag.c_str(), model.c_str(), out.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (::wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return ru.ru_maxrss;  // KiB on Linux
}

void BM_peak_rss(benchmark::State& state) {
  fixture& f = the_model();
  long quench_kib = -1, proto_kib = -1;
  for (auto _ : state) {
    quench_kib = child_peak_kib("quench", f);
    proto_kib = child_peak_kib("protobuf", f);
  }
  if (quench_kib < 0 || proto_kib < 0) {
    state.SkipWithError("the child process failed");
    return;
  }
  const double model_kib = static_cast<double>(f.model_bytes) / 1024.0;
  state.counters["model_MiB"] = model_kib / 1024.0;
  state.counters["quench_peak_MiB"] = static_cast<double>(quench_kib) / 1024.0;
  state.counters["protobuf_peak_MiB"] = static_cast<double>(proto_kib) / 1024.0;
  state.counters["quench_peak_to_model"] = static_cast<double>(quench_kib) / model_kib;
  state.counters["protobuf_peak_to_model"] = static_cast<double>(proto_kib) / model_kib;
}
BENCHMARK(BM_peak_rss)->Unit(benchmark::kMillisecond)->Iterations(1);

/// The child side of BM_peak_rss: one load + save, nothing else, in a fresh process.
int peak_child(const std::string& mode, const fs::path& model, const fs::path& out) {
  try {
    if (mode == "quench") quench_load_save(model, out);
    else if (mode == "protobuf") protobuf_load_save(model, fs::path(model) += ".data", out);
    else return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strncmp(argv[1], "--peak=", 7) == 0) return peak_child(argv[1] + 7, argv[2], argv[3]);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
