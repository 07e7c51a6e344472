#pragma once
// Runtime choice of the SIMD instruction set for the bulk converters (quench/numeric/convert.hpp).
//
// The kernels for every target are compiled into every program (GCC/Clang function target
// attributes, never -mavx2 globally), so one binary runs on any x86-64 CPU and uses the best
// instructions the CPU and operating system allow. Detection runs once; the result is cached in an
// inline atomic variable, the only global state of the numeric layer.
//
// Thread safety: every function here may be called from any thread at any time, also during static
// initialisation. Two threads racing on the first call both detect and store the same value.

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD
#  include <cpuid.h>
#endif

namespace quench {

/// An instruction set the converters can run on, in increasing order of preference.
///
///   scalar  portable C++, always available and the reference every other target must match bit
///           for bit
///   avx2    AVX2 + F16C + FMA (x86-64-v3: Haswell, Zen 1 and later)
///   avx512  AVX-512 F + BW + DQ + VL on top of avx2 (Skylake-SP, Ice Lake, Zen 4 and later)
enum class simd_target : int { scalar = 0, avx2 = 1, avx512 = 2 };

/// "scalar", "avx2" or "avx512".
constexpr std::string_view simd_target_name(simd_target t) noexcept {
  switch (t) {
    case simd_target::scalar: return "scalar";
    case simd_target::avx2: return "avx2";
    case simd_target::avx512: return "avx512";
  }
  return "unknown";
}

namespace detail {

#if QUENCH_ENABLE_SIMD
/// CPUID.1:ECX.F16C[bit 29]. Clang before 16 has no "f16c" for __builtin_cpu_supports. The
/// instructions need the OS to save YMM state, which the "avx2" query has already established.
inline bool cpu_has_f16c() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & (1u << 29)) != 0;
}
#endif

/// Asks the CPU. GCC's and Clang's __builtin_cpu_supports report AVX/AVX-512 features only when the
/// OS also saves the wider registers (XCR0 via xgetbv), so a "yes" is safe to execute.
inline simd_target detect_simd_target() noexcept {
#if QUENCH_ENABLE_SIMD
  // Needed when called before the runtime's own constructors, e.g. from a static initialiser.
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  if (!avx2) return simd_target::scalar;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return avx512 ? simd_target::avx512 : simd_target::avx2;
#else
  return simd_target::scalar;
#endif
}

/// The cap QUENCH_SIMD_TARGET=scalar|avx2|avx512 in the environment puts on the detected target
/// (unset or unknown: no cap). It lets a test suite or a user run every dispatched kernel, the
/// runtime's GEMM included, on the portable path of a CPU that has more.
inline simd_target cap_by_environment(simd_target detected) noexcept {
  const char* cap = std::getenv("QUENCH_SIMD_TARGET");
  if (!cap) return detected;
  const std::string_view v(cap);
  const int limit = v == "scalar" ? 0 : v == "avx2" ? 1 : v == "avx512" ? 2 : 2;
  return static_cast<simd_target>(std::min(static_cast<int>(detected), limit));
}

/// -1 until the first detection. Constant-initialised, so it is ready before any dynamic
/// initialiser runs; relaxed ordering suffices because every thread would store the same value.
inline std::atomic<int> cached_simd_target{-1};

}  // namespace detail

/// The best target this CPU supports (detected on the first call, then cached), at most the
/// QUENCH_SIMD_TARGET environment cap.
///
///     if (quench::best_simd_target() == quench::simd_target::avx512) { /* ... */ }
inline simd_target best_simd_target() noexcept {
  int t = detail::cached_simd_target.load(std::memory_order_relaxed);
  if (t < 0) {
    t = static_cast<int>(detail::cap_by_environment(detail::detect_simd_target()));
    detail::cached_simd_target.store(t, std::memory_order_relaxed);
  }
  return static_cast<simd_target>(t);
}

/// True if kernels of target `t` can run here (every target up to best_simd_target()).
inline bool simd_target_supported(simd_target t) noexcept {
  return static_cast<int>(t) >= 0 && static_cast<int>(t) <= static_cast<int>(best_simd_target());
}

/// The target a converter actually runs when asked for `requested`: the request itself if the CPU
/// supports it, otherwise the best supported one. Forcing a target is for tests and benchmarks;
/// asking for more than the CPU has can never execute an unsupported instruction.
inline simd_target effective_simd_target(simd_target requested) noexcept {
  return simd_target_supported(requested) ? requested : best_simd_target();
}

/// Every target this CPU can run, scalar first: what tests iterate over to compare each with the
/// scalar reference.
///
///     for (auto t : quench::supported_simd_targets()) quench::convert(src, dst, n, t);
inline std::vector<simd_target> supported_simd_targets() {
  std::vector<simd_target> out;
  for (int t = 0; t <= static_cast<int>(best_simd_target()); ++t) out.push_back(static_cast<simd_target>(t));
  return out;
}

}  // namespace quench
