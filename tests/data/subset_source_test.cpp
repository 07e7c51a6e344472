#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "quench/data/subset_source.hpp"

using quench::dtype;
using quench::tensor;

namespace {
/// A source whose sample i is the int64 value i (and that counts its reads).
std::unique_ptr<quench::data::callback_source> ids(std::int64_t n, int* reads = nullptr) {
  return std::make_unique<quench::data::callback_source>(n, [reads](std::int64_t first, std::int64_t count) {
    if (reads) ++*reads;
    quench::data::batch b;
    tensor t(dtype::int64, {count, 2});
    for (std::int64_t i = 0; i < count; ++i) {
      t.view<std::int64_t>()[static_cast<std::size_t>(2 * i)] = first + i;
      t.view<std::int64_t>()[static_cast<std::size_t>(2 * i + 1)] = -(first + i);
    }
    b.emplace_back("ids", std::move(t));
    return b;
  });
}
std::vector<std::int64_t> values(quench::data::sample_source& s) {
  const auto b = s.read(0, s.size());
  std::vector<std::int64_t> v;
  for (std::int64_t i = 0; i < s.size(); ++i) v.push_back(b[0].second.view<std::int64_t>()[static_cast<std::size_t>(2 * i)]);
  return v;
}
}  // namespace

TEST_CASE("the generator is the standard's mt19937_64 and the permutation its documented Fisher-Yates") {
  // [rand.predef]: the 10000th draw of a default-seeded mt19937_64 is 9981545732273789042.
  std::mt19937_64 g(5489u);
  g.discard(9999);
  CHECK(g() == 9981545732273789042ull);
  // The permutation of 0..n-1 by hand, with the same rejection rule.
  const std::int64_t n = 10;
  std::vector<std::int64_t> want(n);
  for (std::int64_t i = 0; i < n; ++i) want[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(42);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const std::uint64_t range = static_cast<std::uint64_t>(i + 1);
    std::uint64_t r = rng();
    while (r >= UINT64_MAX - UINT64_MAX % range) r = rng();
    std::swap(want[static_cast<std::size_t>(i)], want[static_cast<std::size_t>(r % range)]);
  }
  CHECK(quench::data::detail::seeded_permutation(n, 42) == want);
}

TEST_CASE("subset_source: seeded shuffle and --samples are deterministic permutations of the source") {
  quench::data::subset_options o;
  o.shuffle = true;
  o.seed = 7;
  quench::data::subset_source a(ids(100), o), b(ids(100), o);
  const auto va = values(a);
  CHECK(va == values(b));
  auto sorted = va;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 100; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
  CHECK(va != sorted);
  o.seed = 8;
  quench::data::subset_source c(ids(100), o);
  CHECK(values(c) != va);
  // Both columns of a sample travel together.
  const auto batch = a.read(10, 5);
  for (std::size_t i = 0; i < 5; ++i)
    CHECK(batch[0].second.view<std::int64_t>()[2 * i + 1] == -batch[0].second.view<std::int64_t>()[2 * i]);

  // --samples N without --shuffle: the first N of the same permutation, in source order.
  quench::data::subset_options s;
  s.samples = 30;
  s.seed = 7;
  quench::data::subset_source sub(ids(100), s);
  CHECK(sub.size() == 30);
  std::vector<std::int64_t> first30(va.begin(), va.begin() + 30);
  std::sort(first30.begin(), first30.end());
  CHECK(values(sub) == first30);
  CHECK(sub.indices() == first30);
  // More samples than there are keeps them all; zero is refused.
  s.samples = 1000;
  CHECK(quench::data::subset_source(ids(100), s).size() == 100);
  s.samples = 0;
  CHECK_THROWS_WITH(quench::data::subset_source(ids(100), s), doctest::Contains("expected a positive count"));
}

TEST_CASE("subset_source reads runs of consecutive samples with one inner read each") {
  int reads = 0;
  quench::data::subset_source all(ids(50, &reads), {});
  CHECK(values(all).size() == 50);
  CHECK(reads == 1);
}
