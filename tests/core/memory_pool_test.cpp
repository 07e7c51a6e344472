#include <doctest/doctest.h>

#include <memory>
#include <thread>
#include <vector>

#include "quench/core/memory_pool.hpp"
#include "quench/core/tensor.hpp"

using quench::dtype;
using quench::memory_pool;
using quench::tensor;

TEST_CASE("memory_pool: tensors created in a scope reuse released storage") {
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
  tensor b = tensor::uninitialized(dtype::float32, {1000});
  CHECK(static_cast<const void*>(b.bytes()) == first);
  CHECK(pool->cached_bytes() == 0);
  // The zeroing constructor zeroes recycled storage too.
  b.view<float>()[3] = 5.0f;
  b = tensor();
  tensor c(dtype::float32, {1000});
  CHECK(c.view<float>()[3] == 0.0f);
}

TEST_CASE("memory_pool: a slightly smaller request takes a cached buffer, a much smaller one does not") {
  auto pool = std::make_shared<memory_pool>();
  memory_pool::scope use(pool);
  { tensor a(dtype::uint8, {6400}); }
  {
    tensor b(dtype::uint8, {6000});  // 6016 bytes: within 1/8 of 6400
    CHECK(pool->cached_bytes() == 0);
    CHECK(pool->live_bytes() == 6400);
  }
  CHECK(pool->cached_bytes() == 6400);
  tensor small(dtype::uint8, {1000});
  CHECK(pool->live_bytes() == 1024);
  CHECK(pool->cached_bytes() == 6400);
}

TEST_CASE("memory_pool: the cache never holds more than twice the peak live set, the oldest buffers go first") {
  auto pool = std::make_shared<memory_pool>();
  memory_pool::scope use(pool);
  { tensor a(dtype::uint8, {6400}); }  // peak 6400
  { tensor b(dtype::uint8, {3200}); }  // no cached buffer within 1/8: a fresh one
  { tensor c(dtype::uint8, {2432}); }
  CHECK(pool->peak_live_bytes() == 6400);
  CHECK(pool->cached_bytes() == 12032);
  { tensor d(dtype::uint8, {1600}); }
  // Caching d would make 13632 > 2 * 6400: the 6400-byte buffer, cached first, was freed.
  CHECK(pool->cached_bytes() == 7232);
  tensor again(dtype::uint8, {6400});
  CHECK(pool->cached_bytes() == 7232);  // a fresh allocation: the 6400-byte buffer is gone
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
