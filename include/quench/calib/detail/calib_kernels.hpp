#pragma once
// Run-time dispatch of the observer kernels (calib_kernels_{ref,avx2,avx512}.hpp).

#include <cstddef>
#include <cstdint>

#include "quench/calib/detail/calib_kernels_avx2.hpp"
#include "quench/calib/detail/calib_kernels_avx512.hpp"
#include "quench/calib/detail/calib_kernels_ref.hpp"
#include "quench/numeric/cpu.hpp"

namespace quench::detail {

/// The AVX-512 target scans with the AVX2 kernel: a 16-lane version (vfpclassps, masked min/max)
/// measured 1.8x slower on Zen 5 (3.0 vs 1.7 ms for 64 MiB), while the combined scan-and-bin
/// kernel gains from 16 lanes.
inline void scan_float(const float* x, std::size_t n, scan_stats& s, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512:
    case simd_target::avx2: scan_float_avx2(x, n, s); return;
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  scan_float_ref(x, n, s);
}

inline void scan_bin_float(const float* x, std::size_t n, scan_stats& s, float scale, std::int32_t half,
                           std::int32_t bins, std::uint32_t* idx, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512: scan_bin_float_avx512(x, n, s, scale, half, bins, idx); return;
    case simd_target::avx2: scan_bin_float_avx2(x, n, s, scale, half, bins, idx); return;
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  scan_bin_float_ref(x, n, s, scale, half, bins, idx);
}

}  // namespace quench::detail
