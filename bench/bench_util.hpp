#pragma once
// Helpers shared by the benchmarks in bench/.

#include <algorithm>
#include <chrono>

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

}  // namespace quench_bench
