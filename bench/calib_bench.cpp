// Calibration observers and range methods against their same-run baselines.
//
// Times are the fastest iteration (and the baselines' fastest runs): the machine may be shared.
//
//   histogram/*       histogram_observer::observe on 64 MiB of float32 (16 Mi normal values, one
//                     batch, 2048 bins), per SIMD target. Counters:
//                       ratio_to_memcpy   memcpy of the same 64 MiB / observe   (issue 5: >= 0.25)
//                       speedup_vs_numpy  numpy.histogram(x, 2048, range) on 64 MiB in a python
//                                         child process / observe               (issue 5: >= 20)
//   ort_histogram     the ORT-compatible observer on the same data (numpy's arithmetic, scalar)
//   entropy/ort       ort_entropy_range on a 2048-bin ORT histogram (1 Mi normal values), against
//                     the line-by-line numpy transcription of ORT's get_entropy_threshold timed by
//                     tests/calib/make_calib_reference.py bench-entropy on the same histogram:
//                       speedup_vs_numpy  (issue 5: >= 200), same_threshold (1 = same bin edges)
//   entropy/trt, mse  the pytorch-quantization methods on that histogram's |x| version (no
//                     baseline; for the record)
//
//     ./build/bin/quench_calib_bench --benchmark_filter=histogram

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/calib/entropy.hpp"
#include "quench/calib/histogram_observer.hpp"
#include "quench/calib/mse.hpp"
#include "quench/calib/ort_histogram_observer.hpp"
#include "quench/numeric/cpu.hpp"

