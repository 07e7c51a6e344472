#pragma once
// AVX-512 (F, BW, DQ, VL) fake-quant kernels: the AVX2 algorithms (fake_quant_avx2.hpp explains
// each choice) on 16 lanes, with mask registers for the compares and blends. Bit for bit the scalar
// reference.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/qat/detail/fake_quant_avx2.hpp"
#include "quench/qat/detail/fake_quant_ref.hpp"

// GCC 12's unmasked AVX-512 intrinsics start from _mm512_undefined_*() and trip
// -Wmaybe-uninitialized once inlined (GCC bug 105593); the zero-masking forms with a full mask are
// the same instructions and are used instead where one exists. The suppression covers the rest.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace quench::detail {

#define QUENCH_DETAIL_QAT_AVX512 QUENCH_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")

inline constexpr __mmask16 all16 = 0xffff;

/// One fake-quant step on 16 lanes; `in_range` gets torch's mask.
QUENCH_DETAIL_QAT_AVX512 inline __m512 fake_quantize16_avx512(__m512 x, __m512 s, __m512 inv, __m512 z, __m512 lo,
                                                          __m512 hi, __mmask16& in_range) noexcept {
  const __m512 r =
      _mm512_maskz_roundscale_ps(all16, _mm512_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 q = _mm512_add_ps(r, z);
  in_range = _mm512_cmp_ps_mask(q, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(q, hi, _CMP_LE_OQ);
  const __m512 c = _mm512_maskz_min_ps(all16, _mm512_maskz_max_ps(all16, q, lo), hi);  // NaN -> lo
  return _mm512_mul_ps(_mm512_sub_ps(c, z), s);
}

/// 16 mask bytes (0/1).
QUENCH_DETAIL_QAT_AVX512 inline void store_mask16_avx512(std::uint8_t* m, __mmask16 k) noexcept {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(m), _mm_maskz_mov_epi8(k, _mm_set1_epi8(1)));
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX512 inline void load_channels_avx512(fq_channel_ptrs ch, std::size_t i, __m512& s, __m512& inv,
                                                      __m512& z) noexcept {
  if (Vec) {
    s = _mm512_loadu_ps(ch.scale + i);
    inv = _mm512_loadu_ps(ch.inv_scale + i);
    z = _mm512_loadu_ps(ch.zero_point + i);
  }
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX512 inline void fake_quantize_run_avx512(const float* x, std::size_t n, fq_channel_ptrs ch, float lo,
                                                          float hi, float* y, std::uint8_t* mask) noexcept {
  __m512 s = _mm512_set1_ps(ch.scale[0]), inv = _mm512_set1_ps(ch.inv_scale[0]), z = _mm512_set1_ps(ch.zero_point[0]);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __mmask16 ma, mb;
    load_channels_avx512<Vec>(ch, i, s, inv, z);
    const __m512 ya = fake_quantize16_avx512(_mm512_loadu_ps(x + i), s, inv, z, vlo, vhi, ma);
    load_channels_avx512<Vec>(ch, i + 16, s, inv, z);
    const __m512 yb = fake_quantize16_avx512(_mm512_loadu_ps(x + i + 16), s, inv, z, vlo, vhi, mb);
    _mm512_storeu_ps(y + i, ya);
    _mm512_storeu_ps(y + i + 16, yb);
    if (mask) {
      const __mmask32 k = static_cast<__mmask32>(ma) | (static_cast<__mmask32>(mb) << 16);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + i), _mm256_maskz_mov_epi8(k, _mm256_set1_epi8(1)));
    }
  }
  for (; i + 16 <= n; i += 16) {
    __mmask16 ma;
    load_channels_avx512<Vec>(ch, i, s, inv, z);
    _mm512_storeu_ps(y + i, fake_quantize16_avx512(_mm512_loadu_ps(x + i), s, inv, z, vlo, vhi, ma));
    if (mask) store_mask16_avx512(mask + i, ma);
  }
  if (i < n)
    fake_quantize_run_ref<Vec>(x + i, n - i, Vec ? offset_channels(ch, i) : ch, lo, hi, y + i, mask ? mask + i : nullptr);
}

