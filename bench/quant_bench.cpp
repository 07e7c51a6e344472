// QuantizeLinear / DequantizeLinear throughput against memcpy of the same source bytes.
//
// 16 MiB of float32 input (4 Mi elements, larger than this machine's caches), quantized to int8
// per tensor and per channel (shape [256, 16384], axis 0: one scale and zero point per output
// channel, as conv/matmul weights), on the best SIMD target and on the scalar path; and the
// reverse, int8 -> float32. Each benchmark first times memcpy of the kernel's source byte count
// (16 MiB for quantize, 4 MiB for dequantize) in the same process, and reports
//   ratio_to_memcpy = memcpy time / kernel time       (1.0 = as fast as copying the input)
// Dequantize writes four times what it reads, so it also reports ratio_to_memcpy_dst, against a
// memcpy of its 16 MiB output.
//
//     ./build/bin/quench_quant_bench --benchmark_filter=quantize

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "quench/numeric/cpu.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

namespace {

constexpr std::int64_t kChannels = 256;
constexpr std::int64_t kPerChannel = 16384;
constexpr std::size_t kCount = static_cast<std::size_t>(kChannels * kPerChannel);  // 16 MiB of float

using clock_type = std::chrono::steady_clock;

/// Mean seconds per memcpy of `bytes`, over at least 0.2 s (and after one warm-up copy).
double memcpy_seconds(std::size_t bytes) {
  std::vector<unsigned char> src(bytes, 1), dst(bytes, 0);
  std::memcpy(dst.data(), src.data(), bytes);
  std::size_t reps = 0;
  const auto t0 = clock_type::now();
  double elapsed = 0;
  while (elapsed < 0.2 || reps < 5) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    ++reps;
    elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  }
  return elapsed / static_cast<double>(reps);
}

std::vector<float> make_input() {
  std::vector<float> x(kCount);
  std::uint64_t s = 0x9e3779b97f4a7c15ull;
  for (auto& v : x) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    v = static_cast<float>(static_cast<std::int64_t>((s * 0x2545f4914f6cdd1dull) >> 40) - (1 << 23)) / 65536.f;
  }
  return x;  // about [-128, 128)
}

quench::qparams per_channel_params() {
  std::vector<float> scales(kChannels);
  std::vector<std::int32_t> zps(kChannels);
  for (std::int64_t c = 0; c < kChannels; ++c) {
    scales[static_cast<std::size_t>(c)] = 0.5f + 0.01f * static_cast<float>(c);
    zps[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(c % 17) - 8;
  }
  return quench::qparams::per_axis(quench::dtype::int8, 0, std::move(scales), std::move(zps));
}

/// Runs `kernel` in the benchmark loop and sets the throughput and ratio counters. When the kernel
/// writes more bytes than it reads (dequantize), ratio_to_memcpy_dst compares with a memcpy of
/// the output's size too.
template <class Kernel>
void run(benchmark::State& state, std::size_t source_bytes, std::size_t dest_bytes, quench::simd_target target,
         Kernel&& kernel) {
  const double baseline = memcpy_seconds(source_bytes);
  const double dest_baseline = dest_bytes > source_bytes ? memcpy_seconds(dest_bytes) : 0.0;
  const auto t0 = clock_type::now();
  for (auto _ : state) {
    kernel();
    benchmark::ClobberMemory();
  }
  const double per_iter =
      std::chrono::duration<double>(clock_type::now() - t0).count() / static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(source_bytes));
  state.counters["ratio_to_memcpy"] = baseline / per_iter;
  state.counters["memcpy_GBps"] = static_cast<double>(source_bytes) / baseline / 1e9;
  if (dest_baseline > 0) state.counters["ratio_to_memcpy_dst"] = dest_baseline / per_iter;
  state.SetLabel(std::string(quench::simd_target_name(quench::effective_simd_target(target))));
}

void quantize_per_tensor(benchmark::State& state, quench::simd_target target) {
  const auto x = make_input();
  std::vector<std::int8_t> y(kCount);
  const auto p = quench::qparams::per_tensor(quench::dtype::int8, 0.75f, 3);
  const quench::const_tensor_view<float> xv(x.data(), {kChannels, kPerChannel});
  run(state, kCount * sizeof(float), kCount, target, [&] { quench::quantize(xv, p, y.data(), y.size(), target); });
}

void quantize_per_channel(benchmark::State& state, quench::simd_target target) {
  const auto x = make_input();
  std::vector<std::int8_t> y(kCount);
  const auto p = per_channel_params();
  const quench::const_tensor_view<float> xv(x.data(), {kChannels, kPerChannel});
  run(state, kCount * sizeof(float), kCount, target, [&] { quench::quantize(xv, p, y.data(), y.size(), target); });
}

void dequantize_per_channel(benchmark::State& state, quench::simd_target target) {
  std::vector<std::int8_t> q(kCount);
  for (std::size_t i = 0; i < kCount; ++i) q[i] = static_cast<std::int8_t>(i * 7919u);
  std::vector<float> y(kCount);
  const auto p = per_channel_params();
  const quench::tensor_view<float> yv(y.data(), {kChannels, kPerChannel});
  run(state, kCount, kCount * sizeof(float), target, [&] { quench::dequantize(q.data(), q.size(), p, yv, target); });
}

void memcpy_16mib(benchmark::State& state) {
  std::vector<unsigned char> src(kCount * sizeof(float), 1), dst(kCount * sizeof(float), 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(src.size()));
}

}  // namespace

BENCHMARK(memcpy_16mib)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_per_tensor, best, quench::best_simd_target())->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_per_tensor, avx2, quench::simd_target::avx2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_per_tensor, scalar, quench::simd_target::scalar)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_per_channel, best, quench::best_simd_target())->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(quantize_per_channel, scalar, quench::simd_target::scalar)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(dequantize_per_channel, best, quench::best_simd_target())->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(dequantize_per_channel, scalar, quench::simd_target::scalar)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
