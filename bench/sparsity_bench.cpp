// N:M sparsity kernels against their same-run baselines.
//
// Times are the fastest iteration (and the baselines' fastest runs): the machine may be shared.
//
//   mask_2_4/{linear,conv3x3}/<target>
//       quench::sparsity::nm_mask on 64 MiB of float32 weights -- a Linear [4096, 4096] (groups
//       contiguous) and a Conv [896, 2080, 3, 3] (groups strided along C) -- single-threaded, per
//       SIMD target. Counters:
//         ratio_to_memcpy    memcpy of the same 64 MiB / mask           (issue 8: >= 0.3)
//         speedup_vs_torch   ASP's m4n2_1d in torch (matmul + argmax + gather, one thread) on the
//                            same weights, in a python child process / mask    (issue 8: >= 10)
//         speedup_vs_numpy   the same in numpy
//         same_mask          1 when torch's mask equals quench's byte for byte
//   permutation/1024x1024[/escapes:100]
//       search_permutation on a 1024 x 1024 normal(0, 1) layer (channel swaps to convergence, then
//       optionally 100 escapes from the local optimum): seconds, retained magnitude before and after
//       (gain_percent), ASP's efficacy against the per-row unstructured bound.
//
//     ./build/bin/quench_sparsity_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "quench/adapt/npy.hpp"
#include "quench/calib/detail/json.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/sparsity/nm_mask.hpp"
#include "quench/sparsity/permutation.hpp"

namespace {

using quench_bench::memcpy_seconds;
using quench_bench::run_child;

using clock_type = std::chrono::steady_clock;
namespace sp = quench::sparsity;

const std::string script = std::string(QUENCH_SOURCE_DIR) + "/bench/sparsity_numpy_bench.py";

/// 64 MiB of weight-like float32 values in the given shape (seeded normal, a few exact ties).
const quench::tensor& weights(const quench::shape& s) {
  static std::vector<std::unique_ptr<quench::tensor>> cache;
  for (const auto& t : cache)
    if (t->shape() == s) return *t;
  auto t = std::make_unique<quench::tensor>(quench::dtype::float32, s, "w");
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 0.05f);
  for (auto& v : t->view<float>()) v = d(rng);
  cache.push_back(std::move(t));
  return *cache.back();
}



void mask_2_4(benchmark::State& state, quench::shape s, quench::simd_target target) {
  const quench::tensor& w = weights(s);
  const double base = memcpy_seconds(w.nbytes());
  quench::tensor mask(quench::dtype::uint8, s);
  double best = HUGE_VAL;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    sp::nm_mask(w.view<float>(), 1, mask.view<std::uint8_t>(), {}, "w", target);
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  state.counters["quench_ms"] = best * 1e3;
  state.counters["ratio_to_memcpy"] = base / best;
  state.counters["GB_per_s"] = static_cast<double>(w.nbytes()) / best / 1e9;
  // The baselines on the very same weights, in a child process next to this run.
  const auto dir = std::filesystem::temp_directory_path() / ("quench_sparsity_bench_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  quench::write_npy(dir / "w.npy", w);
  const std::string out = run_child("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 /usr/bin/python3 '" + script + "' '" +
                                    (dir / "w.npy").string() + "' '" + (dir / "mask.npy").string() + "' 2>/dev/null");
  if (!out.empty()) {
    const auto j = quench::detail::parse_json(out, "sparsity_numpy_bench.py");
    const double torch_s = j.at("torch_s", "bench").as_double("torch_s"), numpy_s = j.at("numpy_s", "bench").as_double("numpy_s");
    state.counters["torch_ms"] = torch_s * 1e3;
    state.counters["numpy_ms"] = numpy_s * 1e3;
    state.counters["speedup_vs_torch"] = torch_s / best;
    state.counters["speedup_vs_numpy"] = numpy_s / best;
    const quench::tensor theirs = quench::read_npy(dir / "mask.npy");
    state.counters["same_mask"] = theirs.nbytes() == mask.nbytes() && std::memcmp(theirs.bytes(), mask.bytes(), mask.nbytes()) == 0;
  } else {
    state.SetLabel("python baseline unavailable");
  }
  std::filesystem::remove_all(dir);
  if (out.empty()) return;
  state.SetLabel(std::string(quench::simd_target_name(quench::effective_simd_target(target))));
}

void permutation(benchmark::State& state, int escapes) {
  const std::size_t rows = 1024, c = 1024;
  std::vector<float> m(rows * c);
  std::mt19937 rng(9);
  std::normal_distribution<float> d;
  for (auto& v : m) v = d(rng);
  sp::permutation_result r;
  sp::permutation_options o;
  o.escape_attempts = escapes;
  double best = HUGE_VAL;
  for (auto _ : state) {
    r = sp::search_permutation(m.data(), rows, c, o);
    best = std::min(best, r.seconds);
  }
  state.counters["seconds"] = best;
  state.counters["kept_before_percent"] = 100 * r.magnitude_before / r.magnitude_total;
  state.counters["kept_after_percent"] = 100 * r.magnitude_after / r.magnitude_total;
  state.counters["gain_percent"] = 100 * (r.magnitude_after / r.magnitude_before - 1);
  state.counters["efficacy"] = r.efficacy();
  state.counters["swaps"] = static_cast<double>(r.swaps);
}

void register_all() {
  const quench::shape linear{4096, 4096}, conv{896, 2080, 3, 3};
  for (auto t : quench::supported_simd_targets()) {
    const std::string name(quench::simd_target_name(t));
    benchmark::RegisterBenchmark(("mask_2_4/linear/" + name).c_str(), mask_2_4, linear, t)->Iterations(5)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("mask_2_4/conv3x3/" + name).c_str(), mask_2_4, conv, t)->Iterations(5)->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("permutation/1024x1024", permutation, 0)->Iterations(1)->Unit(benchmark::kSecond);
  benchmark::RegisterBenchmark("permutation/1024x1024/escapes:100", permutation, 100)->Iterations(1)->Unit(benchmark::kSecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
