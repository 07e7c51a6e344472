#pragma once
// AVX2 + FMA fake-quant kernels: the scalar reference (fake_quant_ref.hpp) on 8 lanes, bit for bit.
//
//   * rounding is vroundps with an explicit round-to-nearest-even immediate (MXCSR ignored), the
//     scalar path's add-and-subtract-2^23;
//   * vmaxps returns its second operand when the first is NaN, so max(q, lo) sends NaN to
//     quant_min as the scalar `!(q >= lo)` does;
//   * the learnable backward uses vfmadd/vfmsub exactly where the reference calls std::fma, and
//     every other product is a separate vmulps (GCC would fuse a * b + c written with intrinsics
//     too, so none is written);
//   * gradient sums keep the reference's 16 double lanes: floats i..i+15 of a run convert to
//     doubles in lanes 0..15, and the tail continues in the reference with the spilled lanes.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/qat/detail/fake_quant_ref.hpp"

namespace quench::detail {

#define QUENCH_DETAIL_QAT_AVX2 QUENCH_TARGET("avx2,fma")

/// One fake-quant step on 8 lanes; `in_range` gets all-ones lanes where torch's mask is 1.
QUENCH_DETAIL_QAT_AVX2 inline __m256 fake_quantize8_avx2(__m256 x, __m256 s, __m256 inv, __m256 z, __m256 lo, __m256 hi,
                                                     __m256& in_range) noexcept {
  const __m256 r = _mm256_round_ps(_mm256_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 q = _mm256_add_ps(r, z);
  in_range = _mm256_and_ps(_mm256_cmp_ps(q, lo, _CMP_GE_OQ), _mm256_cmp_ps(q, hi, _CMP_LE_OQ));
  const __m256 c = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
  return _mm256_mul_ps(_mm256_sub_ps(c, z), s);
}

/// 32 mask bytes (0/1) from four 8-lane compare results, in element order.
QUENCH_DETAIL_QAT_AVX2 inline void store_mask32_avx2(std::uint8_t* m, __m256 a, __m256 b, __m256 c, __m256 d) noexcept {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i ia = _mm256_and_si256(_mm256_castps_si256(a), one);
  const __m256i ib = _mm256_and_si256(_mm256_castps_si256(b), one);
  const __m256i ic = _mm256_and_si256(_mm256_castps_si256(c), one);
  const __m256i id = _mm256_and_si256(_mm256_castps_si256(d), one);
  // The packs work per 128-bit lane: the bytes come out as 4-byte groups a0 b0 c0 d0 a1 b1 c1 d1.
  const __m256i ab = _mm256_packs_epi32(ia, ib);
  const __m256i cd = _mm256_packs_epi32(ic, id);
  const __m256i r = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(m), r);
}

/// 8 mask bytes (0/1) from one compare result.
QUENCH_DETAIL_QAT_AVX2 inline void store_mask8_avx2(std::uint8_t* m, __m256 a) noexcept {
  const __m256i ia = _mm256_and_si256(_mm256_castps_si256(a), _mm256_set1_epi32(1));
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(ia), _mm256_extracti128_si256(ia, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(m), _mm_packs_epi16(w, w));
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX2 inline void load_channels_avx2(fq_channel_ptrs ch, std::size_t i, __m256& s, __m256& inv,
                                                  __m256& z) noexcept {
  if (Vec) {
    s = _mm256_loadu_ps(ch.scale + i);
    inv = _mm256_loadu_ps(ch.inv_scale + i);
    z = _mm256_loadu_ps(ch.zero_point + i);
  }
}

inline fq_channel_ptrs offset_channels(fq_channel_ptrs ch, std::size_t i) noexcept {
  return {ch.scale + i, ch.inv_scale + i, ch.zero_point + i};
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX2 inline void fake_quantize_run_avx2(const float* x, std::size_t n, fq_channel_ptrs ch, float lo,
                                                      float hi, float* y, std::uint8_t* mask) noexcept {
  __m256 s = _mm256_set1_ps(ch.scale[0]), inv = _mm256_set1_ps(ch.inv_scale[0]), z = _mm256_set1_ps(ch.zero_point[0]);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  std::size_t i = 0;
  __m256 ma, mb, mc, md;
  for (; i + 32 <= n; i += 32) {
    load_channels_avx2<Vec>(ch, i, s, inv, z);
    const __m256 ya = fake_quantize8_avx2(_mm256_loadu_ps(x + i), s, inv, z, vlo, vhi, ma);
    load_channels_avx2<Vec>(ch, i + 8, s, inv, z);
    const __m256 yb = fake_quantize8_avx2(_mm256_loadu_ps(x + i + 8), s, inv, z, vlo, vhi, mb);
    load_channels_avx2<Vec>(ch, i + 16, s, inv, z);
    const __m256 yc = fake_quantize8_avx2(_mm256_loadu_ps(x + i + 16), s, inv, z, vlo, vhi, mc);
    load_channels_avx2<Vec>(ch, i + 24, s, inv, z);
    const __m256 yd = fake_quantize8_avx2(_mm256_loadu_ps(x + i + 24), s, inv, z, vlo, vhi, md);
    _mm256_storeu_ps(y + i, ya);
    _mm256_storeu_ps(y + i + 8, yb);
    _mm256_storeu_ps(y + i + 16, yc);
    _mm256_storeu_ps(y + i + 24, yd);
    if (mask) store_mask32_avx2(mask + i, ma, mb, mc, md);
  }
  for (; i + 8 <= n; i += 8) {
    load_channels_avx2<Vec>(ch, i, s, inv, z);
    _mm256_storeu_ps(y + i, fake_quantize8_avx2(_mm256_loadu_ps(x + i), s, inv, z, vlo, vhi, ma));
    if (mask) store_mask8_avx2(mask + i, ma);
  }
  if (i < n) fake_quantize_run_ref<Vec>(x + i, n - i, Vec ? offset_channels(ch, i) : ch, lo, hi, y + i, mask ? mask + i : nullptr);
}

/// dx = dy * (mask != 0), as a multiplication (signed zeros and NaN as the reference).
QUENCH_DETAIL_QAT_AVX2 inline void ste_backward_avx2(const float* dy, const std::uint8_t* mask, std::size_t n,
                                                 float* dx) noexcept {
  const __m256i one = _mm256_set1_epi32(1);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + i));
    const __m128i lo16 = _mm256_castsi256_si128(m), hi16 = _mm256_extracti128_si256(m, 1);
    const __m256i m0 = _mm256_min_epu32(_mm256_cvtepu8_epi32(lo16), one);
    const __m256i m1 = _mm256_min_epu32(_mm256_cvtepu8_epi32(_mm_srli_si128(lo16, 8)), one);
    const __m256i m2 = _mm256_min_epu32(_mm256_cvtepu8_epi32(hi16), one);
    const __m256i m3 = _mm256_min_epu32(_mm256_cvtepu8_epi32(_mm_srli_si128(hi16, 8)), one);
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_cvtepi32_ps(m0)));
    _mm256_storeu_ps(dx + i + 8, _mm256_mul_ps(_mm256_loadu_ps(dy + i + 8), _mm256_cvtepi32_ps(m1)));
    _mm256_storeu_ps(dx + i + 16, _mm256_mul_ps(_mm256_loadu_ps(dy + i + 16), _mm256_cvtepi32_ps(m2)));
    _mm256_storeu_ps(dx + i + 24, _mm256_mul_ps(_mm256_loadu_ps(dy + i + 24), _mm256_cvtepi32_ps(m3)));
  }
  ste_backward_ref(dy + i, mask + i, n - i, dx + i);
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX2 inline void ste_backward_run_avx2(const float* dy, const float* x, std::size_t n, fq_channel_ptrs ch,
                                                     float lo, float hi, float* dx) noexcept {
  __m256 s = _mm256_set1_ps(ch.scale[0]), inv = _mm256_set1_ps(ch.inv_scale[0]), z = _mm256_set1_ps(ch.zero_point[0]);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), one = _mm256_set1_ps(1.f);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    load_channels_avx2<Vec>(ch, i, s, inv, z);
    __m256 in;
    (void)fake_quantize8_avx2(_mm256_loadu_ps(x + i), s, inv, z, vlo, vhi, in);
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_and_ps(in, one)));
  }
  if (i < n) ste_backward_run_ref<Vec>(dy + i, x + i, n - i, Vec ? offset_channels(ch, i) : ch, lo, hi, dx + i);
}

