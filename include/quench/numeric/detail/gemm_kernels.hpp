#pragma once
// Micro-kernels of the float GEMM (quench/numeric/gemm.hpp): each computes one MR x NR block of C
// from a packed A panel (MR values per k step) and a packed B panel (NR values per k step), the
// accumulators held in registers for the whole k range.
//
//   target   MR x NR   accumulators                     why this shape
//   avx512   12 x 32   24 zmm (+2 B loads, 1 broadcast)  the 32 zmm registers nearly full
//             8 x 32   16 zmm                            row counts that 12 divides badly
//   avx2      6 x 16   12 ymm (+2 B loads, 1 broadcast)  the 16 ymm registers nearly full
//   scalar    4 x 16   plain C++ the compiler vectorizes the portable reference of the blocking
//
// Every k step is one fused multiply-add per accumulator lane (scalar: a multiply and an add), in
// increasing k order, so a block's result depends on its k range only, never on where the block
// sits in C or which thread computes it.
//
// The store adds alpha * acc to C (`add`) or writes it; a block at the edge of C stores only its
// `rows` x `cols` corner (masked stores, no out-of-range access).

#include "quench/core/config.hpp"

#include <cstdint>

#if QUENCH_ENABLE_SIMD
#  include <immintrin.h>
#endif

namespace quench::detail {

/// Register blocking of each target (the packing layout depends on it).
struct gemm_blocking {
  int mr, nr;
};
inline constexpr gemm_blocking gemm_blocking_scalar{4, 16};
inline constexpr gemm_blocking gemm_blocking_avx2{6, 16};
inline constexpr gemm_blocking gemm_blocking_avx512{12, 32};
inline constexpr gemm_blocking gemm_blocking_avx512_8{8, 32};

inline void gemm_micro_scalar(std::int64_t kc, const float* QUENCH_RESTRICT a, const float* QUENCH_RESTRICT b, float* c,
                              std::int64_t ldc, int rows, int cols, float alpha, bool add) noexcept {
  constexpr int mr = gemm_blocking_scalar.mr, nr = gemm_blocking_scalar.nr;
  float acc[mr][nr] = {};
  for (std::int64_t k = 0; k < kc; ++k, a += mr, b += nr)
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) c[i * ldc + j] = add ? c[i * ldc + j] + alpha * acc[i][j] : alpha * acc[i][j];
}

#if QUENCH_ENABLE_SIMD

#  define QUENCH_DETAIL_AVX2_GEMM QUENCH_TARGET("avx2,fma")
#  define QUENCH_DETAIL_AVX512_GEMM QUENCH_TARGET("avx512f,avx2,fma")

QUENCH_DETAIL_AVX2_GEMM inline void gemm_micro_avx2(std::int64_t kc, const float* QUENCH_RESTRICT a, const float* QUENCH_RESTRICT b,
                                                    float* c, std::int64_t ldc, int rows, int cols, float alpha, bool add) noexcept {
  constexpr int mr = gemm_blocking_avx2.mr;
  __m256 acc[mr][2];
#  pragma GCC unroll 6
  for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (std::int64_t k = 0; k < kc; ++k, a += mr, b += 16) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#  pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (cols == 16) {
#  pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) {
      if (i >= rows) break;
      float* ci = c + i * ldc;
      __m256 lo = _mm256_mul_ps(va, acc[i][0]), hi = _mm256_mul_ps(va, acc[i][1]);
      if (add) {
        lo = _mm256_add_ps(_mm256_loadu_ps(ci), lo);
        hi = _mm256_add_ps(_mm256_loadu_ps(ci + 8), hi);
      }
      _mm256_storeu_ps(ci, lo);
      _mm256_storeu_ps(ci + 8, hi);
    }
    return;
  }
  // Edge block: through memory, then the valid corner.
  alignas(32) float tile[mr][16];
#  pragma GCC unroll 6
  for (int i = 0; i < mr; ++i) {
    _mm256_store_ps(tile[i], _mm256_mul_ps(va, acc[i][0]));
    _mm256_store_ps(tile[i] + 8, _mm256_mul_ps(va, acc[i][1]));
  }
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) c[i * ldc + j] = add ? c[i * ldc + j] + tile[i][j] : tile[i][j];
}

template <int MR>
QUENCH_DETAIL_AVX512_GEMM inline void gemm_micro_avx512_rows(std::int64_t kc, const float* QUENCH_RESTRICT a, const float* QUENCH_RESTRICT b,
                                                             float* c, std::int64_t ldc, int rows, int cols, float alpha, bool add) noexcept {
  constexpr int mr = MR;
  __m512 acc[mr][2];
#  pragma GCC unroll 12
  for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < kc; ++k, a += mr, b += 32) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#  pragma GCC unroll 12
    for (int i = 0; i < mr; ++i) {
      const __m512 x = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  // Lanes of the two halves that lie inside C.
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(cols >= 32 ? 0xffff : cols <= 16 ? 0 : (1u << (cols - 16)) - 1);
#  pragma GCC unroll 12
  for (int i = 0; i < mr; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
    __m512 lo = _mm512_mul_ps(va, acc[i][0]), hi = _mm512_mul_ps(va, acc[i][1]);
    if (add) {
      lo = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), lo);
      hi = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), hi);
    }
    _mm512_mask_storeu_ps(ci, m0, lo);
    _mm512_mask_storeu_ps(ci + 16, m1, hi);
  }
}

QUENCH_DETAIL_AVX512_GEMM inline void gemm_micro_avx512(std::int64_t kc, const float* QUENCH_RESTRICT a, const float* QUENCH_RESTRICT b,
                                                        float* c, std::int64_t ldc, int rows, int cols, float alpha, bool add) noexcept {
  gemm_micro_avx512_rows<gemm_blocking_avx512.mr>(kc, a, b, c, ldc, rows, cols, alpha, add);
}

/// 8 x 32: for products whose row count is a multiple of 8 but not of 12 (convs with 16, 32 or
/// 64 output channels), where 12-row panels would compute up to a third padding.
QUENCH_DETAIL_AVX512_GEMM inline void gemm_micro_avx512_8(std::int64_t kc, const float* QUENCH_RESTRICT a, const float* QUENCH_RESTRICT b,
                                                          float* c, std::int64_t ldc, int rows, int cols, float alpha, bool add) noexcept {
  gemm_micro_avx512_rows<gemm_blocking_avx512_8.mr>(kc, a, b, c, ldc, rows, cols, alpha, add);
}

#  undef QUENCH_DETAIL_AVX2_GEMM
#  undef QUENCH_DETAIL_AVX512_GEMM

#endif  // QUENCH_ENABLE_SIMD

}  // namespace quench::detail