QUENCH_DETAIL_QAT_AVX512 inline void ste_backward_avx512(const float* dy, const std::uint8_t* mask, std::size_t n,
                                                     float* dx) noexcept {
  const __m512 one = _mm512_set1_ps(1.f);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + i));
    const __mmask32 k = _mm256_test_epi8_mask(m, m);  // byte != 0
    const __m512 fa = _mm512_maskz_mov_ps(static_cast<__mmask16>(k), one);
    const __m512 fb = _mm512_maskz_mov_ps(static_cast<__mmask16>(k >> 16), one);
    _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), fa));
    _mm512_storeu_ps(dx + i + 16, _mm512_mul_ps(_mm512_loadu_ps(dy + i + 16), fb));
  }
  ste_backward_ref(dy + i, mask + i, n - i, dx + i);
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX512 inline void ste_backward_run_avx512(const float* dy, const float* x, std::size_t n,
                                                         fq_channel_ptrs ch, float lo, float hi, float* dx) noexcept {
  __m512 s = _mm512_set1_ps(ch.scale[0]), inv = _mm512_set1_ps(ch.inv_scale[0]), z = _mm512_set1_ps(ch.zero_point[0]);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi), one = _mm512_set1_ps(1.f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    load_channels_avx512<Vec>(ch, i, s, inv, z);
    __mmask16 in;
    (void)fake_quantize16_avx512(_mm512_loadu_ps(x + i), s, inv, z, vlo, vhi, in);
    _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), _mm512_maskz_mov_ps(in, one)));
  }
  if (i < n) ste_backward_run_ref<Vec>(dy + i, x + i, n - i, Vec ? offset_channels(ch, i) : ch, lo, hi, dx + i);
}

QUENCH_DETAIL_QAT_AVX512 inline __m512 learnable_grad16_avx512(__m512 x, __m512 dy, __m512 s, __m512 inv, __m512 z,
                                                           __m512 lo, __m512 hi, __m512 gf, __m512& ts,
                                                           __m512& tz) noexcept {
  const __m512 q =
      _mm512_maskz_roundscale_ps(all16, _mm512_fmadd_ps(x, inv, z), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask16 in = _mm512_cmp_ps_mask(q, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(q, hi, _CMP_LE_OQ);
  const __mmask16 above = _mm512_cmp_ps_mask(q, hi, _CMP_GT_OQ);
  const __m512 fms = _mm512_fmsub_ps(_mm512_sub_ps(q, z), s, x);
  const __m512 t_in = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dy, fms), inv), gf);
  const __m512 bound = _mm512_mask_blend_ps(above, _mm512_sub_ps(lo, z), _mm512_sub_ps(hi, z));
  const __m512 t_out = _mm512_mul_ps(_mm512_mul_ps(dy, bound), gf);
  ts = _mm512_mask_blend_ps(in, t_out, t_in);
  const __m512 neg_dy = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(dy), _mm512_set1_epi32(INT32_MIN)));
  tz = _mm512_maskz_mov_ps(static_cast<__mmask16>(~in), _mm512_mul_ps(_mm512_mul_ps(neg_dy, s), gf));
  return _mm512_mul_ps(dy, _mm512_maskz_mov_ps(in, _mm512_set1_ps(1.f)));
}

/// Adds 16 float terms to 16 double lanes (lanes 0..7 in `a`, 8..15 in `b`).
QUENCH_DETAIL_QAT_AVX512 inline void add_lanes16_avx512(__m512d& a, __m512d& b, __m512 t) noexcept {
  a = _mm512_add_pd(a, _mm512_maskz_cvtps_pd(0xff, _mm512_castps512_ps256(t)));
  b = _mm512_add_pd(b, _mm512_maskz_cvtps_pd(0xff, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1))));
}

QUENCH_DETAIL_QAT_AVX512 inline void learnable_backward_run_avx512(const float* x, const float* dy, std::size_t n,
                                                               fq_channel_ptrs ch, learnable_consts c, float* dx,
                                                               double* acc_scale, double* acc_zp) noexcept {
  const __m512 s = _mm512_set1_ps(ch.scale[0]), inv = _mm512_set1_ps(ch.inv_scale[0]),
               z = _mm512_set1_ps(ch.zero_point[0]);
  const __m512 lo = _mm512_set1_ps(c.lo), hi = _mm512_set1_ps(c.hi), gf = _mm512_set1_ps(c.grad_factor);
  __m512d as0 = _mm512_loadu_pd(acc_scale), as1 = _mm512_loadu_pd(acc_scale + 8);
  __m512d az0 = _mm512_loadu_pd(acc_zp), az1 = _mm512_loadu_pd(acc_zp + 8);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 ts, tz;
    _mm512_storeu_ps(dx + i,
                     learnable_grad16_avx512(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i), s, inv, z, lo, hi, gf, ts, tz));
    add_lanes16_avx512(as0, as1, ts);
    add_lanes16_avx512(az0, az1, tz);
  }
  _mm512_storeu_pd(acc_scale, as0);
  _mm512_storeu_pd(acc_scale + 8, as1);
  _mm512_storeu_pd(acc_zp, az0);
  _mm512_storeu_pd(acc_zp + 8, az1);
  if (i < n) learnable_backward_run_ref(x + i, dy + i, n - i, ch, c, dx + i, acc_scale, acc_zp);
}

