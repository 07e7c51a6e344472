#pragma once
// AVX2 observer kernels: the definitions of calib_kernels_ref.hpp on 8 lanes. Every operation that
// decides a value (add of +0, multiply by a power of two, floor, clamps in float before the
// integer conversion, the -0 fix-up) is the reference's own IEEE operation, so bins and extremes
// are bit-identical to the scalar path; tails go through the scalar code.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/calib/detail/calib_kernels_ref.hpp"

namespace quench::detail {

#define QUENCH_DETAIL_CALIB_AVX2 QUENCH_TARGET("avx2,fma")

/// All-ones lanes where x is NaN or +-Inf (exponent bits all set).
QUENCH_DETAIL_CALIB_AVX2 inline __m256i nonfinite_lanes_avx2(__m256 x) noexcept {
  const __m256i e = _mm256_set1_epi32(0x7f800000);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(x), e), e);
}

QUENCH_DETAIL_CALIB_AVX2 inline void scan_float_avx2(const float* QUENCH_RESTRICT x, std::size_t n,
                                                      scan_stats& s) noexcept {
  const __m256 pinf = _mm256_set1_ps(s.min), ninf = _mm256_set1_ps(s.max);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 mn0 = pinf, mn1 = pinf, mx0 = ninf, mx1 = ninf;
  std::size_t nf = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    const __m256i fa = nonfinite_lanes_avx2(a), fb = nonfinite_lanes_avx2(b);
    const __m256 za = _mm256_add_ps(a, zero), zb = _mm256_add_ps(b, zero);
    mn0 = _mm256_min_ps(mn0, _mm256_blendv_ps(za, inf, _mm256_castsi256_ps(fa)));
    mn1 = _mm256_min_ps(mn1, _mm256_blendv_ps(zb, inf, _mm256_castsi256_ps(fb)));
    mx0 = _mm256_max_ps(mx0, _mm256_blendv_ps(za, _mm256_sub_ps(zero, inf), _mm256_castsi256_ps(fa)));
    mx1 = _mm256_max_ps(mx1, _mm256_blendv_ps(zb, _mm256_sub_ps(zero, inf), _mm256_castsi256_ps(fb)));
    const int m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(fa, fb)));
    if (m) {  // rare: count exactly
      nf += static_cast<std::size_t>(__builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(fa))) +
                                     __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(fb))));
    }
  }
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, _mm256_min_ps(mn0, mn1));
  _mm256_store_ps(hi, _mm256_max_ps(mx0, mx1));
  for (int k = 0; k < 8; ++k) {
    s.min = lo[k] < s.min ? lo[k] : s.min;
    s.max = hi[k] > s.max ? hi[k] : s.max;
  }
  s.nonfinite += nf;
  scan_float_ref(x + i, n - i, s);
}

/// Eight bins (as int32 lanes), exactly bin_pow2_one or `bins` for NaN/Inf.
QUENCH_DETAIL_CALIB_AVX2 inline __m256i bin_pow2_lanes_avx2(__m256 x, __m256 scale, std::int32_t half,
                                                             std::int32_t bins) noexcept {
  const __m256i nf = nonfinite_lanes_avx2(x);
  __m256i i;
  if (half == 0) {
    const __m256 ax = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    const __m256 t = _mm256_min_ps(_mm256_mul_ps(ax, scale), _mm256_set1_ps(static_cast<float>(bins)));
    i = _mm256_cvttps_epi32(t);
  } else {
    const __m256 fh = _mm256_set1_ps(static_cast<float>(half));
    __m256 t = _mm256_floor_ps(_mm256_mul_ps(x, scale));
    t = _mm256_max_ps(t, _mm256_sub_ps(_mm256_setzero_ps(), fh));
    t = _mm256_min_ps(t, fh);
    i = _mm256_cvttps_epi32(t);
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    i = _mm256_blendv_epi8(i, _mm256_min_epi32(i, _mm256_set1_epi32(-1)), _mm256_castps_si256(neg));
    i = _mm256_add_epi32(i, _mm256_set1_epi32(half));
  }
  i = _mm256_max_epi32(i, _mm256_setzero_si256());
  i = _mm256_min_epi32(i, _mm256_set1_epi32(bins - 1));
  return _mm256_blendv_epi8(i, _mm256_set1_epi32(bins), nf);
}

QUENCH_DETAIL_CALIB_AVX2 inline void scan_bin_float_avx2(const float* QUENCH_RESTRICT x, std::size_t n,
                                                          scan_stats& s, float scale, std::int32_t half,
                                                          std::int32_t bins, std::uint32_t* QUENCH_RESTRICT idx) noexcept {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 ninf = _mm256_sub_ps(zero, inf);
  __m256 mn = _mm256_set1_ps(s.min), mx = _mm256_set1_ps(s.max);
  std::size_t nf = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    const __m256i fa = nonfinite_lanes_avx2(a);
    const __m256 za = _mm256_add_ps(a, zero);
    mn = _mm256_min_ps(mn, _mm256_blendv_ps(za, inf, _mm256_castsi256_ps(fa)));
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(za, ninf, _mm256_castsi256_ps(fa)));
    const int m = _mm256_movemask_ps(_mm256_castsi256_ps(fa));
    if (m) nf += static_cast<std::size_t>(__builtin_popcount(m));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), bin_pow2_lanes_avx2(a, vs, half, bins));
  }
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, mn);
  _mm256_store_ps(hi, mx);
  for (int k = 0; k < 8; ++k) {
    s.min = lo[k] < s.min ? lo[k] : s.min;
    s.max = hi[k] > s.max ? hi[k] : s.max;
  }
  s.nonfinite += nf;
  scan_bin_float_ref(x + i, n - i, s, scale, half, bins, idx + i);
}

#undef QUENCH_DETAIL_CALIB_AVX2

}  // namespace quench::detail

#endif  // QUENCH_ENABLE_SIMD
