#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quench/sparsity/detail/asp_pattern_order.hpp"
#include "quench/sparsity/eligibility.hpp"
#include "quench/sparsity/nm_mask.hpp"
#include "sparsity/sparsity_test_util.hpp"

using quench::dtype;
using quench::shape;
using quench::simd_target;
using quench::tensor;
namespace sp = quench::sparsity;

namespace {

std::string pattern_text(std::uint32_t bits, int m) {
  std::string s;
  for (int j = 0; j < m; ++j) s += ((bits >> j) & 1u) ? '1' : '0';
  return s;
}

tensor random_weights(shape s, std::uint32_t seed, int levels = 0) {
  tensor t(dtype::float32, std::move(s), "w");
  std::mt19937 rng(seed);
  std::normal_distribution<float> n;
  std::uniform_int_distribution<int> k(-levels, levels);
  for (auto& v : t.view<float>()) v = levels ? static_cast<float>(k(rng)) * 0.5f : n(rng);
  return t;
}

/// Every element of one group: exactly N kept.
bool is_n_of_m(const tensor& mask, std::size_t axis, sp::nm_pattern p) {
  const auto l = sp::nm_layout_of(mask.shape(), axis);
  const auto* m = reinterpret_cast<const std::uint8_t*>(mask.bytes());
  for (std::size_t o = 0; o < l.outer; ++o)
    for (std::size_t g = 0; g < l.reduce / static_cast<std::size_t>(p.m); ++g)
      for (std::size_t i = 0; i < l.inner; ++i) {
        int kept = 0;
        for (int j = 0; j < p.m; ++j) kept += m[((o * l.reduce) + g * p.m + j) * l.inner + i];
        if (kept != p.n) return false;
      }
  return true;
}

}  // namespace

TEST_CASE("asp pattern order: the CPython set order ASP iterates, for every M <= 8") {
  int lines = 0;
  for (const auto& row : sparsity_test::read_table("pattern_order.txt")) {
    const int m = std::stoi(row[0]), n = std::stoi(row[1]);
    CAPTURE(m);
    CAPTURE(n);
    const auto rank = quench::detail::asp_pattern_ranks(n, m);
    std::vector<std::string> ours(row.size() - 2);
    for (std::uint32_t p = 0; p < rank.size(); ++p)
      if (rank[p] != 0xffff) {
        REQUIRE(rank[p] < ours.size());
        ours[rank[p]] = pattern_text(p, m);
      }
    CHECK(std::vector<std::string>(row.begin() + 2, row.end()) == ours);
    ++lines;
  }
  CHECK(lines == 28);
  // The 2:4 fast path's table is the same order.
  const auto rank = quench::detail::asp_pattern_ranks(2, 4);
  for (int k = 0; k < 6; ++k) {
    const std::uint32_t bytes = quench::detail::pattern_bytes_2_4[k];
    std::uint32_t bits = 0;
    for (int j = 0; j < 4; ++j)
      if ((bytes >> (8 * j)) & 1u) bits |= 1u << j;
    CHECK(rank[bits] == k);
  }
}

TEST_CASE("nm_mask equals ASP's algorithm on the reference data, on every SIMD target") {
  int cases = 0, elements = 0;
  for (const auto& row : sparsity_test::read_table("cases.txt")) {
    const std::string name = row[0];
    CAPTURE(name);
    const auto axis = static_cast<std::size_t>(std::stoi(row[1]));
    const sp::nm_pattern p{std::stoi(row[2]), std::stoi(row[3])};
    const std::string type = row[4];
    tensor w = sparsity_test::read(row[5]);
    if (type == "bfloat16") w = sparsity_test::as_bfloat16(w, name);
    w.set_name(name);
    const tensor want = sparsity_test::read(row[6]);
    REQUIRE(want.shape() == w.shape());
    for (simd_target t : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(t));
      const tensor got = sp::nm_mask(w, axis, p, t);
      const auto g = got.view<std::uint8_t>();
      const auto e = want.view<std::uint8_t>();
      std::size_t wrong = 0, first = 0;
      for (std::size_t i = 0; i < g.size(); ++i)
        if (g[i] != e[i] && wrong++ == 0) first = i;
      INFO("first difference at flat index " << first);
      CHECK(wrong == 0);
    }
    CHECK(is_n_of_m(want, axis, p));
    elements += static_cast<int>(w.size());
    ++cases;
  }
  MESSAGE(cases << " reference cases, " << elements << " weights: masks equal ASP's");
  CHECK(cases == 46);
}

