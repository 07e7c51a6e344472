#include <doctest/doctest.h>

#include <memory>
#include <thread>
#include <vector>

#include "quench/core/memory_pool.hpp"
#include "quench/core/tensor.hpp"

using quench::dtype;
using quench::memory_pool;
using quench::tensor;

TEST_CASE("memory_pool: size classes waste at most 1/8") {
  CHECK(memory_pool::size_class(1) == 64);
  CHECK(memory_pool::size_class(4096) == 4096);
  CHECK(memory_pool::size_class(4097) == 4608);
  CHECK(memory_pool::size_class(8192) == 8192);
  CHECK(memory_pool::size_class(100000) == 106496);  // 65536 + 5 * 8192
  for (std::size_t b = 1; b < 5'000'000; b = b * 3 / 2 + 7) {
    const std::size_t c = memory_pool::size_class(b);
    CHECK(c >= b);
    CHECK(c - b <= std::max<std::size_t>(64, b / 8));
    CHECK(memory_pool::size_class(c) == c);
  }
}

TEST_CASE("memory_pool: tensors created in a scope reuse released storage of their class") {
  auto pool = std::make_shared<memory_pool>();
  memory_pool::scope use(pool);
  const void* first = nullptr;
  {
    tensor a(dtype::float32, {1000});
    first = a.bytes();
    CHECK(pool->live_bytes() == 4032);  // rounded up to the 64-byte alignment
  }
  CHECK(pool->live_bytes() == 0);
  CHECK(pool->cached_bytes() == 4032);
  tensor b = tensor::uninitialized(dtype::float32, {1001});  // 4004 bytes: the same class
  CHECK(static_cast<const void*>(b.bytes()) == first);
  CHECK(pool->cached_bytes() == 0);
  // The zeroing constructor zeroes recycled storage too.
  b.view<float>()[3] = 5.0f;
  b = tensor();
  tensor c(dtype::float32, {1000});
  CHECK(c.view<float>()[3] == 0.0f);
}

TEST_CASE("memory_pool: a request never takes a buffer of another class") {
  auto pool = std::make_shared<memory_pool>();
  memory_pool::scope use(pool);
  { tensor a(dtype::uint8, {6400}); }
  tensor b(dtype::uint8, {5000});  // class 5120
  CHECK(pool->cached_bytes() == 6656);
  CHECK(pool->live_bytes() == 5120);
}

TEST_CASE("memory_pool: end_epoch keeps per class as many buffers as were live at once") {
  auto pool = std::make_shared<memory_pool>();
  memory_pool::scope use(pool);
  auto run = [] {
    std::vector<tensor> live;
    live.emplace_back(dtype::uint8, quench::shape{8192});
    live.emplace_back(dtype::uint8, quench::shape{8192});  // two of class 8192 at once
    live.clear();
    tensor t(dtype::uint8, {4096});
  };
  run();
  CHECK(pool->cached_bytes() == 2 * 8192 + 4096);
  pool->end_epoch();
  CHECK(pool->cached_bytes() == 2 * 8192 + 4096);  // all needed
  const std::size_t peak = pool->peak_live_bytes();
  run();  // served from the cache
  CHECK(pool->peak_live_bytes() == peak);
  pool->end_epoch();
  { tensor other(dtype::uint8, {100}); }
  pool->end_epoch();  // an epoch that needed only class 128: the rest is freed
  CHECK(pool->cached_bytes() == 128);
  pool->release_cached();
  CHECK(pool->cached_bytes() == 0);
}

TEST_CASE("memory_pool: storage outlives the pool's owner and may be released on another thread") {
  std::weak_ptr<memory_pool> watch;
  tensor kept;
  {
    auto pool = std::make_shared<memory_pool>();
    watch = pool;
    memory_pool::scope use(pool);
    kept = tensor(dtype::float32, {256});
  }
  CHECK_FALSE(watch.expired());  // the tensor keeps its pool alive
  std::thread([t = std::move(kept)]() mutable { t = tensor(); }).join();
  CHECK(watch.expired());
}

TEST_CASE("memory_pool: scopes nest and restore the previous pool; no scope means the C heap") {
  CHECK(memory_pool::current().get() == nullptr);
  auto outer = std::make_shared<memory_pool>(), inner = std::make_shared<memory_pool>();
  {
    memory_pool::scope a(outer);
    {
      memory_pool::scope b(inner);
      tensor t(dtype::float32, {16});
      CHECK(inner->live_bytes() == 64);
      CHECK(outer->live_bytes() == 0);
    }
    CHECK(memory_pool::current().get() == outer.get());
  }
  CHECK(memory_pool::current().get() == nullptr);
  tensor heap(dtype::float32, {16});
  CHECK(outer->live_bytes() == 0);
}