/// Learnable gradients of 8 lanes: returns dx, writes the scale and zero-point terms.
QUENCH_DETAIL_QAT_AVX2 inline __m256 learnable_grad8_avx2(__m256 x, __m256 dy, __m256 s, __m256 inv, __m256 z, __m256 lo,
                                                      __m256 hi, __m256 gf, __m256& ts, __m256& tz) noexcept {
  const __m256 q = _mm256_round_ps(_mm256_fmadd_ps(x, inv, z), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 in = _mm256_and_ps(_mm256_cmp_ps(q, lo, _CMP_GE_OQ), _mm256_cmp_ps(q, hi, _CMP_LE_OQ));
  const __m256 above = _mm256_cmp_ps(q, hi, _CMP_GT_OQ);
  const __m256 fms = _mm256_fmsub_ps(_mm256_sub_ps(q, z), s, x);
  const __m256 t_in = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dy, fms), inv), gf);
  const __m256 bound = _mm256_blendv_ps(_mm256_sub_ps(lo, z), _mm256_sub_ps(hi, z), above);
  const __m256 t_out = _mm256_mul_ps(_mm256_mul_ps(dy, bound), gf);
  ts = _mm256_blendv_ps(t_out, t_in, in);
  const __m256 neg_dy = _mm256_xor_ps(dy, _mm256_set1_ps(-0.f));
  tz = _mm256_andnot_ps(in, _mm256_mul_ps(_mm256_mul_ps(neg_dy, s), gf));  // +0 in range
  return _mm256_mul_ps(dy, _mm256_and_ps(in, _mm256_set1_ps(1.f)));
}

