#pragma once
// The inner loop of the channel-swap search: for a threshold row t (length `rows`, a multiple of
// 16) and every candidate column x, s[x] = sum_r max(0, a[x][r] - t[r]).
//
// All targets sum in the same order -- sixteen partial sums (lane = r % 16), then a fixed tree --
// so the search takes the same decisions, and finds the same permutation, on every CPU.

#include <cstddef>

#include "quench/core/config.hpp"

#if QUENCH_ENABLE_SIMD
#  include <immintrin.h>
#endif

namespace quench::detail {

inline float perm_reduce16(const float* p) noexcept {
  float q[8];
  for (int i = 0; i < 8; ++i) q[i] = p[i] + p[i + 8];
  for (int i = 0; i < 4; ++i) q[i] = q[i] + q[i + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

inline void perm_excess_ref(const float* a, std::size_t columns, std::size_t rows, const float* t, float* s) noexcept {
  for (std::size_t x = 0; x < columns; ++x) {
    const float* col = a + x * rows;
    float acc[16] = {};
    for (std::size_t r = 0; r < rows; r += 16)
      for (int l = 0; l < 16; ++l) {
        const float d = col[r + l] - t[r + l];
        acc[l] += d > 0.f ? d : 0.f;
      }
    s[x] = perm_reduce16(acc);
  }
}

#if QUENCH_ENABLE_SIMD

QUENCH_TARGET("avx2,fma")
inline void perm_excess_avx2(const float* a, std::size_t columns, std::size_t rows, const float* t, float* s) noexcept {
  const __m256 zero = _mm256_setzero_ps();
  for (std::size_t x = 0; x < columns; ++x) {
    const float* col = a + x * rows;
    __m256 lo = zero, hi = zero;
    for (std::size_t r = 0; r < rows; r += 16) {
      lo = _mm256_add_ps(lo, _mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(col + r), _mm256_loadu_ps(t + r)), zero));
      hi = _mm256_add_ps(hi, _mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(col + r + 8), _mm256_loadu_ps(t + r + 8)), zero));
    }
    alignas(32) float acc[16];
    _mm256_store_ps(acc, lo);
    _mm256_store_ps(acc + 8, hi);
    s[x] = perm_reduce16(acc);
  }
}

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized once inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wuninitialized"
#  pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
QUENCH_TARGET("avx512f,avx512dq,avx2,fma")
inline void perm_excess_avx512(const float* a, std::size_t columns, std::size_t rows, const float* t, float* s) noexcept {
  const __m512 zero = _mm512_setzero_ps();
  for (std::size_t x = 0; x < columns; ++x) {
    const float* col = a + x * rows;
    __m512 acc = zero;
    for (std::size_t r = 0; r < rows; r += 16)
      acc = _mm512_add_ps(acc, _mm512_max_ps(_mm512_sub_ps(_mm512_loadu_ps(col + r), _mm512_loadu_ps(t + r)), zero));
    alignas(64) float out[16];
    _mm512_store_ps(out, acc);
    s[x] = perm_reduce16(out);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

#endif  // QUENCH_ENABLE_SIMD

}  // namespace quench::detail
