#pragma once
// AVX-512 (F, BW, DQ, VL) scan-and-bin kernel: the definitions of calib_kernels_ref.hpp on 16 lanes,
// with vfpclassps for NaN/Inf. Bit-identical to the scalar path (see calib_kernels_avx2.hpp for
// why).

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

/// The main loop is unmasked: masked stores are slow on AMD's AVX-512 (measured on Zen 5: a
/// masked-store loop 5x slower); the tail goes through the scalar reference.
QUENCH_DETAIL_CALIB_AVX512 inline void scan_bin_float_avx512(const float* QUENCH_RESTRICT x, std::size_t n,
                                                              scan_stats& s, float scale, std::int32_t half,
                                                              std::int32_t bins,
                                                              std::uint32_t* QUENCH_RESTRICT idx) noexcept {
  const __m512 vs = _mm512_set1_ps(scale);
  const __m512 zero = _mm512_setzero_ps();
  __m512 mn = _mm512_set1_ps(s.min), mx = _mm512_set1_ps(s.max);
  std::size_t nf = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_loadu_ps(x + i);
    const __mmask16 fa = static_cast<__mmask16>(~_mm512_fpclass_ps_mask(a, fpclass_nonfinite));
    const __m512 za = _mm512_add_ps(a, zero);
    mn = _mm512_mask_min_ps(mn, fa, mn, za);
    mx = _mm512_mask_max_ps(mx, fa, mx, za);
    if (fa != 0xffff) nf += static_cast<std::size_t>(16 - __builtin_popcount(fa));
    _mm512_storeu_si512(idx + i, bin_pow2_lanes_avx512(a, vs, half, bins));
  }
  s.min = _mm512_reduce_min_ps(mn);
  s.max = _mm512_reduce_max_ps(mx);
  s.nonfinite += nf;
  scan_bin_float_ref(x + i, n - i, s, scale, half, bins, idx + i);
}

#undef QUENCH_DETAIL_CALIB_AVX512

}  // namespace quench::detail

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // QUENCH_ENABLE_SIMD
