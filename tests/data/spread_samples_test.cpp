#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/data/spread_samples.hpp"

using quench::dtype;
using quench::tensor;
using V = std::vector<std::int64_t>;

TEST_CASE("spread indices take every size/n-th sample, starting with the first") {
  CHECK(quench::data::spread_indices(512, 8) == V{0, 64, 128, 192, 256, 320, 384, 448});
  CHECK(quench::data::spread_indices(10, 4) == V{0, 2, 5, 7});  // floor(k * 10 / 4)
  CHECK(quench::data::spread_indices(5, 8) == V{0, 1, 2, 3, 4});  // fewer samples than asked: all
  CHECK(quench::data::spread_indices(3, 3) == V{0, 1, 2});
  CHECK(quench::data::spread_indices(0, 3).empty());
  // No overflow where k * size would pass 2^63.
  const std::int64_t big = std::int64_t{1} << 62;
  const V far = quench::data::spread_indices(big, 4);
  CHECK(far == V{0, big / 4, big / 2, 3 * (big / 4)});
  CHECK_THROWS_AS(quench::data::spread_indices(-1, 2), quench::error);
}

TEST_CASE("spread batches read the chosen samples in order, in batches of the given size") {
  std::vector<std::pair<std::int64_t, std::int64_t>> reads;  // (first, count) of every inner read
  quench::data::callback_source src(100, [&](std::int64_t first, std::int64_t count) {
    reads.emplace_back(first, count);
    quench::data::batch b;
    tensor t(dtype::int64, {count});
    for (std::int64_t i = 0; i < count; ++i) t.view<std::int64_t>()[static_cast<std::size_t>(i)] = first + i;
    b.emplace_back("x", std::move(t));
    return b;
  });
  V seen;
  std::vector<std::int64_t> sizes;
  const std::int64_t n = quench::data::for_each_spread_batch(src, 5, 2, [&](quench::data::batch& b) {
    sizes.push_back(b[0].second.shape()[0]);
    for (std::int64_t v : b[0].second.view<std::int64_t>()) seen.push_back(v);
  });
  CHECK(n == 5);
  CHECK(seen == V{0, 20, 40, 60, 80});
  CHECK(sizes == V{2, 2, 1});
  // All samples of a small source: consecutive indices are read as one range per batch.
  reads.clear();
  quench::data::for_each_spread_batch(src, 1000, 50, [](quench::data::batch&) {});
  CHECK(reads == std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 50}, {50, 50}});
  CHECK_THROWS_AS(quench::data::for_each_spread_batch(src, 0, 2, [](quench::data::batch&) {}), quench::error);
  CHECK_THROWS_AS(quench::data::for_each_spread_batch(src, 2, 0, [](quench::data::batch&) {}), quench::error);
}

TEST_CASE("index view reads the given samples of a source in the given order") {
  quench::data::callback_source src(10, [&](std::int64_t first, std::int64_t count) {
    quench::data::batch b;
    tensor t(dtype::int64, {count});
    for (std::int64_t i = 0; i < count; ++i) t.view<std::int64_t>()[static_cast<std::size_t>(i)] = first + i;
    b.emplace_back("x", std::move(t));
    return b;
  });
  quench::data::index_view v(src, {7, 2, 3, 9});
  CHECK(v.size() == 4);
  CHECK(v.sample_name(0) == src.sample_name(7));
  const quench::data::batch b = v.read(1, 3);
  V got(b[0].second.view<std::int64_t>().begin(), b[0].second.view<std::int64_t>().end());
  CHECK(got == V{2, 3, 9});
  CHECK_THROWS_AS(v.read(3, 2), quench::error);
  CHECK_THROWS_WITH(quench::data::index_view(src, {0, 10}), doctest::Contains("index 10 outside a source of 10"));
}
