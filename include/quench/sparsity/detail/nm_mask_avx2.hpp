#pragma once
// AVX2 and AVX-512 kernels for the 2:4 mask (ASP's m4n2_1d). Same scores, same order, same
// strict-greater updates as select_2_4 in nm_mask_ref.hpp, eight (sixteen) groups per step, so
// the masks are byte-identical to the reference (tests/sparsity/nm_mask_test.cpp forces every
// target). Two layouts are vectorised:
//
//   inner == 1   groups contiguous (Linear [K, C], Gemm with transB): 4x4 transposes within
//                128-bit lanes turn eight groups into four vectors of element j;
//   inner >= 8   groups strided (Conv [K, C, R, S] along C, MatMul [C, N] along C): element j of
//                eight neighbouring groups is already one contiguous load.
//
// Everything else, and the tails, runs the scalar reference.

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quench/sparsity/detail/nm_mask_ref.hpp"

namespace quench::detail {

#define QUENCH_DETAIL_SPARSITY_AVX2 QUENCH_TARGET("avx2,fma")
#define QUENCH_DETAIL_SPARSITY_AVX512 QUENCH_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")

/// One candidate pattern: taken where its score is strictly greater (a tie keeps the earlier one).
QUENCH_DETAIL_SPARSITY_AVX2 inline void step_2_4_avx2(__m256& best, __m256i& code, __m256 s, std::uint32_t bytes) noexcept {
  const __m256 gt = _mm256_cmp_ps(s, best, _CMP_GT_OQ);
  best = _mm256_max_ps(best, s);  // = s where gt, else best
  code = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(code),
                                              _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(bytes))), gt));
}

/// Pattern bytes per lane for the magnitudes x0..x3 of eight groups (ASP's order, first maximum).
QUENCH_DETAIL_SPARSITY_AVX2 inline __m256i select_2_4_avx2(__m256 x0, __m256 x1, __m256 x2, __m256 x3) noexcept {
  __m256 best = _mm256_add_ps(x1, x3);
  __m256i code = _mm256_set1_epi32(static_cast<int>(pattern_bytes_2_4[0]));
  step_2_4_avx2(best, code, _mm256_add_ps(x0, x1), pattern_bytes_2_4[1]);
  step_2_4_avx2(best, code, _mm256_add_ps(x1, x2), pattern_bytes_2_4[2]);
  step_2_4_avx2(best, code, _mm256_add_ps(x0, x2), pattern_bytes_2_4[3]);
  step_2_4_avx2(best, code, _mm256_add_ps(x0, x3), pattern_bytes_2_4[4]);
  step_2_4_avx2(best, code, _mm256_add_ps(x2, x3), pattern_bytes_2_4[5]);
  return code;
}

