#pragma once
// Single-precision matrix product C = alpha * op(A) * op(B) (+ C), dispatched at run time to the
// best SIMD target of the CPU (quench/numeric/cpu.hpp).
//
// Why quench has its own: Eigen picks its vector width when it is compiled, so a header-only
// library built without -mavx2 (the portable default, and what distributions ship) runs Eigen's
// GEMM on SSE2 without FMA, a quarter of what the CPU can do. This GEMM compiles AVX2+FMA and
// AVX-512 micro-kernels into every program behind function target attributes, like the
// converters, and picks one when called.
//
// Algorithm: the Goto/BLIS blocking. B is packed in KC x NC blocks of NR-wide column panels, A
// in MC x KC blocks of MR-high row panels, and the micro-kernel (detail/gemm_kernels.hpp) keeps an
// MR x NR block of C in registers over KC steps. Products longer than KC add their KC blocks into
// C in increasing k order.
//
// Determinism: an element of C depends on the target, k and alpha only — not on m, n, its
// position, alignment or the calling thread — so splitting C into tiles between threads gives
// the same bits as one call. Different targets round differently (FMA vs multiply + add) and
// agree to float accuracy; tests/numeric/gemm_test.cpp checks each against a double reference.
//
// Thread safety: reentrant; the packing buffers are per thread.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "quench/core/config.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/detail/gemm_kernels.hpp"

namespace quench {

/// A float matrix in row-major memory: element (i, j) of op(X) is data[i * ld + j], or
/// data[j * ld + i] when `transposed` (X is stored as its transpose).
struct gemm_matrix {
  const float* data;
  std::int64_t ld;
  bool transposed = false;
};

namespace detail {

/// Cache blocking (in elements): a KC x NR panel of B (32 KiB at NR = 32) stays in L1 while the
/// MC x KC block of A (192 KiB) streams from L2; the KC x NC block of B sits in L3.
inline constexpr std::int64_t gemm_kc = 256;
inline constexpr std::int64_t gemm_mc_panels = 16;  // MC = 16 * MR
inline constexpr std::int64_t gemm_nc = 2048;

/// 64-byte aligned float buffer reused across calls by one thread.
class gemm_buffer {
 public:
  float* get(std::size_t n) {
    if (n > size_) {
      data_.reset(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64})));
      size_ = n;
    }
    return data_.get();
  }

 private:
  struct deleter {
    void operator()(float* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float[], deleter> data_;
  std::size_t size_ = 0;
};

/// The packing buffers of the calling thread (one pair, whatever B packer a product uses).
struct gemm_buffers {
  gemm_buffer a, b;
};
inline gemm_buffers& gemm_thread_buffers() {
  thread_local gemm_buffers buffers;
  return buffers;
}

/// Rows [i0, i0 + rows) x k range [p0, p0 + kc) of op(A) as MR-high panels, each kc x MR
/// (MR values per k step), zero rows past the end.
inline void gemm_pack_a(gemm_matrix a, std::int64_t i0, std::int64_t rows, std::int64_t p0, std::int64_t kc, int mr, float* out) {
  for (std::int64_t ip = 0; ip < rows; ip += mr) {
    const int h = static_cast<int>(std::min<std::int64_t>(mr, rows - ip));
    if (a.transposed) {
      // A^T stored: the MR values of one k step are contiguous.
      for (std::int64_t p = 0; p < kc; ++p) {
        const float* src = a.data + (p0 + p) * a.ld + i0 + ip;
        float* dst = out + p * mr;
        std::memcpy(dst, src, static_cast<std::size_t>(h) * sizeof(float));
        for (int i = h; i < mr; ++i) dst[i] = 0.0f;
      }
    } else {
      for (int i = 0; i < mr; ++i) {
        if (i < h) {
          const float* src = a.data + (i0 + ip + i) * a.ld + p0;
          for (std::int64_t p = 0; p < kc; ++p) out[p * mr + i] = src[p];
        } else {
          for (std::int64_t p = 0; p < kc; ++p) out[p * mr + i] = 0.0f;
        }
      }
    }
    out += kc * mr;
  }
}

/// Columns [j0, j0 + cols) x k range [p0, p0 + kc) of op(B) as NR-wide panels, each kc x NR
/// (NR values per k step), zero columns past the end.
inline void gemm_pack_b(gemm_matrix b, std::int64_t j0, std::int64_t cols, std::int64_t p0, std::int64_t kc, int nr, float* out) {
  for (std::int64_t jp = 0; jp < cols; jp += nr) {
    const int w = static_cast<int>(std::min<std::int64_t>(nr, cols - jp));
    if (!b.transposed) {
      for (std::int64_t p = 0; p < kc; ++p) {
        const float* src = b.data + (p0 + p) * b.ld + j0 + jp;
        float* dst = out + p * nr;
        std::memcpy(dst, src, static_cast<std::size_t>(w) * sizeof(float));
        for (int j = w; j < nr; ++j) dst[j] = 0.0f;
      }
    } else {
      for (int j = 0; j < nr; ++j) {
        if (j < w) {
          const float* src = b.data + (j0 + jp + j) * b.ld + p0;
          for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = src[p];
        } else {
          for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = 0.0f;
        }
      }
    }
    out += kc * nr;
  }
}

using gemm_micro_fn = void (*)(std::int64_t, const float*, const float*, float*, std::int64_t, int, int, float, bool) noexcept;

/// The blocked product with B supplied by `pack_b(j0, cols, p0, kc, nr, out)`, which writes
/// columns [j0, j0 + cols) x k range [p0, p0 + kc) of B as gemm_pack_b lays them out.
template <class PackB>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, gemm_matrix a, const PackB& pack_b, float* c,
                  std::int64_t ldc, bool accumulate, gemm_blocking blk, gemm_micro_fn micro) {
  const int mr = blk.mr, nr = blk.nr;
  const std::int64_t mc = gemm_mc_panels * mr;
  float* pa = gemm_thread_buffers().a.get(static_cast<std::size_t>(mc * gemm_kc));
  float* pb = gemm_thread_buffers().b.get(static_cast<std::size_t>(gemm_kc * gemm_nc));
  for (std::int64_t jc = 0; jc < n; jc += gemm_nc) {
    const std::int64_t nc = std::min(gemm_nc, n - jc);
    for (std::int64_t pc = 0; pc < k; pc += gemm_kc) {
      const std::int64_t kc = std::min(gemm_kc, k - pc);
      const bool add = accumulate || pc > 0;
      pack_b(jc, nc, pc, kc, nr, pb);
      for (std::int64_t ic = 0; ic < m; ic += mc) {
        const std::int64_t mcur = std::min(mc, m - ic);
        gemm_pack_a(a, ic, mcur, pc, kc, mr, pa);
        for (std::int64_t jr = 0; jr < nc; jr += nr) {
          const int cols = static_cast<int>(std::min<std::int64_t>(nr, nc - jr));
          for (std::int64_t ir = 0; ir < mcur; ir += mr) {
            const int rows = static_cast<int>(std::min<std::int64_t>(mr, mcur - ir));
            micro(kc, pa + ir * kc, pb + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, rows, cols, alpha, add);
          }
        }
      }
    }
  }
}

}  // namespace detail

