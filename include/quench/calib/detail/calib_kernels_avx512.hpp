#pragma once
// AVX-512 (F, BW, DQ, VL) observer kernels: the definitions of calib_kernels_ref.hpp on 16 lanes,
// with vfpclassps for NaN/Inf and masked loads for the tails, so every element goes through the
// same instructions. Bit-identical to the scalar path (see calib_kernels_avx2.hpp for why).

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/calib/detail/calib_kernels_ref.hpp"

// GCC 12's AVX-512 intrinsics trip -Wuninitialized/-Wmaybe-uninitialized once inlined (GCC bug
// 105593, see numeric/detail/convert_avx512.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace quench::detail {

#define QUENCH_DETAIL_CALIB_AVX512 QUENCH_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")

/// vfpclassps categories QNaN | +Inf | -Inf | SNaN.
inline constexpr int fpclass_nonfinite = 0x01 | 0x08 | 0x10 | 0x80;

QUENCH_DETAIL_CALIB_AVX512 inline void scan_float_avx512(const float* QUENCH_RESTRICT x, std::size_t n,
                                                          scan_stats& s) noexcept {
  const __m512 zero = _mm512_setzero_ps();
  __m512 mn0 = _mm512_set1_ps(s.min), mn1 = mn0, mx0 = _mm512_set1_ps(s.max), mx1 = mx0;
  std::size_t nf = 0;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    const __mmask16 fa = static_cast<__mmask16>(~_mm512_fpclass_ps_mask(a, fpclass_nonfinite));
    const __mmask16 fb = static_cast<__mmask16>(~_mm512_fpclass_ps_mask(b, fpclass_nonfinite));
    const __m512 za = _mm512_add_ps(a, zero), zb = _mm512_add_ps(b, zero);
    mn0 = _mm512_mask_min_ps(mn0, fa, mn0, za);
    mn1 = _mm512_mask_min_ps(mn1, fb, mn1, zb);
    mx0 = _mm512_mask_max_ps(mx0, fa, mx0, za);
    mx1 = _mm512_mask_max_ps(mx1, fb, mx1, zb);
    if (static_cast<__mmask16>(fa & fb) != 0xffff)
      nf += static_cast<std::size_t>(32 - __builtin_popcount(fa) - __builtin_popcount(fb));
  }
  for (; i < n; i += 16) {
    const std::size_t left = n - i < 16 ? n - i : 16;
    const __mmask16 k = static_cast<__mmask16>((1u << left) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(k, x + i);
    const __mmask16 fa = static_cast<__mmask16>(~_mm512_fpclass_ps_mask(a, fpclass_nonfinite) & k);
    const __m512 za = _mm512_add_ps(a, zero);
    mn0 = _mm512_mask_min_ps(mn0, fa, mn0, za);
    mx0 = _mm512_mask_max_ps(mx0, fa, mx0, za);
    nf += static_cast<std::size_t>(__builtin_popcount(k) - __builtin_popcount(fa));
  }
  s.min = _mm512_reduce_min_ps(_mm512_min_ps(mn0, mn1));
  s.max = _mm512_reduce_max_ps(_mm512_max_ps(mx0, mx1));
  s.nonfinite += nf;
}

QUENCH_DETAIL_CALIB_AVX512 inline __m512i bin_pow2_lanes_avx512(__m512 x, __m512 scale, std::int32_t half,
                                                                 std::int32_t bins) noexcept {
  const __mmask16 nf = _mm512_fpclass_ps_mask(x, fpclass_nonfinite);
  __m512i i;
  if (half == 0) {
    const __m512 t = _mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(x), scale), _mm512_set1_ps(static_cast<float>(bins)));
    i = _mm512_cvttps_epi32(t);
  } else {
    const __m512 fh = _mm512_set1_ps(static_cast<float>(half));
    __m512 t = _mm512_roundscale_ps(_mm512_mul_ps(x, scale), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    t = _mm512_max_ps(t, _mm512_sub_ps(_mm512_setzero_ps(), fh));
    t = _mm512_min_ps(t, fh);
    i = _mm512_cvttps_epi32(t);
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    i = _mm512_mask_min_epi32(i, neg, i, _mm512_set1_epi32(-1));
    i = _mm512_add_epi32(i, _mm512_set1_epi32(half));
  }
  i = _mm512_max_epi32(i, _mm512_setzero_si512());
  i = _mm512_min_epi32(i, _mm512_set1_epi32(bins - 1));
  return _mm512_mask_mov_epi32(i, nf, _mm512_set1_epi32(bins));
}

QUENCH_DETAIL_CALIB_AVX512 inline void bin_pow2_float_avx512(const float* QUENCH_RESTRICT x, std::size_t n,
                                                             float scale, std::int32_t half, std::int32_t bins,
                                                             std::uint32_t* QUENCH_RESTRICT sub,
                                                             std::size_t stride) noexcept {
  const __m512 vs = _mm512_set1_ps(scale);
  std::uint32_t* const h0 = sub;
  std::uint32_t* const h1 = sub + stride;
  std::uint32_t* const h2 = sub + 2 * stride;
  std::uint32_t* const h3 = sub + 3 * stride;
  alignas(64) std::uint32_t idx[32];
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    _mm512_store_si512(idx, bin_pow2_lanes_avx512(_mm512_loadu_ps(x + i), vs, half, bins));
    _mm512_store_si512(idx + 16, bin_pow2_lanes_avx512(_mm512_loadu_ps(x + i + 16), vs, half, bins));
    for (int k = 0; k < 32; k += 4) {
      ++h0[idx[k]];
      ++h1[idx[k + 1]];
      ++h2[idx[k + 2]];
      ++h3[idx[k + 3]];
    }
  }
  bin_pow2_float_ref(x + i, n - i, scale, half, bins, sub, stride);
}

#undef QUENCH_DETAIL_CALIB_AVX512

}  // namespace quench::detail

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // QUENCH_ENABLE_SIMD