QUENCH_DETAIL_QAT_AVX512 inline void learnable_backward_vec_avx512(const float* x, const float* dy, std::size_t n,
                                                               fq_channel_ptrs ch, learnable_consts c, float* dx,
                                                               double* acc_scale, double* acc_zp) noexcept {
  const __m512 lo = _mm512_set1_ps(c.lo), hi = _mm512_set1_ps(c.hi), gf = _mm512_set1_ps(c.grad_factor);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 ts, tz;
    _mm512_storeu_ps(dx + i, learnable_grad16_avx512(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i),
                                                     _mm512_loadu_ps(ch.scale + i), _mm512_loadu_ps(ch.inv_scale + i),
                                                     _mm512_loadu_ps(ch.zero_point + i), lo, hi, gf, ts, tz));
    __m512d s0 = _mm512_loadu_pd(acc_scale + i), s1 = _mm512_loadu_pd(acc_scale + i + 8);
    __m512d z0 = _mm512_loadu_pd(acc_zp + i), z1 = _mm512_loadu_pd(acc_zp + i + 8);
    add_lanes16_avx512(s0, s1, ts);
    add_lanes16_avx512(z0, z1, tz);
    _mm512_storeu_pd(acc_scale + i, s0);
    _mm512_storeu_pd(acc_scale + i + 8, s1);
    _mm512_storeu_pd(acc_zp + i, z0);
    _mm512_storeu_pd(acc_zp + i + 8, z1);
  }
  if (i < n) learnable_backward_vec_ref(x + i, dy + i, n - i, offset_channels(ch, i), c, dx + i, acc_scale + i, acc_zp + i);
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX512 inline void float8_divide_avx512(const float* x, std::size_t n, const float* scale,
                                                          float bound, float* r, std::uint8_t* mask) noexcept {
  const __m512 vb = _mm512_set1_ps(bound);
  __m512 s = _mm512_set1_ps(scale[0]);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (Vec) s = _mm512_loadu_ps(scale + i);
    const __m512 q = _mm512_div_ps(_mm512_loadu_ps(x + i), s);
    _mm512_storeu_ps(r + i, q);
    if (mask) store_mask16_avx512(mask + i, _mm512_cmp_ps_mask(_mm512_abs_ps(q), vb, _CMP_LE_OQ));
  }
  if (i < n) float8_divide_ref<Vec>(x + i, n - i, Vec ? scale + i : scale, bound, r + i, mask ? mask + i : nullptr);
}

template <bool Vec>
QUENCH_DETAIL_QAT_AVX512 inline void float8_multiply_avx512(const float* v, std::size_t n, const float* scale,
                                                            float* y) noexcept {
  const __m512 s = _mm512_set1_ps(scale[0]);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(v + i), Vec ? _mm512_loadu_ps(scale + i) : s));
  if (i < n) float8_multiply_ref<Vec>(v + i, n - i, Vec ? scale + i : scale, y + i);
}

QUENCH_DETAIL_QAT_AVX512 inline bool minmax_run_avx512(const float* x, std::size_t n, float& mn, float& mx) noexcept {
  std::size_t i = 0;
  bool finite = true;
  if (n >= 32) {
    __m512 mn0 = _mm512_set1_ps(mn), mn1 = mn0, mx0 = _mm512_set1_ps(mx), mx1 = mx0;
    const __m512 fmax = _mm512_set1_ps(3.40282347e38f);
    __mmask16 bad = 0;
    for (; i + 32 <= n; i += 32) {
      const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
      mn0 = _mm512_maskz_min_ps(all16, mn0, a);
      mn1 = _mm512_maskz_min_ps(all16, mn1, b);
      mx0 = _mm512_maskz_max_ps(all16, mx0, a);
      mx1 = _mm512_maskz_max_ps(all16, mx1, b);
      bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(a), fmax, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(_mm512_abs_ps(b), fmax, _CMP_NLE_UQ);
    }
    finite = bad == 0;
    const __m512 m0 = _mm512_maskz_min_ps(all16, mn0, mn1), m1 = _mm512_maskz_max_ps(all16, mx0, mx1);
    mn = hmin8_avx2(_mm256_min_ps(_mm512_castps512_ps256(m0),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m0), 1))));
    mx = hmax8_avx2(_mm256_max_ps(_mm512_castps512_ps256(m1),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m1), 1))));
  }
  return minmax_run_ref(x + i, n - i, mn, mx) && finite;
}

QUENCH_DETAIL_QAT_AVX512 inline bool minmax_rows_avx512(const float* x, std::size_t n, float* mn, float* mx) noexcept {
  std::size_t i = 0;
  const __m512 fmax = _mm512_set1_ps(3.40282347e38f);
  __mmask16 bad = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(mn + i, _mm512_maskz_min_ps(all16, v, _mm512_loadu_ps(mn + i)));
    _mm512_storeu_ps(mx + i, _mm512_maskz_max_ps(all16, v, _mm512_loadu_ps(mx + i)));
    bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(v), fmax, _CMP_NLE_UQ);
  }
  return minmax_rows_ref(x + i, n - i, mn + i, mx + i) && bad == 0;
}

#undef QUENCH_DETAIL_QAT_AVX512

}  // namespace quench::detail

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // QUENCH_ENABLE_SIMD