/// c[m x n] (row stride ldc) = alpha * op(a)[m x k] * pack_b's B[k x n], or c += that with
/// `accumulate`, where B is never stored: `pack_b(j0, cols, p0, kc, nr, out)` writes columns
/// [j0, j0 + cols) x rows [p0, p0 + kc) of B into `out` as kc x nr panels (row p of a panel at
/// out + p * nr, zero past column `cols`, one panel after another). A convolution packs its
/// unrolled input this way without materialising the im2col matrix. Results are the bits of
/// gemm() on the stored B.
template <class PackB>
void gemm_packed(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, gemm_matrix a, const PackB& pack_b, float* c,
                 std::int64_t ldc, bool accumulate, simd_target target = best_simd_target()) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512:
      // 8-row panels when they pad fewer rows than 12-row ones (m = 16, 32, 64, ...).
      if ((m + 7) / 8 * 8 < (m + 11) / 12 * 12)
        detail::gemm_blocked(m, n, k, alpha, a, pack_b, c, ldc, accumulate, detail::gemm_blocking_avx512_8, detail::gemm_micro_avx512_8);
      else
        detail::gemm_blocked(m, n, k, alpha, a, pack_b, c, ldc, accumulate, detail::gemm_blocking_avx512, detail::gemm_micro_avx512);
      return;
    case simd_target::avx2:
      detail::gemm_blocked(m, n, k, alpha, a, pack_b, c, ldc, accumulate, detail::gemm_blocking_avx2, detail::gemm_micro_avx2);
      return;
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  detail::gemm_blocked(m, n, k, alpha, a, pack_b, c, ldc, accumulate, detail::gemm_blocking_scalar, detail::gemm_micro_scalar);
}

/// c[m x n] (row stride ldc) = alpha * op(a)[m x k] * op(b)[k x n], or c += that with
/// `accumulate`. `target` forces an instruction set (tests, benchmarks); a target the CPU lacks
/// falls back to the best one it has. With k == 0 the product is zero.
///
///     // y[M x P] = W[M x K] * cols[K x P]
///     quench::gemm(M, P, K, 1.0f, {w, K}, {cols, P}, y, P, false);
inline void gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, gemm_matrix a, gemm_matrix b, float* c,
                 std::int64_t ldc, bool accumulate, simd_target target = best_simd_target()) {
  const auto pack_b = [b](std::int64_t j0, std::int64_t cols, std::int64_t p0, std::int64_t kc, int nr, float* out) {
    detail::gemm_pack_b(b, j0, cols, p0, kc, nr, out);
  };
  gemm_packed(m, n, k, alpha, a, pack_b, c, ldc, accumulate, target);
}

}  // namespace quench
