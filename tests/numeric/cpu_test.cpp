#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "quench/numeric/cpu.hpp"

using quench::simd_target;

namespace {
/// The "flags" line of the first processor in /proc/cpuinfo: what the kernel says the CPU and OS
/// support, found independently of quench's CPUID queries.
std::set<std::string> linux_cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    return {std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
  }
  return {};
}
}  // namespace

TEST_CASE("cpu: the detected target agrees with the kernel's CPU flags") {
  const simd_target best = quench::best_simd_target();
  MESSAGE("best SIMD target: " << quench::simd_target_name(best));
#if QUENCH_ENABLE_SIMD && defined(__linux__)
  const auto flags = linux_cpu_flags();
  REQUIRE(!flags.empty());
  const auto has = [&](const char* f) { return flags.count(f) != 0; };
  const bool avx2 = has("avx2") && has("f16c") && has("fma");
  const bool avx512 = avx2 && has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl");
  CHECK(best == (avx512 ? simd_target::avx512 : avx2 ? simd_target::avx2 : simd_target::scalar));
#elif !QUENCH_ENABLE_SIMD
  CHECK(best == simd_target::scalar);
#endif
  CHECK(quench::best_simd_target() == best);  // cached
}

TEST_CASE("cpu: supported targets run from scalar up to the best") {
  const auto targets = quench::supported_simd_targets();
  REQUIRE(!targets.empty());
  CHECK(targets.front() == simd_target::scalar);
  CHECK(targets.back() == quench::best_simd_target());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    CHECK(static_cast<int>(targets[i]) == static_cast<int>(i));
    CHECK(quench::simd_target_supported(targets[i]));
    CHECK(quench::effective_simd_target(targets[i]) == targets[i]);
  }
}

TEST_CASE("cpu: an unsupported request falls back to the best target") {
  CHECK(quench::effective_simd_target(simd_target::scalar) == simd_target::scalar);
  if (!quench::simd_target_supported(simd_target::avx512))
    CHECK(quench::effective_simd_target(simd_target::avx512) == quench::best_simd_target());
  CHECK_FALSE(quench::simd_target_supported(static_cast<simd_target>(7)));
  CHECK(quench::effective_simd_target(static_cast<simd_target>(7)) == quench::best_simd_target());
}

TEST_CASE("cpu: names") {
  CHECK(quench::simd_target_name(simd_target::scalar) == "scalar");
  CHECK(quench::simd_target_name(simd_target::avx2) == "avx2");
  CHECK(quench::simd_target_name(simd_target::avx512) == "avx512");
}

TEST_CASE("cpu: concurrent first use is safe and agrees") {
  // Resetting the cache is what a fresh process would see; threads then race on detection.
  quench::detail::cached_simd_target.store(-1);
  std::vector<simd_target> seen(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&seen, i] { seen[i] = quench::best_simd_target(); });
  for (auto& t : threads) t.join();
  for (auto t : seen) CHECK(t == quench::detail::detect_simd_target());
}
