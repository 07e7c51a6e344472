// quench::gemm on each SIMD target against Eigen's GEMM (as this program was compiled: the
// portable x86-64 baseline, i.e. SSE2 without FMA) on the same operands, in the same run.
// Counters:
//   GFLOPS          2 * m * n * k / second of quench::gemm
//   ratio_to_eigen  Eigen time / quench time (> 1: quench is faster)
//
//     ./build/bin/quench_gemm_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <Eigen/Core>

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "quench/numeric/gemm.hpp"

namespace {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using quench_bench::best_seconds;

void bench_gemm(benchmark::State& state, std::int64_t m, std::int64_t n, std::int64_t k, quench::simd_target target) {
  if (!quench::simd_target_supported(target)) {
    state.SkipWithError("target not supported by this CPU");
    return;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  row_matrix a(m, k), b(k, n), c_eigen(m, n);
  for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = u(rng);
  for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = u(rng);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  const double eigen_seconds = best_seconds(3, [&] {
    c_eigen.noalias() = a * b;
    benchmark::DoNotOptimize(c_eigen.data());
  });
  double best = 1e30;
  for (auto _ : state) {
    const double s = best_seconds(1, [&] {
      quench::gemm(m, n, k, 1.f, {a.data(), k}, {b.data(), n}, c.data(), n, false, target);
      benchmark::DoNotOptimize(c.data());
    });
    best = std::min(best, s);
    state.SetIterationTime(s);
  }
  state.counters["GFLOPS"] = 2.0 * static_cast<double>(m * n * k) / best / 1e9;
  state.counters["ratio_to_eigen"] = eigen_seconds / best;
}

const bool registered = [] {
  struct shape {
    const char* name;
    std::int64_t m, n, k;
  };
  // Square; a ResNet 3x3 conv as GEMM (64 x 3136, K = 576); a ViT projection (197 x 768 x 768).
  const shape shapes[] = {{"512x512x512", 512, 512, 512}, {"conv_64x3136x576", 64, 3136, 576}, {"vit_197x768x768", 197, 768, 768}};
  for (const shape& s : shapes)
    for (quench::simd_target t : {quench::simd_target::avx512, quench::simd_target::avx2, quench::simd_target::scalar})
      benchmark::RegisterBenchmark((std::string("gemm/") + s.name + "/" + std::string(quench::simd_target_name(t))).c_str(), bench_gemm,
                                   s.m, s.n, s.k, t)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->Iterations(5);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