QUENCH_DETAIL_QAT_AVX2 inline void learnable_backward_run_avx2(const float* x, const float* dy, std::size_t n,
                                                           fq_channel_ptrs ch, learnable_consts c, float* dx,
                                                           double* acc_scale, double* acc_zp) noexcept {
  const __m256 s = _mm256_set1_ps(ch.scale[0]), inv = _mm256_set1_ps(ch.inv_scale[0]),
               z = _mm256_set1_ps(ch.zero_point[0]);
  const __m256 lo = _mm256_set1_ps(c.lo), hi = _mm256_set1_ps(c.hi), gf = _mm256_set1_ps(c.grad_factor);
  __m256d as0 = _mm256_loadu_pd(acc_scale), as1 = _mm256_loadu_pd(acc_scale + 4), as2 = _mm256_loadu_pd(acc_scale + 8),
          as3 = _mm256_loadu_pd(acc_scale + 12);
  __m256d az0 = _mm256_loadu_pd(acc_zp), az1 = _mm256_loadu_pd(acc_zp + 4), az2 = _mm256_loadu_pd(acc_zp + 8),
          az3 = _mm256_loadu_pd(acc_zp + 12);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 tsa, tza, tsb, tzb;
    _mm256_storeu_ps(dx + i, learnable_grad8_avx2(_mm256_loadu_ps(x + i), _mm256_loadu_ps(dy + i), s, inv, z, lo, hi,
                                                  gf, tsa, tza));
    _mm256_storeu_ps(dx + i + 8, learnable_grad8_avx2(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(dy + i + 8), s, inv,
                                                      z, lo, hi, gf, tsb, tzb));
    as0 = _mm256_add_pd(as0, _mm256_cvtps_pd(_mm256_castps256_ps128(tsa)));
    as1 = _mm256_add_pd(as1, _mm256_cvtps_pd(_mm256_extractf128_ps(tsa, 1)));
    as2 = _mm256_add_pd(as2, _mm256_cvtps_pd(_mm256_castps256_ps128(tsb)));
    as3 = _mm256_add_pd(as3, _mm256_cvtps_pd(_mm256_extractf128_ps(tsb, 1)));
    az0 = _mm256_add_pd(az0, _mm256_cvtps_pd(_mm256_castps256_ps128(tza)));
    az1 = _mm256_add_pd(az1, _mm256_cvtps_pd(_mm256_extractf128_ps(tza, 1)));
    az2 = _mm256_add_pd(az2, _mm256_cvtps_pd(_mm256_castps256_ps128(tzb)));
    az3 = _mm256_add_pd(az3, _mm256_cvtps_pd(_mm256_extractf128_ps(tzb, 1)));
  }
  _mm256_storeu_pd(acc_scale, as0);
  _mm256_storeu_pd(acc_scale + 4, as1);
  _mm256_storeu_pd(acc_scale + 8, as2);
  _mm256_storeu_pd(acc_scale + 12, as3);
  _mm256_storeu_pd(acc_zp, az0);
  _mm256_storeu_pd(acc_zp + 4, az1);
  _mm256_storeu_pd(acc_zp + 8, az2);
  _mm256_storeu_pd(acc_zp + 12, az3);
  // i is a multiple of 16 here, so the reference's lane i % 16 continues where the vectors stopped.
  if (i < n) learnable_backward_run_ref(x + i, dy + i, n - i, ch, c, dx + i, acc_scale, acc_zp);
}