namespace {

using quench_bench::memcpy_seconds;
using quench_bench::run_child;

using clock_type = std::chrono::steady_clock;
constexpr std::size_t kCount = std::size_t{16} << 20;  // 64 MiB of float32

const std::string script = std::string(QUENCH_SOURCE_DIR) + "/tests/calib/make_calib_reference.py";

const std::vector<float>& input() {
  static const std::vector<float> x = [] {
    std::vector<float> v(kCount);
    std::mt19937 rng(3);
    std::normal_distribution<float> d;
    for (auto& f : v) f = d(rng);
    return v;
  }();
  return x;
}



/// numpy.histogram's best of three on 64 MiB, measured anew for each benchmark so that it runs
/// next to the code it is compared with.
double numpy_histogram_seconds() {
  return std::atof(run_child("/usr/bin/python3 '" + script + "' bench-histogram 2>/dev/null").c_str());
}

/// Runs `fn` in the benchmark loop and returns the fastest iteration's seconds: on a shared
/// machine the minimum is what the code costs, and the baselines are minima too.
template <class Fn>
double time_loop(benchmark::State& state, Fn&& fn) {
  double best = HUGE_VAL;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    fn();
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  return best;
}

void histogram(benchmark::State& state, quench::simd_target target, bool absolute) {
  const auto& x = input();
  const double base = memcpy_seconds(kCount * sizeof(float));
  quench::calib::histogram_options o;
  o.absolute = absolute;
  const double per = time_loop(state, [&] {
    quench::calib::histogram_observer h("x", o, target);
    h.observe(x.data(), quench::shape{static_cast<std::int64_t>(kCount)});
    benchmark::DoNotOptimize(h.state().channels.data());
  });
  state.counters["quench_ms"] = per * 1e3;
  state.counters["ratio_to_memcpy"] = base / per;
  const double np = numpy_histogram_seconds();
  if (np > 0) {
    state.counters["numpy_ms"] = np * 1e3;
    state.counters["speedup_vs_numpy"] = np / per;
  }
  state.SetLabel(std::string(quench::simd_target_name(quench::effective_simd_target(target))));
}

void ort_histogram(benchmark::State& state) {
  const auto& x = input();
  const double per = time_loop(state, [&] {
    quench::calib::ort_histogram_observer h("x");
    h.observe(x.data(), quench::shape{static_cast<std::int64_t>(kCount)});
    benchmark::DoNotOptimize(h.state().counts.data());
  });
  state.counters["quench_ms"] = per * 1e3;
  const double np = numpy_histogram_seconds();
  if (np > 0) state.counters["speedup_vs_numpy"] = np / per;
}

/// The python transcription's histogram, timing and threshold (bench-entropy).
struct entropy_baseline {
  quench::calib::histogram hist;
  double seconds = 0;
  std::uint32_t lo = 0, hi = 0;
};

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

const entropy_baseline& baseline() {
  static const entropy_baseline b = [] {
    entropy_baseline r;
    const std::string out = run_child("/usr/bin/python3 '" + script + "' bench-entropy 2>/dev/null");
    if (out.empty()) return r;
    const auto j = quench::detail::parse_json(out, "bench-entropy");
    for (const auto& c : j.at("counts", "b").as_array("b")) r.hist.counts.push_back(c.as_int64("b"));
    for (const auto& e : j.at("edges", "b").as_array("b"))
      r.hist.edges.push_back(from_bits(static_cast<std::uint32_t>(e.as_uint64("b"))));
    r.hist.min = from_bits(static_cast<std::uint32_t>(j.at("min", "b").as_uint64("b")));
    r.hist.max = from_bits(static_cast<std::uint32_t>(j.at("max", "b").as_uint64("b")));
    r.seconds = j.at("seconds", "b").as_double("b");
    r.lo = static_cast<std::uint32_t>(j.at("lo", "b").as_uint64("b"));
    r.hi = static_cast<std::uint32_t>(j.at("hi", "b").as_uint64("b"));
    return r;
  }();
  return b;
}

void entropy_ort(benchmark::State& state) {
  const auto& b = baseline();
  if (b.hist.counts.empty()) {
    state.SkipWithError("python baseline unavailable");
    return;
  }
  quench::calib::range r;
  const double per = time_loop(state, [&] { r = quench::calib::ort_entropy_range(b.hist); });
  state.counters["quench_ms"] = per * 1e3;
  state.counters["numpy_ms"] = b.seconds * 1e3;
  state.counters["speedup_vs_numpy"] = b.seconds / per;
  state.counters["same_threshold"] = static_cast<float>(r.min) == from_bits(b.lo) && static_cast<float>(r.max) == from_bits(b.hi);
}

/// |x| version of the baseline histogram (folded around its centre), for the TensorRT-style methods.
quench::calib::histogram folded() {
  const auto& h = baseline().hist;
  quench::calib::histogram a;
  const std::size_t half = h.counts.size() / 2;
  for (std::size_t k = 0; k < half; ++k) a.counts.push_back(h.counts[half + k] + h.counts[half - 1 - k]);
  for (std::size_t k = 0; k <= half; ++k) a.edges.push_back(h.edges[half + k]);
  a.min = 0;
  a.max = h.edges.back();
  return a;
}

void entropy_trt(benchmark::State& state) {
  if (baseline().hist.counts.empty()) {
    state.SkipWithError("python baseline unavailable");
    return;
  }
  const auto a = folded();
  double amax = 0;
  time_loop(state, [&] { amax = quench::calib::trt_entropy_amax(a); });
  benchmark::DoNotOptimize(amax);
}

void mse_trt(benchmark::State& state) {
  if (baseline().hist.counts.empty()) {
    state.SkipWithError("python baseline unavailable");
    return;
  }
  const auto a = folded();
  double amax = 0;
  time_loop(state, [&] { amax = quench::calib::trt_mse_amax(a); });
  benchmark::DoNotOptimize(amax);
}

}  // namespace

BENCHMARK_CAPTURE(histogram, best, quench::best_simd_target(), false)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK_CAPTURE(histogram, best_absolute, quench::best_simd_target(), true)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK_CAPTURE(histogram, avx2, quench::simd_target::avx2, false)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK_CAPTURE(histogram, scalar, quench::simd_target::scalar, false)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(ort_histogram)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(entropy_ort)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(entropy_trt)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(mse_trt)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

BENCHMARK_MAIN();