TEST_CASE("nm_mask: ties keep ASP's positions") {
  auto mask_of = [](std::vector<float> v, sp::nm_pattern p = {}) {
    tensor w(dtype::float32, {static_cast<std::int64_t>(v.size())}, "w");
    std::copy(v.begin(), v.end(), w.view<float>().begin());
    const tensor m = sp::nm_mask(w, 0, p);
    std::string s;
    for (auto b : m.view<std::uint8_t>()) s += b ? '1' : '0';
    return s;
  };
  CHECK(mask_of({1, 1, 1, 1}) == "0101");            // first pattern in ASP's order
  CHECK(mask_of({0, 0, 0, 0}) == "0101");
  CHECK(mask_of({3, 1, 1, 0}) == "1100");            // {0,1} comes before {0,2}
  CHECK(mask_of({0, 2, 2, 2}) == "0101");            // {1,3} first
  CHECK(mask_of({-3, 0.5f, -4, 0.1f}) == "1010");    // magnitudes, not values
  CHECK(mask_of({1.f, 1e-8f, 2e-8f, 0.f}) == "1100");  // 1 + 1e-8 == 1 + 2e-8 in float32
  CHECK(mask_of({1, 1}, {1, 2}) == "10");
  CHECK(mask_of({1, 1, 1, 1, 1, 1, 1, 1}, {4, 8}) == "00101110");
}

TEST_CASE("nm_mask: every SIMD target equals the scalar reference on random and tied weights") {
  const std::vector<std::pair<shape, std::size_t>> layouts = {
      {{64, 256}, 1},    {{33, 36}, 1},      {{3, 4}, 1},       {{64, 32, 3, 3}, 1}, {{16, 16, 4, 4}, 1},
      {{8, 16, 5, 7}, 1}, {{16, 8, 1, 1}, 1}, {{256, 40}, 0},   {{128, 17}, 0},      {{12, 8, 2, 2}, 1},
      {{4, 8, 31}, 1},    {{4, 8, 16}, 1},    {{1000, 4}, 1},   {{4, 100}, 0}};
  std::uint32_t seed = 1;
  for (const auto& [s, axis] : layouts)
    for (int levels : {0, 1, 3}) {
      CAPTURE(to_string(s));
      CAPTURE(levels);
      tensor w = random_weights(s, seed++, levels);
      const tensor want = sp::nm_mask(w, axis, {}, simd_target::scalar);
      CHECK(is_n_of_m(want, axis, {}));
      for (simd_target t : quench::supported_simd_targets()) {
        const tensor got = sp::nm_mask(w, axis, {}, t);
        CHECK_MESSAGE(std::memcmp(got.bytes(), want.bytes(), want.nbytes()) == 0, quench::simd_target_name(t));
      }
    }
}

TEST_CASE("nm_mask: the kept pair is the best pair") {
  // Brute force over all C(8, n) subsets on random groups: the kept subset has the largest sum.
  std::mt19937 rng(7);
  std::normal_distribution<float> d;
  for (sp::nm_pattern p : {sp::nm_pattern{2, 4}, {1, 4}, {3, 8}, {4, 8}, {5, 16}}) {
    tensor w(dtype::float32, {64, static_cast<std::int64_t>(p.m) * 4}, "w");
    for (auto& v : w.view<float>()) v = d(rng);
    const tensor mask = sp::nm_mask(w, 1, p);
    const auto x = w.view<float>();
    const auto mk = mask.view<std::uint8_t>();
    for (std::size_t g = 0; g < w.size() / p.m; ++g) {
      double kept = 0;
      std::vector<double> a;
      for (int j = 0; j < p.m; ++j) {
        a.push_back(std::fabs(x[g * p.m + j]));
        if (mk[g * p.m + j]) kept += a.back();
      }
      std::sort(a.rbegin(), a.rend());
      double best = 0;
      for (int j = 0; j < p.n; ++j) best += a[j];
      CHECK(kept == doctest::Approx(best).epsilon(1e-12));
    }
  }
}

