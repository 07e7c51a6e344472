#pragma once
// AVX-512 (F, BW, DQ, VL) bulk converters: the AVX2 algorithms (see convert_avx2.hpp for the
// reasoning behind each) on 16 lanes, with mask registers for the blends and masked loads/stores
// for the tail, so every element of every length goes through the same instructions.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/numeric/detail/convert_avx2.hpp"
#include "quench/numeric/detail/convert_ref.hpp"

// GCC 12's AVX-512 intrinsics pass `_mm512_undefined_epi32()` (`__m512i __Y = __Y;`) as the
// unused merge source, which -Wuninitialized reports once inlined into a caller (GCC bug 105593,
// fixed in GCC 13). The suppression covers only the kernels below.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace quench::detail {

#define QUENCH_DETAIL_AVX512 QUENCH_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx2,f16c,fma")

/// One unaligned load, never folded into several instructions (see load_once_256).
QUENCH_DETAIL_AVX512 inline __m512i load_once_512(const void* p) noexcept {
  __m512i v = _mm512_loadu_si512(p);
  __asm__("" : "+v"(v));
  return v;
}

/// Lanes [0, count) of a 16-lane vector; count <= 16.
QUENCH_DETAIL_AVX512 inline __mmask16 first_lanes16(std::size_t count) noexcept {
  return static_cast<__mmask16>((1u << count) - 1u);
}

QUENCH_DETAIL_AVX512 inline void float_to_half_avx512(const float* QUENCH_RESTRICT src,
                                                      float16* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), 0);  // imm 0: nearest even
    const __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), 0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 16), b);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    _mm256_mask_storeu_epi16(dst + i, k, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i), 0));
  }
}

/// 16 halves to 16 floats, bit for bit as half_bits_to_float (signalling NaNs stay signalling).
QUENCH_DETAIL_AVX512 inline __m512 half_to_float16_avx512(__m256i h) noexcept {
  const __m512 f = _mm512_cvtph_ps(h);
  const __m256i exp_mask = _mm256_set1_epi16(0x7c00);
  const __mmask16 special = _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, exp_mask), exp_mask);
  if (special == 0) return f;
  const __m512i w = _mm512_cvtepu16_epi32(h);
  const __m512i exact = _mm512_or_si512(
      _mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16),
      _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x7fff)), 13),
                      _mm512_set1_epi32(0x70000000)));
  return _mm512_mask_mov_ps(f, special, _mm512_castsi512_ps(exact));
}

QUENCH_DETAIL_AVX512 inline void half_to_float_avx512(const float16* QUENCH_RESTRICT src,
                                                      float* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 16));
    _mm512_storeu_ps(dst + i, half_to_float16_avx512(a));
    _mm512_storeu_ps(dst + i + 16, half_to_float16_avx512(b));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    _mm512_mask_storeu_ps(dst + i, k, half_to_float16_avx512(_mm256_maskz_loadu_epi16(k, src + i)));
  }
}

/// 16 floats to 16 bfloat16 patterns in the low half of each 32-bit lane.
QUENCH_DETAIL_AVX512 inline __m512i float_to_bfloat16_lanes_avx512(__m512i x) noexcept {
  const __m512i hi = _mm512_srli_epi32(x, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40));
}

QUENCH_DETAIL_AVX512 inline void float_to_bfloat16_avx512(const float* QUENCH_RESTRICT src,
                                                          bfloat16* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i a = float_to_bfloat16_lanes_avx512(load_once_512(src + i));
    const __m512i b = float_to_bfloat16_lanes_avx512(load_once_512(src + i + 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(a));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 16), _mm512_cvtepi32_epi16(b));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    const __m512i r = float_to_bfloat16_lanes_avx512(_mm512_maskz_loadu_epi32(k, src + i));
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, k, r);
  }
}

QUENCH_DETAIL_AVX512 inline void bfloat16_to_float_avx512(const bfloat16* QUENCH_RESTRICT src,
                                                          float* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 16));
    _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(a), 16));
    _mm512_storeu_si512(dst + i + 16, _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src + i));
    _mm512_mask_storeu_epi32(dst + i, k, _mm512_slli_epi32(w, 16));
  }
}

