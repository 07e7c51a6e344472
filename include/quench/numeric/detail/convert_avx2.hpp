#pragma once
// AVX2 + F16C bulk converters. Compiled with function target attributes, run only after
// best_simd_target() said the CPU has them. Every kernel gives exactly the bits of the scalar
// reference in convert_ref.hpp (tests/numeric/convert_test.cpp compares them on 1M inputs):
//
//   float -> float16   vcvtps2ph with imm 0 (round to nearest even, MXCSR ignored). Its results
//                      equal float_to_half_bits on all 2^32 inputs, NaN payloads included.
//   float16 -> float   vcvtph2ps, then signalling NaNs are put back: the instruction sets their
//                      quiet bit, the scalar conversion (and numpy) keeps every bit.
//   float -> bfloat16  integer rounding (x + 0x7fff + lsb) >> 16 with a NaN blend. Not
//                      vcvtneps2bf16: it flushes float subnormals to zero.
//   bfloat16 -> float  a 16-bit shift.
//   float -> float8    integer rounding with per-lane variable shifts (see float8_encode_avx2).
//   float8 -> float    a gather from the 256-entry table of the scalar decoder.
//
// Tails shorter than one block go through the scalar reference, which is bit-identical.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quench/numeric/detail/convert_ref.hpp"

namespace quench::detail {

#define QUENCH_DETAIL_AVX2 QUENCH_TARGET("avx2,f16c,fma")

/// An unaligned load that stays one load. Without the empty asm, GCC folds the load into every
/// instruction that uses the value; on misaligned data each copy splits a cache line (measured on
/// Zen 4: AVX-512 float -> bfloat16 1.8x slower on a source 16 bytes off alignment).
QUENCH_DETAIL_AVX2 inline __m256i load_once_256(const void* p) noexcept {
  __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  __asm__("" : "+x"(v));
  return v;
}

QUENCH_DETAIL_AVX2 inline void float_to_half_avx2(const float* QUENCH_RESTRICT src,
                                                  float16* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0);  // imm 0: nearest even
    const __m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), 0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 8), b);
  }
  float_to_half_ref(src + i, dst + i, n - i);
}

/// 8 halves to 8 floats, bit for bit as half_bits_to_float.
QUENCH_DETAIL_AVX2 inline __m256 half_to_float8_avx2(__m128i h) noexcept {
  const __m256 f = _mm256_cvtph_ps(h);
  const __m128i exp_mask = _mm_set1_epi16(0x7c00);
  const __m128i special = _mm_cmpeq_epi16(_mm_and_si128(h, exp_mask), exp_mask);
  if (_mm_testz_si128(special, special)) return f;  // no Inf/NaN lane: the common case
  // Inf/NaN lanes rebuilt from the bits: sign << 16 | 0x7f800000 | mantissa << 13.
  const __m256i w = _mm256_cvtepu16_epi32(h);
  const __m256i exact = _mm256_or_si256(
      _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16),
      _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x7fff)), 13),
                      _mm256_set1_epi32(0x70000000)));
  return _mm256_blendv_ps(f, _mm256_castsi256_ps(exact), _mm256_castsi256_ps(_mm256_cvtepi16_epi32(special)));
}

QUENCH_DETAIL_AVX2 inline void half_to_float_avx2(const float16* QUENCH_RESTRICT src, float* QUENCH_RESTRICT dst,
                                                  std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8));
    _mm256_storeu_ps(dst + i, half_to_float8_avx2(a));
    _mm256_storeu_ps(dst + i + 8, half_to_float8_avx2(b));
  }
  half_to_float_ref(src + i, dst + i, n - i);
}

/// 8 floats to 8 bfloat16 patterns in the low half of each 32-bit lane.
QUENCH_DETAIL_AVX2 inline __m256i float_to_bfloat16_lanes_avx2(__m256i x) noexcept {
  const __m256i hi = _mm256_srli_epi32(x, 16);
  const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  // |x| > Inf as signed 32-bit compare: both sides are non-negative.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i quiet = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}

QUENCH_DETAIL_AVX2 inline void float_to_bfloat16_avx2(const float* QUENCH_RESTRICT src,
                                                      bfloat16* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = float_to_bfloat16_lanes_avx2(load_once_256(src + i));
    const __m256i b = float_to_bfloat16_lanes_avx2(load_once_256(src + i + 8));
    // packus works per 128-bit lane and the values are 0..0xffff, so it packs exactly; the
    // permute restores element order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), packed);
  }
  float_to_bfloat16_ref(src + i, dst + i, n - i);
}

QUENCH_DETAIL_AVX2 inline void bfloat16_to_float_avx2(const bfloat16* QUENCH_RESTRICT src,
                                                      float* QUENCH_RESTRICT dst, std::size_t n) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(a), 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 8), _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16));
  }
  bfloat16_to_float_ref(src + i, dst + i, n - i);
}

/// The per-call constants of float -> float8: what NaN, Inf and overflow become for this format
/// and `saturate` (float8.hpp has the ONNX table). Each special result is `code | (sign & mask)`:
/// the FNUZ NaN 0x80 ignores the sign, every other special result carries it.
struct float8_specials {
  std::uint32_t nan_code, nan_sign_mask;
  std::uint32_t ovf_code, ovf_sign_mask;
  std::uint32_t nan_threshold;  ///< |x| above this (as bits) gives NaN; includes Inf if Inf -> NaN
};

