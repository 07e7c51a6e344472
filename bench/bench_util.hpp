#pragma once
// Helpers shared by the benchmarks in bench/.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace quench_bench {

/// Seconds of the fastest of `reps` calls of `f` (the least disturbed run on a shared machine).
template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

/// Seconds of the fastest memcpy of `bytes` (after a warm-up copy, over at least 0.3 s and 5
/// copies): the same-run baseline of the bandwidth-bound kernels.
inline double memcpy_seconds(std::size_t bytes) {
  std::vector<unsigned char> src(bytes, 1), dst(bytes, 0);
  std::memcpy(dst.data(), src.data(), bytes);
  double best = HUGE_VAL, elapsed = 0;
  int reps = 0;
  while (elapsed < 0.3 || reps < 5) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, t);
    elapsed += t;
    ++reps;
  }
  return best;
}

/// Runs `cmd` (a peer tool timed in the same run) and returns its standard output (empty if it
/// could not run).
inline std::string run_child(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  if (!p) return out;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p.get())) > 0) out.append(buf, n);
  return out;
}

}  // namespace quench_bench