QUENCH_DETAIL_QAT_AVX2 inline void learnable_backward_vec_avx2(const float* x, const float* dy, std::size_t n,
                                                           fq_channel_ptrs ch, learnable_consts c, float* dx,
                                                           double* acc_scale, double* acc_zp) noexcept {
  const __m256 lo = _mm256_set1_ps(c.lo), hi = _mm256_set1_ps(c.hi), gf = _mm256_set1_ps(c.grad_factor);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 ts, tz;
    _mm256_storeu_ps(dx + i, learnable_grad8_avx2(_mm256_loadu_ps(x + i), _mm256_loadu_ps(dy + i),
                                                  _mm256_loadu_ps(ch.scale + i), _mm256_loadu_ps(ch.inv_scale + i),
                                                  _mm256_loadu_ps(ch.zero_point + i), lo, hi, gf, ts, tz));
    _mm256_storeu_pd(acc_scale + i,
                     _mm256_add_pd(_mm256_loadu_pd(acc_scale + i), _mm256_cvtps_pd(_mm256_castps256_ps128(ts))));
    _mm256_storeu_pd(acc_scale + i + 4,
                     _mm256_add_pd(_mm256_loadu_pd(acc_scale + i + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(ts, 1))));
    _mm256_storeu_pd(acc_zp + i, _mm256_add_pd(_mm256_loadu_pd(acc_zp + i), _mm256_cvtps_pd(_mm256_castps256_ps128(tz))));
    _mm256_storeu_pd(acc_zp + i + 4,
                     _mm256_add_pd(_mm256_loadu_pd(acc_zp + i + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(tz, 1))));
  }
  if (i < n) learnable_backward_vec_ref(x + i, dy + i, n - i, offset_channels(ch, i), c, dx + i, acc_scale + i, acc_zp + i);
}

// ---- float8 fake quant -------------------------------------------------------------------------