template <class Format>
constexpr float8_specials make_float8_specials(bool saturate) noexcept {
  float8_specials s{};
  s.nan_code = Format::fnuz ? 0x80u : Format::nan_code;
  s.nan_sign_mask = Format::fnuz ? 0u : 0x80u;
  if (saturate) {
    s.ovf_code = Format::max_code;
    s.ovf_sign_mask = 0x80u;
  } else if (Format::has_inf) {
    s.ovf_code = Format::inf_code;
    s.ovf_sign_mask = 0x80u;
  } else {
    s.ovf_code = s.nan_code;
    s.ovf_sign_mask = s.nan_sign_mask;
  }
  // Inf behaves like any overflow, except that with saturate the FNUZ types turn it into NaN.
  s.nan_threshold = (saturate && Format::fnuz) ? 0x7f7fffffu : 0x7f800000u;
  return s;
}

/// 8 floats (as bits) to 8 float8 codes in the low byte of each 32-bit lane.
///
/// With E the target's biased exponent (may be <= 0 for target subnormals), the significand
/// 1.m (24 bits) is shifted right by (23 - man_bits) + max(1 - E, 0) with round to nearest even,
/// which yields 1.mmm for normal results and the subnormal count for the rest. Adding
/// (max(E, 1) - 1) << man_bits then gives the code, with a rounding carry moving into the exponent
/// on its own. Codes above the largest finite one overflow; float zero and subnormals shift out
/// to zero (the shift is capped at 31, which already leaves nothing of a 24-bit significand).
template <class Format>
QUENCH_DETAIL_AVX2 inline __m256i float_to_float8_lanes_avx2(__m256i x, const float8_specials& sp) noexcept {
  constexpr int m = Format::man_bits;
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(x, 24), _mm256_set1_epi32(0x80));
  const __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(ax, 23), _mm256_set1_epi32(127 - Format::bias));
  const __m256i extra = _mm256_max_epi32(_mm256_sub_epi32(one, e), _mm256_setzero_si256());
  const __m256i shift = _mm256_min_epi32(_mm256_add_epi32(extra, _mm256_set1_epi32(23 - m)), _mm256_set1_epi32(31));
  const __m256i sig = _mm256_or_si256(_mm256_and_si256(ax, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x800000));
  const __m256i half_minus_1 = _mm256_sub_epi32(_mm256_sllv_epi32(one, _mm256_sub_epi32(shift, one)), one);
  const __m256i odd = _mm256_and_si256(_mm256_srlv_epi32(sig, shift), one);
  const __m256i kept = _mm256_srlv_epi32(_mm256_add_epi32(_mm256_add_epi32(sig, half_minus_1), odd), shift);
  const __m256i code =
      _mm256_add_epi32(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_max_epi32(e, one), one), m), kept);

  __m256i r = _mm256_or_si256(sign, code);
  if (Format::fnuz)  // no negative zero: a result of zero drops the sign
    r = _mm256_andnot_si256(_mm256_cmpeq_epi32(code, _mm256_setzero_si256()), r);
  const __m256i ovf = _mm256_cmpgt_epi32(code, _mm256_set1_epi32(Format::max_code));
  const __m256i ovf_val = _mm256_or_si256(_mm256_set1_epi32(static_cast<int>(sp.ovf_code)),
                                          _mm256_and_si256(sign, _mm256_set1_epi32(static_cast<int>(sp.ovf_sign_mask))));
  r = _mm256_blendv_epi8(r, ovf_val, ovf);
  const __m256i nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(static_cast<int>(sp.nan_threshold)));
  const __m256i nan_val = _mm256_or_si256(_mm256_set1_epi32(static_cast<int>(sp.nan_code)),
                                          _mm256_and_si256(sign, _mm256_set1_epi32(static_cast<int>(sp.nan_sign_mask))));
  return _mm256_blendv_epi8(r, nan_val, nan);
}

template <class Float8>
QUENCH_DETAIL_AVX2 inline void float_to_float8_avx2(const float* QUENCH_RESTRICT src, Float8* QUENCH_RESTRICT dst,
                                                    std::size_t n, bool saturate) noexcept {
  using format = typename Float8::format;
  const float8_specials sp = make_float8_specials<format>(saturate);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = float_to_float8_lanes_avx2<format>(load_once_256(src + i), sp);
    const __m256i b = float_to_float8_lanes_avx2<format>(load_once_256(src + i + 8), sp);
    const __m256i c = float_to_float8_lanes_avx2<format>(load_once_256(src + i + 16), sp);
    const __m256i d = float_to_float8_lanes_avx2<format>(load_once_256(src + i + 24), sp);
    // Codes are 0..255, so both packs are exact; they interleave 128-bit lanes, the permute
    // puts the 4-byte groups back in order.
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permutevar8x32_epi32(bytes, order));
  }
  float_to_float8_ref(src + i, dst + i, n - i, saturate);
}

template <class Float8>
QUENCH_DETAIL_AVX2 inline void float8_to_float_avx2(const Float8* QUENCH_RESTRICT src, float* QUENCH_RESTRICT dst,
                                                    std::size_t n) noexcept {
  const auto* table = reinterpret_cast<const int*>(float8_decode_table_v<typename Float8::format>.bits);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i codes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m256i a = _mm256_i32gather_epi32(table, _mm256_cvtepu8_epi32(codes), 4);
    const __m256i b = _mm256_i32gather_epi32(table, _mm256_cvtepu8_epi32(_mm_srli_si128(codes, 8)), 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 8), b);
  }
  float8_to_float_ref(src + i, dst + i, n - i);
}

#undef QUENCH_DETAIL_AVX2

}  // namespace quench::detail

#endif  // QUENCH_ENABLE_SIMD