QUENCH_DETAIL_SPARSITY_AVX2 inline bool nm_mask_2_4_avx2(const float* w, std::uint8_t* mask, const nm_layout& l) noexcept {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  __m256i max_bits = _mm256_setzero_si256();  // largest |w| bit pattern: > 0x7f7fffff means NaN/Inf
  bool finite = true;
  if (l.inner == 1) {
    const std::size_t groups = l.outer * l.reduce / 4;
    // Lane order after the in-lane transposes is groups 0 2 4 6 1 3 5 7; this puts them back.
    const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    std::size_t g = 0;
    for (; g + 8 <= groups; g += 8) {
      const float* p = w + 4 * g;
      const __m256i b0 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), abs_mask);
      const __m256i b1 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8)), abs_mask);
      const __m256i b2 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)), abs_mask);
      const __m256i b3 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 24)), abs_mask);
      max_bits = _mm256_max_epu32(max_bits, _mm256_max_epu32(_mm256_max_epu32(b0, b1), _mm256_max_epu32(b2, b3)));
      const __m256 r0 = _mm256_castsi256_ps(b0), r1 = _mm256_castsi256_ps(b1);
      const __m256 r2 = _mm256_castsi256_ps(b2), r3 = _mm256_castsi256_ps(b3);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 x0 = _mm256_shuffle_ps(t0, t2, 0x44), x1 = _mm256_shuffle_ps(t0, t2, 0xee);
      const __m256 x2 = _mm256_shuffle_ps(t1, t3, 0x44), x3 = _mm256_shuffle_ps(t1, t3, 0xee);
      const __m256i code = _mm256_permutevar8x32_epi32(select_2_4_avx2(x0, x1, x2, x3), unshuffle);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + 4 * g), code);
    }
    if (g < groups) finite = nm_mask_2_4_ref(w + 4 * g, mask + 4 * g, nm_layout{1, 4 * (groups - g), 1});
  } else if (l.inner >= 8) {
    // Bytes j of the eight lanes' pattern words, row j after row j: a 4x4 byte transpose per
    // 128-bit lane, then the two lanes' halves of each row side by side.
    const __m256i transpose = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1,
                                               5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i rows = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const std::size_t s = l.inner, groups = l.reduce / 4;
    for (std::size_t o = 0; o < l.outer; ++o)
      for (std::size_t gi = 0; gi < groups; ++gi) {
        const std::size_t base = (o * l.reduce + 4 * gi) * s;
        const float* p = w + base;
        std::uint8_t* q = mask + base;
        std::size_t i = 0;
        for (; i + 8 <= s; i += 8) {
          const __m256i b0 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), abs_mask);
          const __m256i b1 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + s + i)), abs_mask);
          const __m256i b2 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * s + i)), abs_mask);
          const __m256i b3 = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 3 * s + i)), abs_mask);
          max_bits = _mm256_max_epu32(max_bits, _mm256_max_epu32(_mm256_max_epu32(b0, b1), _mm256_max_epu32(b2, b3)));
          const __m256i code = select_2_4_avx2(_mm256_castsi256_ps(b0), _mm256_castsi256_ps(b1),
                                               _mm256_castsi256_ps(b2), _mm256_castsi256_ps(b3));
          const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(code, transpose), rows);
          alignas(32) std::uint8_t out[32];
          _mm256_store_si256(reinterpret_cast<__m256i*>(out), bytes);
          std::memcpy(q + i, out, 8);
          std::memcpy(q + s + i, out + 8, 8);
          std::memcpy(q + 2 * s + i, out + 16, 8);
          std::memcpy(q + 3 * s + i, out + 24, 8);
        }
        for (; i < s; ++i) {
          const float v0 = p[i], v1 = p[s + i], v2 = p[2 * s + i], v3 = p[3 * s + i];
          finite = finite && nm_is_finite(v0) && nm_is_finite(v1) && nm_is_finite(v2) && nm_is_finite(v3);
          const std::uint32_t keep = select_2_4(std::fabs(v0), std::fabs(v1), std::fabs(v2), std::fabs(v3));
          q[i] = keep & 1u;
          q[s + i] = (keep >> 8) & 1u;
          q[2 * s + i] = (keep >> 16) & 1u;
          q[3 * s + i] = keep >> 24;
        }
      }
  } else {
    return nm_mask_2_4_ref(w, mask, l);
  }
  const __m256i bad = _mm256_cmpgt_epi32(max_bits, _mm256_set1_epi32(0x7f7fffff));
  return finite && _mm256_testz_si256(bad, bad);
}

// GCC 12's AVX-512 intrinsics trip -Wuninitialized/-Wmaybe-uninitialized once inlined (GCC bug
// 105593: they start from _mm512_undefined_*()); nothing here reads an undefined lane.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// Sixteen groups per step; the lane bookkeeping as in select_2_4_avx2.
QUENCH_DETAIL_SPARSITY_AVX512 inline void step_2_4_avx512(__m512& best, __m512i& code, __m512 s, std::uint32_t bytes) noexcept {
  const __mmask16 gt = _mm512_cmp_ps_mask(s, best, _CMP_GT_OQ);
  best = _mm512_max_ps(best, s);
  code = _mm512_mask_blend_epi32(gt, code, _mm512_set1_epi32(static_cast<int>(bytes)));
}

QUENCH_DETAIL_SPARSITY_AVX512 inline __m512i select_2_4_avx512(__m512 x0, __m512 x1, __m512 x2, __m512 x3) noexcept {
  __m512 best = _mm512_add_ps(x1, x3);
  __m512i code = _mm512_set1_epi32(static_cast<int>(pattern_bytes_2_4[0]));
  step_2_4_avx512(best, code, _mm512_add_ps(x0, x1), pattern_bytes_2_4[1]);
  step_2_4_avx512(best, code, _mm512_add_ps(x1, x2), pattern_bytes_2_4[2]);
  step_2_4_avx512(best, code, _mm512_add_ps(x0, x2), pattern_bytes_2_4[3]);
  step_2_4_avx512(best, code, _mm512_add_ps(x0, x3), pattern_bytes_2_4[4]);
  step_2_4_avx512(best, code, _mm512_add_ps(x2, x3), pattern_bytes_2_4[5]);
  return code;
}

