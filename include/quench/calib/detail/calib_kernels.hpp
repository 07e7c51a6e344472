#pragma once
// Run-time dispatch of the observer kernels (calib_kernels_{ref,avx2,avx512}.hpp) and the helpers
// the observers share: element types as float blocks, NaN/Inf classification, the error for a
// batch without a finite value.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "quench/calib/detail/calib_kernels_avx2.hpp"
#include "quench/calib/detail/calib_kernels_avx512.hpp"
#include "quench/calib/detail/calib_kernels_ref.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/core/error.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"

namespace quench::detail {

inline void scan_float(const float* x, std::size_t n, scan_stats& s, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512: scan_float_avx512(x, n, s); return;
    case simd_target::avx2: scan_float_avx2(x, n, s); return;
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  scan_float_ref(x, n, s);
}

inline void bin_pow2_float(const float* x, std::size_t n, float scale, std::int32_t half, std::int32_t bins,
                           std::uint32_t* sub, std::size_t stride, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512: bin_pow2_float_avx512(x, n, scale, half, bins, sub, stride); return;
    case simd_target::avx2: bin_pow2_float_avx2(x, n, scale, half, bins, sub, stride); return;
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  bin_pow2_float_ref(x, n, scale, half, bins, sub, stride);
}

/// Element types an observer accepts; float16 and bfloat16 are widened to float (exactly).
template <class T>
inline constexpr bool is_observable_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                        std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

/// Elements per block of the observers' block loops: small enough that a block read by one kernel
/// is still in L1 for the next (8 KiB of float).
inline constexpr std::size_t observer_block = 2048;

/// Calls f(const float*, count) on consecutive blocks of at most observer_block floats holding
/// data[0, n) (float16 / bfloat16 converted into a stack buffer first).
template <class T, class F>
void for_float_blocks(const T* data, std::size_t n, F&& f) {
  static_assert(!std::is_same_v<T, double>, "float64 data has its own path");
  for (std::size_t at = 0; at < n; at += observer_block) {
    const std::size_t len = n - at < observer_block ? n - at : observer_block;
    if constexpr (std::is_same_v<T, float>) {
      f(data + at, len);
    } else {
      float buf[observer_block];
      convert(data + at, buf, len);
      f(static_cast<const float*>(buf), len);
    }
  }
}

/// Adds the NaN / +Inf / -Inf elements of x[0, n) to `c` (the rare path after a scan found some).
template <class T>
void classify_nonfinite(const T* x, std::size_t n, calib::nonfinite_counts& c) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = static_cast<double>(x[i]);
    if (std::isnan(v))
      ++c.nan;
    else if (v == HUGE_VAL)
      ++c.pos_inf;
    else if (v == -HUGE_VAL)
      ++c.neg_inf;
  }
}

[[noreturn]] inline void throw_no_finite_value(const std::string& name, const calib::nonfinite_counts& c) {
  throw_error(errc::not_finite, tensor_context(name),
              "expected at least one finite value in the batch, found only NaN/Inf (" + std::to_string(c.nan) +
                  " NaN, " + std::to_string(c.pos_inf) + " +Inf, " + std::to_string(c.neg_inf) + " -Inf)");
}

/// "tensor 'x' channel 3" or "tensor 'x'" for error contexts.
inline std::string channel_context(const std::string& name, std::size_t channel, bool per_channel) {
  std::string s = tensor_context(name);
  if (s.empty()) s = "tensor";
  if (per_channel) s += " channel " + std::to_string(channel);
  return s;
}

/// Frexp exponent e of a finite magnitude a > 0: a < 2^e, a >= 2^(e-1).
inline int exponent_above(double a) noexcept {
  int e = 0;
  std::frexp(a, &e);
  return e;
}

}  // namespace quench::detail
