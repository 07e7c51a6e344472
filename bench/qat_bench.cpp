// QAT fake-quant kernels against memcpy and against PyTorch's CPU ops, in the same run.
//
// 16 Mi float32 values (64 MiB, larger than this machine's caches), x ~ N(0, 5), int8 [-128, 127],
// scale 0.1, zero point 3 (about 1 % of the values clip); per channel the same data as [256, 65536]
// on axis 0, scales 0.05 .. 0.15, zero points -8 .. 8. Exactly what bench/qat_torch_bench.py gives
// torch. Times are the fastest iteration: the machine may be shared.
//
//   fq_fwd_bwd/*          fake_quantize (y and mask) + fake_quantize_backward from the mask: one
//                         training step of a fake-quant node (torch: the cachemask op + its backward)
//   fq_fwd/*              the forward alone
//   fq_bwd_recompute      the backward recomputing the mask from x (no mask kept)
//   fq_pc_fwd_bwd/*       per channel
//   learnable_fwd_bwd/*   fake_quantize_learnable + its backward (dx, dscale, dzero_point), LSQ
//                         grad_factor; learnable_pc_* per channel
//   fp8_fwd               float8 e4m3fn fake quant with mask (no torch 1.13 counterpart)
//   observe               moving-average min-max observer on the 64 MiB batch
//
// Counters:
//   quench_ms             fastest iteration
//   ratio_to_memcpy       memcpy of the 64 MiB input / kernel time
//   bandwidth_fraction    the kernel's bytes moved per second / memcpy's (which moves 2 x 64 MiB):
//                         1.0 = the kernel runs at copy bandwidth (fwd + bwd moves 18 bytes per
//                         element: x, y, mask, then dy, mask, dx)
//   torch_ms, speedup_vs_torch   bench/qat_torch_bench.py (torch 1.13, one thread) run once in a
//                         child process of this benchmark; skipped with QUENCH_QAT_BENCH_NO_TORCH=1
//
//     ./build/bin/quench_qat_bench --benchmark_filter=fq_fwd_bwd

#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/qat/float8_fake_quantize.hpp"
#include "quench/qat/learnable_fake_quantize.hpp"
#include "quench/qat/observer.hpp"

namespace {

using quench_bench::memcpy_seconds;
using quench_bench::run_child;

using clock_type = std::chrono::steady_clock;
constexpr std::int64_t kChannels = 256;
constexpr std::size_t kCount = std::size_t{16} << 20;
const quench::shape kFlat{static_cast<std::int64_t>(kCount)};
const quench::shape kRows{kChannels, static_cast<std::int64_t>(kCount) / kChannels};

struct data {
  std::vector<float> x, dy, y, dx;
  std::vector<std::uint8_t> mask;
};

data& buffers() {
  static data d = [] {
    data r;
    r.x.resize(kCount);
    r.dy.resize(kCount);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& v : r.x) v = 5.f * nd(rng);
    for (auto& v : r.dy) v = nd(rng);
    r.y.assign(kCount, 0.f);  // touched once here, so no iteration pays the page faults
    r.dx.assign(kCount, 0.f);
    r.mask.assign(kCount, 0);
    return r;
  }();
  return d;
}



/// torch's seconds per benchmark name, from one run of bench/qat_torch_bench.py (empty if it could
/// not run or QUENCH_QAT_BENCH_NO_TORCH is set).
const std::map<std::string, double>& torch_seconds() {
  static const std::map<std::string, double> t = [] {
    std::map<std::string, double> r;
    if (std::getenv("QUENCH_QAT_BENCH_NO_TORCH")) return r;
    const std::string out =
        run_child("/usr/bin/python3 '" + std::string(QUENCH_SOURCE_DIR) + "/bench/qat_torch_bench.py' 2>/dev/null");
    if (out.empty()) return r;
    try {
      const auto j = quench::detail::parse_json(out.substr(0, out.find('\n')), "qat_torch_bench");
      for (const auto& kv : j.as_object("torch"))
        if (kv.second.is_number()) r[kv.first] = kv.second.as_double("torch");
    } catch (const quench::error&) {
    }
    return r;
  }();
  return t;
}

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

