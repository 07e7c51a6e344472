#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "quench/numeric/gemm.hpp"

using quench::simd_target;

namespace {

struct problem {
  std::int64_t m, n, k;
  bool ta, tb;
};

/// Row-major storage of op(X) (rows x cols) as the GEMM reads it, with a padded leading
/// dimension so that strides are exercised.
struct stored {
  std::vector<float> data;
  std::int64_t ld;
  bool trans;
  float at(std::int64_t i, std::int64_t j) const { return trans ? data[j * ld + i] : data[i * ld + j]; }
};

stored random_matrix(std::int64_t rows, std::int64_t cols, bool trans, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::int64_t outer = trans ? cols : rows, inner = trans ? rows : cols;
  stored s{std::vector<float>(static_cast<std::size_t>(outer * (inner + 3))), inner + 3, trans};
  for (auto& v : s.data) v = u(rng);
  return s;
}

/// Checks every target on one problem against a double-precision product: each element within
/// k float roundings of the sum of |a||b| (the classical bound for a dot product).
void check_problem(const problem& p, float alpha, bool accumulate, std::mt19937& rng) {
  const stored a = random_matrix(p.m, p.k, p.ta, rng), b = random_matrix(p.k, p.n, p.tb, rng);
  const std::int64_t ldc = p.n + 5;
  std::vector<float> c0(static_cast<std::size_t>(p.m * ldc));
  for (auto& v : c0) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
  for (simd_target t : quench::supported_simd_targets()) {
    CAPTURE(quench::simd_target_name(t));
    CAPTURE(p.m);
    CAPTURE(p.n);
    CAPTURE(p.k);
    CAPTURE(p.ta);
    CAPTURE(p.tb);
    CAPTURE(accumulate);
    std::vector<float> c = c0;
    quench::gemm(p.m, p.n, p.k, alpha, {a.data.data(), a.ld, a.trans}, {b.data.data(), b.ld, b.trans}, c.data(), ldc, accumulate, t);
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < p.m; ++i) {
      for (std::int64_t j = 0; j < ldc; ++j) {
        const float got = c[i * ldc + j];
        if (j >= p.n) {  // outside the n columns: untouched
          bad += got != c0[i * ldc + j];
          continue;
        }
        double exact = 0, mag = 0;
        for (std::int64_t q = 0; q < p.k; ++q) {
          exact += double(a.at(i, q)) * b.at(q, j);
          mag += std::fabs(double(a.at(i, q)) * b.at(q, j));
        }
        exact = alpha * exact + (accumulate ? c0[i * ldc + j] : 0.0);
        const double bound = (p.k + 2) * 1.2e-7 * (std::fabs(alpha) * mag + std::fabs(c0[i * ldc + j])) + 1e-30;
        bad += std::fabs(got - exact) > bound;
      }
    }
    CHECK(bad == 0);
  }
}

}  // namespace

TEST_CASE("gemm: every target agrees with a double product on edge shapes and layouts") {
  std::mt19937 rng(7);
  // Sizes around every target's register blocks (4/6/12 x 16/32) and the KC = 256 k block.
  const std::int64_t ms[] = {1, 5, 6, 7, 12, 13, 25, 200};
  const std::int64_t ns[] = {1, 15, 16, 17, 31, 33, 70};
  const std::int64_t ks[] = {1, 3, 255, 256, 257, 600};
  for (std::int64_t m : ms)
    for (std::int64_t n : ns)
      for (std::int64_t k : ks) {
        if (m * n * k > 4'000'000) continue;
        const bool ta = (m + k) % 2 == 0, tb = (n + k) % 3 == 0;
        check_problem({m, n, k, ta, tb}, 1.0f, false, rng);
      }
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_problem({37, 45, 29, ta, tb}, 1.0f, false, rng);
      check_problem({37, 45, 29, ta, tb}, -0.5f, true, rng);
    }
}