TEST_CASE("nm_mask: refusals name the tensor") {
  tensor w = random_weights({8, 16}, 3);
  w.set_name("fc.weight");
  w.view<float>()[37] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(sp::nm_mask(w, 1), "[quench.not_finite] tensor 'fc.weight': element [2, 5] is NaN; N:M masks need finite weights",
                       quench::error);
  for (simd_target t : quench::supported_simd_targets()) {
    w.view<float>()[37] = 1.f;
    w.view<float>()[120] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(sp::nm_mask(w, 1, {}, t), doctest::Contains("element [7, 8] is Inf"), quench::error);
  }
  tensor odd = random_weights({8, 18}, 4);
  odd.set_name("conv3.weight");
  CHECK_THROWS_WITH_AS(sp::nm_mask(odd, 1),
                       "[quench.shape_mismatch] tensor 'conv3.weight': dimension 1 of shape [8, 18] has size 18, not a "
                       "multiple of 4 as the 2:4 pattern needs",
                       quench::error);
  CHECK_NOTHROW(sp::nm_mask(odd, 0, {4, 8}));  // 8 rows: groups of 8 along axis 0 fit
  CHECK_THROWS_AS(sp::nm_mask(odd, 2), quench::error);
  CHECK_THROWS_WITH_AS(sp::nm_mask(w, 1, {4, 4}), doctest::Contains("1 <= N < M <= 16"), quench::error);
  tensor ints(dtype::int32, {4, 4}, "idx");
  CHECK_THROWS_WITH_AS(sp::nm_mask(ints, 1), doctest::Contains("tensor 'idx': expected float, float16 or bfloat16"), quench::error);
  tensor m(dtype::uint8, {8, 4});
  CHECK_THROWS_AS(sp::nm_mask(w.view<float>(), 1, m.view<std::uint8_t>()), quench::error);
}

TEST_CASE("parse_nm_pattern") {
  CHECK(sp::parse_nm_pattern("2:4") == sp::nm_pattern{2, 4});
  CHECK(sp::parse_nm_pattern("4:8") == sp::nm_pattern{4, 8});
  CHECK(sp::to_string(sp::parse_nm_pattern("1:2")) == "1:2");
  for (const char* bad : {"", "2", "2:", ":4", "4:2", "2:2", "0:4", "2:17", "a:b", "2:4:8", "-1:4"})
    CHECK_THROWS_AS(sp::parse_nm_pattern(bad), quench::error);
  CHECK_THROWS_WITH(sp::parse_nm_pattern("2/4"), "[quench.invalid_argument] pattern: expected N:M such as 2:4, found '2/4'");
}

TEST_CASE("apply_mask and retained_magnitude") {
  tensor w = tensor::from<float>({2, 4}, {1, -2, 3, -4, 0.5f, 0.25f, -1, 2}, "w");
  const tensor mask = sp::nm_mask(w, 1);
  const auto r = sp::retained_magnitude(w, mask);
  CHECK(r.total == doctest::Approx(13.75));
  CHECK(r.kept == doctest::Approx(7 + 3));
  sp::apply_mask(w, mask);
  CHECK(std::vector<float>(w.view<float>().begin(), w.view<float>().end()) == std::vector<float>{0, 0, 3, -4, 0, 0, -1, 2});
  tensor h(dtype::float16, {2, 4}, "h");
  CHECK_NOTHROW(sp::apply_mask(h, mask));
  tensor wrong(dtype::float32, {4, 2});
  CHECK_THROWS_AS(sp::apply_mask(wrong, mask), quench::error);
}