/// 16 floats (as bits) to 16 float8 codes in the low byte of each lane; the algorithm of
/// float_to_float8_lanes_avx2.
template <class Format>
QUENCH_DETAIL_AVX512 inline __m512i float_to_float8_lanes_avx512(__m512i x, const float8_specials& sp) noexcept {
  constexpr int m = Format::man_bits;
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(x, 24), _mm512_set1_epi32(0x80));
  const __m512i ax = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
  const __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(ax, 23), _mm512_set1_epi32(127 - Format::bias));
  const __m512i extra = _mm512_max_epi32(_mm512_sub_epi32(one, e), _mm512_setzero_si512());
  const __m512i shift = _mm512_min_epi32(_mm512_add_epi32(extra, _mm512_set1_epi32(23 - m)), _mm512_set1_epi32(31));
  const __m512i sig = _mm512_or_si512(_mm512_and_si512(ax, _mm512_set1_epi32(0x7fffff)), _mm512_set1_epi32(0x800000));
  const __m512i half_minus_1 = _mm512_sub_epi32(_mm512_sllv_epi32(one, _mm512_sub_epi32(shift, one)), one);
  const __m512i odd = _mm512_and_si512(_mm512_srlv_epi32(sig, shift), one);
  const __m512i kept = _mm512_srlv_epi32(_mm512_add_epi32(_mm512_add_epi32(sig, half_minus_1), odd), shift);
  const __m512i code =
      _mm512_add_epi32(_mm512_slli_epi32(_mm512_sub_epi32(_mm512_max_epi32(e, one), one), m), kept);

  __m512i r = _mm512_or_si512(sign, code);
  if (Format::fnuz)  // no negative zero
    r = _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(code, code), r);
  const __mmask16 ovf = _mm512_cmpgt_epi32_mask(code, _mm512_set1_epi32(Format::max_code));
  r = _mm512_mask_or_epi32(r, ovf, _mm512_set1_epi32(static_cast<int>(sp.ovf_code)),
                           _mm512_and_si512(sign, _mm512_set1_epi32(static_cast<int>(sp.ovf_sign_mask))));
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(ax, _mm512_set1_epi32(static_cast<int>(sp.nan_threshold)));
  return _mm512_mask_or_epi32(r, nan, _mm512_set1_epi32(static_cast<int>(sp.nan_code)),
                              _mm512_and_si512(sign, _mm512_set1_epi32(static_cast<int>(sp.nan_sign_mask))));
}

template <class Float8>
QUENCH_DETAIL_AVX512 inline void float_to_float8_avx512(const float* QUENCH_RESTRICT src,
                                                        Float8* QUENCH_RESTRICT dst, std::size_t n,
                                                        bool saturate) noexcept {
  using format = typename Float8::format;
  const float8_specials sp = make_float8_specials<format>(saturate);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i a = float_to_float8_lanes_avx512<format>(load_once_512(src + i), sp);
    const __m512i b = float_to_float8_lanes_avx512<format>(load_once_512(src + i + 16), sp);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 16), _mm512_cvtepi32_epi8(b));
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    const __m512i r = float_to_float8_lanes_avx512<format>(_mm512_maskz_loadu_epi32(k, src + i), sp);
    _mm512_mask_cvtepi32_storeu_epi8(dst + i, k, r);
  }
}

template <class Float8>
QUENCH_DETAIL_AVX512 inline void float8_to_float_avx512(const Float8* QUENCH_RESTRICT src,
                                                        float* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  const auto* table = float8_decode_table_v<typename Float8::format>.bits;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m512i a = _mm512_i32gather_epi32(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(codes)), table, 4);
    const __m512i b = _mm512_i32gather_epi32(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(codes, 1)), table, 4);
    _mm512_storeu_si512(dst + i, a);
    _mm512_storeu_si512(dst + i + 16, b);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = first_lanes16(n - i < 16 ? n - i : 16);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, src + i));
    _mm512_mask_storeu_epi32(dst + i, k, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, idx, table, 4));
  }
}

#undef QUENCH_DETAIL_AVX512

}  // namespace quench::detail

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // QUENCH_ENABLE_SIMD