TEST_CASE("gemm: products wider than the NC block and taller than the MC block") {
  std::mt19937 rng(11);
  check_problem({200, 2100, 40, false, false}, 1.0f, true, rng);
  check_problem({400, 50, 300, true, false}, 2.0f, false, rng);
}

TEST_CASE("gemm: k == 0 gives zero, or leaves C with accumulate; empty m or n touches nothing") {
  for (simd_target t : quench::supported_simd_targets()) {
    std::vector<float> c(6, 3.0f);
    const float a = 1.0f;
    quench::gemm(2, 3, 0, 1.0f, {&a, 0}, {&a, 3}, c.data(), 3, true, t);
    CHECK(c == std::vector<float>(6, 3.0f));
    quench::gemm(2, 3, 0, 1.0f, {&a, 0}, {&a, 3}, c.data(), 3, false, t);
    CHECK(c == std::vector<float>(6, 0.0f));
    quench::gemm(0, 3, 4, 1.0f, {nullptr, 4}, {nullptr, 3}, nullptr, 3, false, t);
    quench::gemm(2, 0, 4, 1.0f, {nullptr, 4}, {nullptr, 3}, nullptr, 3, false, t);
  }
}

TEST_CASE("gemm: an element of C does not depend on the tiling of C (thread splits are bit-identical)") {
  std::mt19937 rng(3);
  const std::int64_t m = 36, n = 90, k = 700;  // whole: 12-row panels; 7-row tiles: 8-row panels
  const stored a = random_matrix(m, k, false, rng), b = random_matrix(k, n, false, rng);
  for (simd_target t : quench::supported_simd_targets()) {
    CAPTURE(quench::simd_target_name(t));
    std::vector<float> whole(static_cast<std::size_t>(m * n)), tiled(whole.size());
    quench::gemm(m, n, k, 1.0f, {a.data.data(), a.ld}, {b.data.data(), b.ld}, whole.data(), n, false, t);
    // Odd tiles: 7 rows x 19 columns at a time.
    for (std::int64_t i = 0; i < m; i += 7)
      for (std::int64_t j = 0; j < n; j += 19)
        quench::gemm(std::min<std::int64_t>(7, m - i), std::min<std::int64_t>(19, n - j), k, 1.0f, {a.data.data() + i * a.ld, a.ld},
                     {b.data.data() + j, b.ld}, tiled.data() + i * n + j, n, false, t);
    CHECK(whole == tiled);
  }
}

TEST_CASE("gemm_packed: a caller's B packer gives the bits of gemm on the stored B") {
  std::mt19937 rng(5);
  const std::int64_t m = 30, n = 77, k = 300;
  const stored a = random_matrix(m, k, false, rng), b = random_matrix(k, n, true, rng);
  for (simd_target t : quench::supported_simd_targets()) {
    CAPTURE(quench::simd_target_name(t));
    std::vector<float> direct(static_cast<std::size_t>(m * n)), packed(direct.size());
    quench::gemm(m, n, k, 0.5f, {a.data.data(), a.ld}, {b.data.data(), b.ld, true}, direct.data(), n, false, t);
    std::int64_t calls = 0;
    // B(p, j) computed on the fly, written in the documented panel layout.
    const auto pack = [&](std::int64_t j0, std::int64_t cols, std::int64_t p0, std::int64_t kc, int nr, float* out) {
      ++calls;
      for (std::int64_t jp = 0; jp < cols; jp += nr, out += kc * nr)
        for (std::int64_t p = 0; p < kc; ++p)
          for (int j = 0; j < nr; ++j) out[p * nr + j] = jp + j < cols ? b.at(p0 + p, j0 + jp + j) : 0.0f;
    };
    quench::gemm_packed(m, n, k, 0.5f, {a.data.data(), a.ld}, pack, packed.data(), n, false, t);
    CHECK(calls == 2);  // k = 300: two KC blocks of one NC block
    CHECK(direct == packed);
  }
}
