// Bulk converters against memcpy, in the same process and the same iterations.
//
// Every benchmark converts a 16 MiB source array (4 Mi floats, or 8 Mi halves for float16 -> float)
// once per iteration on one SIMD target, then copies the same 16 MiB source with memcpy into a
// separate buffer. Both are timed by hand around the call, interleaved, so that drift of the
// machine affects both alike.
//
// Throughput counts memory traffic the operation asks for: bytes read + bytes written.
//   converter: source bytes + destination bytes (16 + 8 MiB for float -> float16)
//   memcpy:    2 x 16 MiB
// ratio_to_memcpy = converter throughput / memcpy throughput. 1.0 means the converter moves data
// as fast as memcpy does, i.e. it is bound by memory bandwidth, not by arithmetic.
//
//   build/bin/quench_numeric_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quench/numeric/convert.hpp"

namespace {

constexpr std::size_t kSourceBytes = std::size_t{16} << 20;

/// Buffers shared by all benchmarks: allocated and touched once, so page faults are not measured.
struct buffers {
  std::vector<float> floats;       // 16 MiB of float source, or the float destination
  std::vector<float> floats_wide;  // 32 MiB float destination of float16 -> float
  std::vector<quench::float16> halves;
  std::vector<quench::bfloat16> bhalves;
  std::vector<quench::float8e4m3fn> bytes8;
  std::vector<unsigned char> copy;  // memcpy destination

  buffers()
      : floats(kSourceBytes / sizeof(float)),
        floats_wide(kSourceBytes / sizeof(quench::float16)),
        halves(kSourceBytes / sizeof(quench::float16)),
        bhalves(kSourceBytes / sizeof(float)),
        bytes8(kSourceBytes / sizeof(float)),
        copy(kSourceBytes) {
    // Weight-like data: mostly small normal values, the common case of a model conversion.
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    for (auto& f : floats) f = dist(rng);
    for (auto& f : floats_wide) f = dist(rng);
    quench::convert(floats_wide.data(), halves.data(), halves.size(), quench::simd_target::scalar);
    std::memset(static_cast<void*>(bhalves.data()), 0, bhalves.size() * sizeof(quench::bfloat16));
    std::memset(static_cast<void*>(bytes8.data()), 0, bytes8.size());
    std::memset(copy.data(), 0, copy.size());
  }
};

buffers& data() {
  static buffers b;
  return b;
}

/// Times `convert()` and a memcpy of the source, interleaved, and reports both and their ratio.
template <class Convert>
void run(benchmark::State& state, std::size_t src_bytes, std::size_t dst_bytes, const void* src, Convert convert) {
  using clock = std::chrono::steady_clock;
  buffers& b = data();
  double conv_seconds = 0.0, copy_seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    convert();
    const auto t1 = clock::now();
    std::memcpy(b.copy.data(), src, src_bytes);
    const auto t2 = clock::now();
    benchmark::ClobberMemory();
    const double conv = std::chrono::duration<double>(t1 - t0).count();
    conv_seconds += conv;
    copy_seconds += std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(conv);
  }
  const double iters = static_cast<double>(state.iterations());
  const double conv_bw = iters * static_cast<double>(src_bytes + dst_bytes) / conv_seconds;
  const double copy_bw = iters * 2.0 * static_cast<double>(src_bytes) / copy_seconds;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(src_bytes + dst_bytes));
  state.counters["GBps"] = conv_bw / 1e9;
  state.counters["memcpy_GBps"] = copy_bw / 1e9;
  state.counters["ratio_to_memcpy"] = conv_bw / copy_bw;
}

void float_to_float16(benchmark::State& state, quench::simd_target t) {
  buffers& b = data();
  const std::size_t n = b.floats.size();
  run(state, n * sizeof(float), n * sizeof(quench::float16), b.floats.data(),
      [&] { quench::convert(b.floats.data(), b.halves.data(), n, t); });
}

void float_to_bfloat16(benchmark::State& state, quench::simd_target t) {
  buffers& b = data();
  const std::size_t n = b.floats.size();
  run(state, n * sizeof(float), n * sizeof(quench::bfloat16), b.floats.data(),
      [&] { quench::convert(b.floats.data(), b.bhalves.data(), n, t); });
}

void float16_to_float(benchmark::State& state, quench::simd_target t) {
  buffers& b = data();
  const std::size_t n = b.halves.size();
  run(state, n * sizeof(quench::float16), n * sizeof(float), b.halves.data(),
      [&] { quench::convert(b.halves.data(), b.floats_wide.data(), n, t); });
}

void bfloat16_to_float(benchmark::State& state, quench::simd_target t) {
  buffers& b = data();
  const std::size_t n = b.bhalves.size();  // 8 MiB source: 4 Mi elements
  run(state, n * sizeof(quench::bfloat16), n * sizeof(float), b.bhalves.data(),
      [&] { quench::convert(b.bhalves.data(), b.floats.data(), n, t); });
}

void float_to_float8e4m3fn(benchmark::State& state, quench::simd_target t) {
  buffers& b = data();
  const std::size_t n = b.floats.size();
  run(state, n * sizeof(float), n, b.floats.data(),
      [&] { quench::convert(b.floats.data(), b.bytes8.data(), n, /*saturate=*/true, t); });
}

/// One row per conversion and supported target (scalar and best at least), named
/// "<conversion>/<target>".
const bool registered = [] {
  using fn = void (*)(benchmark::State&, quench::simd_target);
  const std::pair<const char*, fn> conversions[] = {
      {"float_to_float16", float_to_float16},   {"float_to_bfloat16", float_to_bfloat16},
      {"float16_to_float", float16_to_float},   {"bfloat16_to_float", bfloat16_to_float},
      {"float_to_float8e4m3fn", float_to_float8e4m3fn},
  };
  for (const auto& [name, f] : conversions)
    for (quench::simd_target t : quench::supported_simd_targets())
      benchmark::RegisterBenchmark((std::string(name) + "/" + std::string(quench::simd_target_name(t))).c_str(), f, t)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
