// Executor Conv and MatMul against a naive scalar loop of the same operation, in the same run.
//
// Each benchmark runs one node through quench::runtime::executor (validation, output allocation
// and the kernel: what a model pays per node), on ResNet / MobileNet / ViT layer sizes at batch 1.
// Before the timed loop it times the textbook loop nest (direct convolution; i-k-j matrix
// product, which the compiler may vectorize) on the same data, checks that both agree, and
// reports, from the fastest run of each (the least disturbed on a shared machine),
//   GFLOPS           quench, 2 * multiply-adds / second
//   naive_GFLOPS     the loop nest
//   speedup_vs_naive naive time / quench time
//
//     ./build/bin/quench_runtime_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
namespace rt = quench::runtime;

quench::tensor filled(quench::shape s, std::uint64_t seed) {
  quench::tensor t(quench::dtype::float32, std::move(s));
  for (auto& v : t.view<float>()) {
    seed ^= seed >> 12;
    seed ^= seed << 25;
    seed ^= seed >> 27;
    v = static_cast<float>(static_cast<std::int64_t>((seed * 0x2545f4914f6cdd1dull) >> 41) - (1 << 22)) / float(1 << 22);
  }
  return t;
}

using quench_bench::best_seconds;

/// Runs the executor in the timed loop and sets the counters against `naive_seconds`.
void measure(benchmark::State& state, rt::executor& ex, const quench::tensor& x, double flops, double naive_seconds,
             const std::vector<float>& naive_out) {
  const auto first = ex.run({{"x", &x}});
  const auto got = first[0].view<float>();
  // Both sum in float in different orders: compare relative to the output's magnitude.
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < naive_out.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - naive_out[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(naive_out[i])));
  }
  if (got.size() != naive_out.size() || worst > 1e-5 * scale) {
    state.SkipWithError(("quench and the naive loop disagree: max difference " + std::to_string(worst) + " for outputs up to " +
                         std::to_string(scale)).c_str());
    return;
  }
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    auto out = ex.run({{"x", &x}});
    benchmark::DoNotOptimize(out[0].bytes());
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    best = std::min(best, s);
    state.SetIterationTime(s);
  }
  // Fastest run against fastest run: on a shared machine the minimum is the least disturbed.
  state.counters["GFLOPS"] = flops / best / 1e9;
  state.counters["naive_GFLOPS"] = flops / naive_seconds / 1e9;
  state.counters["speedup_vs_naive"] = naive_seconds / best;
}

struct conv_spec {
  std::int64_t c, hw, m, k, stride, group;
};

void bench_conv(benchmark::State& state, conv_spec s, int threads) {
  const std::int64_t pad = s.k / 2, cg = s.c / s.group, mg = s.m / s.group;
  const std::int64_t out = (s.hw + 2 * pad - s.k) / s.stride + 1;
  const quench::tensor x = filled({1, s.c, s.hw, s.hw}, 1);
  quench::model model;
  model.set_opset("", 17);
  auto& g = model.main_graph();
  auto& xin = g.add_input("x", 1);
  auto& w = g.add_initializer(filled({s.m, cg, s.k, s.k}, 2));
  auto& b = g.add_initializer(filled({s.m}, 3));
  auto& conv = g.add_node("Conv", {&xin, &w, &b}, {"y"}, "conv");
  conv.set_attribute(quench::attribute::make_ints("pads", {pad, pad, pad, pad}));
  conv.set_attribute(quench::attribute::make_ints("strides", {s.stride, s.stride}));
  conv.set_attribute(quench::attribute::make_int("group", s.group));
  g.add_output(*conv.output(0));
  rt::executor ex(model, rt::executor_options{threads, nullptr});

  const float* px = x.view<float>().data();
  const float* pw = w.initializer()->view<float>().data();
  const float* pb = b.initializer()->view<float>().data();
  std::vector<float> naive(static_cast<std::size_t>(s.m * out * out));
  const double naive_seconds = best_seconds(3, [&] {
    for (std::int64_t m = 0; m < s.m; ++m) {
      const std::int64_t g0 = m / mg * cg;
      for (std::int64_t oh = 0; oh < out; ++oh)
        for (std::int64_t ow = 0; ow < out; ++ow) {
          float acc = pb[m];
          for (std::int64_t ci = 0; ci < cg; ++ci)
            for (std::int64_t kh = 0; kh < s.k; ++kh) {
              const std::int64_t ih = oh * s.stride - pad + kh;
              if (ih < 0 || ih >= s.hw) continue;
              for (std::int64_t kw = 0; kw < s.k; ++kw) {
                const std::int64_t iw = ow * s.stride - pad + kw;
                if (iw < 0 || iw >= s.hw) continue;
                acc += px[((g0 + ci) * s.hw + ih) * s.hw + iw] * pw[((m * cg + ci) * s.k + kh) * s.k + kw];
              }
            }
          naive[static_cast<std::size_t>((m * out + oh) * out + ow)] = acc;
        }
    }
    benchmark::DoNotOptimize(naive.data());
  });
  const double flops = 2.0 * static_cast<double>(s.m * cg * s.k * s.k * out * out);
  measure(state, ex, x, flops, naive_seconds, naive);
}