template <bool Vec>
QUENCH_DETAIL_QAT_AVX2 inline void float8_divide_avx2(const float* x, std::size_t n, const float* scale, float bound,
                                                      float* r, std::uint8_t* mask) noexcept {
  const __m256 vb = _mm256_set1_ps(bound), sign = _mm256_set1_ps(-0.f);
  __m256 s = _mm256_set1_ps(scale[0]);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 m[4];
    for (int k = 0; k < 4; ++k) {
      if (Vec) s = _mm256_loadu_ps(scale + i + 8 * k);
      const __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), s);
      _mm256_storeu_ps(r + i + 8 * k, q);
      m[k] = _mm256_cmp_ps(_mm256_andnot_ps(sign, q), vb, _CMP_LE_OQ);
    }
    if (mask) store_mask32_avx2(mask + i, m[0], m[1], m[2], m[3]);
  }
  if (i < n) float8_divide_ref<Vec>(x + i, n - i, Vec ? scale + i : scale, bound, r + i, mask ? mask + i : nullptr);
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX2 inline void float8_multiply_avx2(const float* v, std::size_t n, const float* scale,
                                                        float* y) noexcept {
  const __m256 s = _mm256_set1_ps(scale[0]);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(v + i), Vec ? _mm256_loadu_ps(scale + i) : s));
  if (i < n) float8_multiply_ref<Vec>(v + i, n - i, Vec ? scale + i : scale, y + i);
}

// ---- observers -----------------------------------------------------------------------------

/// |v| > FLT_MAX or NaN, as all-ones lanes.
QUENCH_DETAIL_QAT_AVX2 inline __m256 not_finite8_avx2(__m256 v) noexcept {
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.f), v);
  return _mm256_cmp_ps(a, _mm256_set1_ps(3.40282347e38f), _CMP_NLE_UQ);
}

QUENCH_DETAIL_QAT_AVX2 inline float hmin8_avx2(__m256 v) noexcept {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

QUENCH_DETAIL_QAT_AVX2 inline float hmax8_avx2(__m256 v) noexcept {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

/// The reference's result for finite input (the sign of a zero extreme is fixed by the caller).
QUENCH_DETAIL_QAT_AVX2 inline bool minmax_run_avx2(const float* x, std::size_t n, float& mn, float& mx) noexcept {
  std::size_t i = 0;
  bool finite = true;
  if (n >= 16) {
    __m256 mn0 = _mm256_set1_ps(mn), mn1 = mn0, mx0 = _mm256_set1_ps(mx), mx1 = mx0;
    __m256 bad = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
      const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
      mn0 = _mm256_min_ps(mn0, a);
      mn1 = _mm256_min_ps(mn1, b);
      mx0 = _mm256_max_ps(mx0, a);
      mx1 = _mm256_max_ps(mx1, b);
      bad = _mm256_or_ps(bad, _mm256_or_ps(not_finite8_avx2(a), not_finite8_avx2(b)));
    }
    finite = _mm256_testz_ps(bad, bad) != 0;
    mn = hmin8_avx2(_mm256_min_ps(mn0, mn1));
    mx = hmax8_avx2(_mm256_max_ps(mx0, mx1));
  }
  return minmax_run_ref(x + i, n - i, mn, mx) && finite;
}

QUENCH_DETAIL_QAT_AVX2 inline bool minmax_rows_avx2(const float* x, std::size_t n, float* mn, float* mx) noexcept {
  std::size_t i = 0;
  __m256 bad = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // min(v, m) keeps m when v is NaN, as the reference's v < m ? v : m.
    _mm256_storeu_ps(mn + i, _mm256_min_ps(v, _mm256_loadu_ps(mn + i)));
    _mm256_storeu_ps(mx + i, _mm256_max_ps(v, _mm256_loadu_ps(mx + i)));
    bad = _mm256_or_ps(bad, not_finite8_avx2(v));
  }
  const bool finite = _mm256_testz_ps(bad, bad) != 0;
  return minmax_rows_ref(x + i, n - i, mn + i, mx + i) && finite;
}

#undef QUENCH_DETAIL_QAT_AVX2

}  // namespace quench::detail

#endif  // QUENCH_ENABLE_SIMD