/// Sets the counters of a kernel that moved `bytes_per_element` bytes per element in `seconds`,
/// compared with torch's `torch_name` entry if there is one.
void report(benchmark::State& state, double seconds, double bytes_per_element, const char* torch_name,
            quench::simd_target target) {
  const double base = memcpy_seconds(kCount * sizeof(float));
  state.counters["quench_ms"] = seconds * 1e3;
  state.counters["ratio_to_memcpy"] = base / seconds;
  state.counters["bandwidth_fraction"] = (bytes_per_element / 8.0) * base / seconds;
  if (torch_name) {
    const auto& t = torch_seconds();
    if (auto it = t.find(torch_name); it != t.end()) {
      state.counters["torch_ms"] = it->second * 1e3;
      state.counters["speedup_vs_torch"] = it->second / seconds;
    }
  }
  state.SetLabel(std::string(quench::simd_target_name(quench::effective_simd_target(target))));
}

const quench::fake_quant_params per_tensor = quench::fake_quant_params::per_tensor(0.1f, 3, {-128, 127});

quench::fake_quant_params per_channel() {
  std::vector<float> s(kChannels);
  std::vector<std::int32_t> z(kChannels);
  for (std::int64_t c = 0; c < kChannels; ++c) {
    s[static_cast<std::size_t>(c)] = 0.05f + 0.1f * static_cast<float>(c) / static_cast<float>(kChannels - 1);
    z[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(c % 17) - 8;
  }
  return quench::fake_quant_params::per_channel(0, s, z, {-128, 127});
}

void fq_step(data& d, const quench::shape& s, const quench::fake_quant_params& p, quench::simd_target t) {
  quench::fake_quantize(quench::const_tensor_view<float>(d.x.data(), s), p, quench::tensor_view<float>(d.y.data(), s),
                        quench::tensor_view<std::uint8_t>(d.mask.data(), s), t);
  quench::fake_quantize_backward(quench::const_tensor_view<float>(d.dy.data(), s),
                                 quench::const_tensor_view<std::uint8_t>(d.mask.data(), s),
                                 quench::tensor_view<float>(d.dx.data(), s), t);
}

void memcpy_64mib(benchmark::State& state) {
  auto& d = buffers();
  const double per = time_loop(state, [&] { std::memcpy(d.y.data(), d.x.data(), kCount * sizeof(float)); });
  state.counters["quench_ms"] = per * 1e3;
  if (auto it = torch_seconds().find("copy"); it != torch_seconds().end()) state.counters["torch_ms"] = it->second * 1e3;
}

void fq_fwd_bwd(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  report(state, time_loop(state, [&] { fq_step(d, kFlat, per_tensor, t); }), 18, "fq_fwd_bwd", t);
}

void fq_fwd(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  const double per = time_loop(state, [&] {
    quench::fake_quantize(quench::const_tensor_view<float>(d.x.data(), kFlat), per_tensor,
                          quench::tensor_view<float>(d.y.data(), kFlat), quench::tensor_view<std::uint8_t>(d.mask.data(), kFlat),
                          t);
  });
  report(state, per, 9, "fq_fwd", t);
}

void fq_bwd_recompute(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  const double per = time_loop(state, [&] {
    quench::fake_quantize_backward(quench::const_tensor_view<float>(d.dy.data(), kFlat),
                                   quench::const_tensor_view<float>(d.x.data(), kFlat), per_tensor,
                                   quench::tensor_view<float>(d.dx.data(), kFlat), t);
  });
  report(state, per, 12, nullptr, t);
}

void fq_pc_fwd_bwd(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  const auto p = per_channel();
  report(state, time_loop(state, [&] { fq_step(d, kRows, p, t); }), 18, "fq_pc_fwd_bwd", t);
}

void learnable(benchmark::State& state, quench::simd_target t, bool channels) {
  auto& d = buffers();
  quench::learnable_fake_quant_options o;
  o.range = {-128, 127};
  o.grad_factor = quench::lsq_grad_factor(kCount, 127);
  std::vector<float> s{0.1f}, z{3.f};
  quench::shape s_shape{1}, x_shape = kFlat;
  if (channels) {
    o.granularity = quench::quant_granularity::per_axis;
    o.axis = 0;
    const auto p = per_channel();
    s = p.scales;
    z.assign(p.zero_points.begin(), p.zero_points.end());
    s_shape = quench::shape{kChannels};
    x_shape = kRows;
  }
  std::vector<float> ds(s.size()), dz(s.size());
  const double per = time_loop(state, [&] {
    quench::fake_quantize_learnable(quench::const_tensor_view<float>(d.x.data(), x_shape),
                                    quench::const_tensor_view<float>(s.data(), s_shape),
                                    quench::const_tensor_view<float>(z.data(), s_shape), o,
                                    quench::tensor_view<float>(d.y.data(), x_shape), t);
    quench::fake_quantize_learnable_backward(
        quench::const_tensor_view<float>(d.dy.data(), x_shape), quench::const_tensor_view<float>(d.x.data(), x_shape),
        quench::const_tensor_view<float>(s.data(), s_shape), quench::const_tensor_view<float>(z.data(), s_shape), o,
        {{d.dx.data(), x_shape}, {ds.data(), s_shape}, {dz.data(), s_shape}}, t);
  });
  benchmark::DoNotOptimize(ds.data());
  report(state, per, 20, channels ? "learnable_pc_fwd_bwd" : "learnable_fwd_bwd", t);
}

void learnable_fwd_bwd(benchmark::State& state, quench::simd_target t) { learnable(state, t, false); }
void learnable_pc_fwd_bwd(benchmark::State& state, quench::simd_target t) { learnable(state, t, true); }

void fp8_fwd(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  const auto p = quench::qparams::per_tensor(quench::dtype::float8e4m3fn, 20.f / 448.f);
  const double per = time_loop(state, [&] {
    quench::fake_quantize_float8(quench::const_tensor_view<float>(d.x.data(), kFlat), p,
                                 quench::tensor_view<float>(d.y.data(), kFlat),
                                 quench::tensor_view<std::uint8_t>(d.mask.data(), kFlat), t);
  });
  report(state, per, 9, nullptr, t);
}

void observe(benchmark::State& state, quench::simd_target t) {
  auto& d = buffers();
  quench::moving_average_minmax_observer obs;
  const double per = time_loop(state, [&] { obs.observe(quench::tensor_view<const float>(d.x.data(), kFlat), t); });
  benchmark::DoNotOptimize(obs.min_val());
  report(state, per, 4, nullptr, t);
}

}  // namespace

#define QUENCH_QAT_BENCH(...) BENCHMARK_CAPTURE(__VA_ARGS__)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0)

BENCHMARK(memcpy_64mib)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
QUENCH_QAT_BENCH(fq_fwd_bwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(fq_fwd_bwd, avx2, quench::simd_target::avx2);
QUENCH_QAT_BENCH(fq_fwd_bwd, scalar, quench::simd_target::scalar);
QUENCH_QAT_BENCH(fq_fwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(fq_bwd_recompute, best, quench::best_simd_target());
QUENCH_QAT_BENCH(fq_pc_fwd_bwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(fq_pc_fwd_bwd, scalar, quench::simd_target::scalar);
QUENCH_QAT_BENCH(learnable_fwd_bwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(learnable_fwd_bwd, scalar, quench::simd_target::scalar);
QUENCH_QAT_BENCH(learnable_pc_fwd_bwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(fp8_fwd, best, quench::best_simd_target());
QUENCH_QAT_BENCH(observe, best, quench::best_simd_target());

BENCHMARK_MAIN();