void bench_matmul(benchmark::State& state, std::int64_t batch, std::int64_t m, std::int64_t k, std::int64_t n, bool batched_b, int threads) {
  const quench::tensor x = filled({batch, m, k}, 4);
  quench::model model;
  model.set_opset("", 17);
  auto& g = model.main_graph();
  auto& xin = g.add_input("x", 1);
  auto& w = g.add_initializer(batched_b ? filled({batch, k, n}, 5) : filled({k, n}, 5));
  auto& mm = g.add_node("MatMul", {&xin, &w}, {"y"}, "matmul");
  g.add_output(*mm.output(0));
  rt::executor ex(model, rt::executor_options{threads, nullptr});

  const float* pa = x.view<float>().data();
  const float* pb = w.initializer()->view<float>().data();
  std::vector<float> naive(static_cast<std::size_t>(batch * m * n));
  const double naive_seconds = best_seconds(3, [&] {
    std::fill(naive.begin(), naive.end(), 0.f);
    for (std::int64_t bi = 0; bi < batch; ++bi) {
      const float* a = pa + bi * m * k;
      const float* b = pb + (batched_b ? bi * k * n : 0);
      float* c = naive.data() + bi * m * n;
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t q = 0; q < k; ++q) {
          const float aq = a[i * k + q];
          for (std::int64_t j = 0; j < n; ++j) c[i * n + j] += aq * b[q * n + j];
        }
    }
    benchmark::DoNotOptimize(naive.data());
  });
  measure(state, ex, x, 2.0 * static_cast<double>(batch * m * k * n), naive_seconds, naive);
}

const bool registered = [] {
  auto conv = [](const char* name, conv_spec s, int threads) {
    benchmark::RegisterBenchmark(name, bench_conv, s, threads)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  // ResNet-50 stage 1: 3x3, 64 -> 64 at 56x56; the 1x1 reduction 256 -> 64 (direct GEMM).
  conv("Conv3x3_64x56x56", {64, 56, 64, 3, 1, 1}, 1);
  conv("Conv3x3_64x56x56/threads:2", {64, 56, 64, 3, 1, 1}, 2);
  conv("Conv1x1_256to64x56x56", {256, 56, 64, 1, 1, 1}, 1);
  // ResNet stem: 7x7 stride 2, 3 -> 64 at 224x224 (im2col with a short K).
  conv("Conv7x7s2_3to64x224x224", {3, 224, 64, 7, 2, 1}, 1);
  // MobileNetV2 depthwise 3x3 at 112x112 (144 channels) and stride 2 (direct loop).
  conv("DepthwiseConv3x3_144x56x56", {144, 56, 144, 3, 1, 144}, 1);
  conv("DepthwiseConv3x3s2_96x112x112", {96, 112, 96, 3, 2, 96}, 1);
  auto matmul = [](const char* name, std::int64_t b, std::int64_t m, std::int64_t k, std::int64_t n, bool batched, int threads) {
    benchmark::RegisterBenchmark(name, bench_matmul, b, m, k, n, batched, threads)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  // ViT-B/16 projection: [197, 768] x [768, 768]; attention scores: 12 heads of [197, 64] x [64, 197].
  matmul("MatMul_197x768x768", 1, 197, 768, 768, false, 1);
  matmul("MatMul_197x768x768/threads:2", 1, 197, 768, 768, false, 2);
  matmul("MatMul_batched_12x197x64x197", 12, 197, 64, 197, true, 1);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