QUENCH_DETAIL_SPARSITY_AVX512 inline bool nm_mask_2_4_avx512(const float* w, std::uint8_t* mask, const nm_layout& l) noexcept {
  if (l.inner != 1 && l.inner < 16) return nm_mask_2_4_avx2(w, mask, l);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  __m512i max_bits = _mm512_setzero_si512();
  bool finite = true;
  if (l.inner == 1) {
    const std::size_t groups = l.outer * l.reduce / 4;
    // In-lane transposes leave lane 4k + q holding group 4q + k.
    const __m512i unshuffle = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    std::size_t g = 0;
    for (; g + 16 <= groups; g += 16) {
      const float* p = w + 4 * g;
      const __m512i b0 = _mm512_and_si512(_mm512_loadu_si512(p), abs_mask);
      const __m512i b1 = _mm512_and_si512(_mm512_loadu_si512(p + 16), abs_mask);
      const __m512i b2 = _mm512_and_si512(_mm512_loadu_si512(p + 32), abs_mask);
      const __m512i b3 = _mm512_and_si512(_mm512_loadu_si512(p + 48), abs_mask);
      max_bits = _mm512_max_epu32(max_bits, _mm512_max_epu32(_mm512_max_epu32(b0, b1), _mm512_max_epu32(b2, b3)));
      const __m512 r0 = _mm512_castsi512_ps(b0), r1 = _mm512_castsi512_ps(b1);
      const __m512 r2 = _mm512_castsi512_ps(b2), r3 = _mm512_castsi512_ps(b3);
      const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
      const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
      const __m512 x0 = _mm512_shuffle_ps(t0, t2, 0x44), x1 = _mm512_shuffle_ps(t0, t2, 0xee);
      const __m512 x2 = _mm512_shuffle_ps(t1, t3, 0x44), x3 = _mm512_shuffle_ps(t1, t3, 0xee);
      const __m512i code = _mm512_permutexvar_epi32(unshuffle, select_2_4_avx512(x0, x1, x2, x3));
      _mm512_storeu_si512(mask + 4 * g, code);
    }
    if (g < groups) finite = nm_mask_2_4_avx2(w + 4 * g, mask + 4 * g, nm_layout{1, 4 * (groups - g), 1});
  } else {
    const __m512i transpose = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    // Dword d of lane q holds row d's four bytes of lanes 4q..4q+3: gather row d of all four lanes.
    const __m512i rows = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const std::size_t s = l.inner, groups = l.reduce / 4;
    for (std::size_t o = 0; o < l.outer; ++o)
      for (std::size_t gi = 0; gi < groups; ++gi) {
        const std::size_t base = (o * l.reduce + 4 * gi) * s;
        const float* p = w + base;
        std::uint8_t* q = mask + base;
        std::size_t i = 0;
        for (; i + 16 <= s; i += 16) {
          const __m512i b0 = _mm512_and_si512(_mm512_loadu_si512(p + i), abs_mask);
          const __m512i b1 = _mm512_and_si512(_mm512_loadu_si512(p + s + i), abs_mask);
          const __m512i b2 = _mm512_and_si512(_mm512_loadu_si512(p + 2 * s + i), abs_mask);
          const __m512i b3 = _mm512_and_si512(_mm512_loadu_si512(p + 3 * s + i), abs_mask);
          max_bits = _mm512_max_epu32(max_bits, _mm512_max_epu32(_mm512_max_epu32(b0, b1), _mm512_max_epu32(b2, b3)));
          const __m512i code = select_2_4_avx512(_mm512_castsi512_ps(b0), _mm512_castsi512_ps(b1),
                                                 _mm512_castsi512_ps(b2), _mm512_castsi512_ps(b3));
          const __m512i bytes = _mm512_permutexvar_epi32(rows, _mm512_shuffle_epi8(code, transpose));
          alignas(64) std::uint8_t out[64];
          _mm512_store_si512(out, bytes);
          std::memcpy(q + i, out, 16);
          std::memcpy(q + s + i, out + 16, 16);
          std::memcpy(q + 2 * s + i, out + 32, 16);
          std::memcpy(q + 3 * s + i, out + 48, 16);
        }
        if (i < s) {
          // The last < 16 positions of this group row: the AVX2 path on a one-group layout slice
          // would restart the row, so finish them one by one.
          for (; i < s; ++i) {
            const float v0 = p[i], v1 = p[s + i], v2 = p[2 * s + i], v3 = p[3 * s + i];
            finite = finite && nm_is_finite(v0) && nm_is_finite(v1) && nm_is_finite(v2) && nm_is_finite(v3);
            const std::uint32_t keep = select_2_4(std::fabs(v0), std::fabs(v1), std::fabs(v2), std::fabs(v3));
            q[i] = keep & 1u;
            q[s + i] = (keep >> 8) & 1u;
            q[2 * s + i] = (keep >> 16) & 1u;
            q[3 * s + i] = keep >> 24;
          }
        }
      }
  }
  const __mmask16 bad = _mm512_cmpgt_epu32_mask(max_bits, _mm512_set1_epi32(0x7f7fffff));
  return finite && bad == 0;
}

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

}  // namespace quench::detail

#endif  // QUENCH_ENABLE_SIMD
