#include <doctest/doctest.h>

#include <cstdint>

#include "quench/core/tensor.hpp"

TEST_CASE("tensor storage is aligned, zeroed and typed") {
  quench::tensor t(quench::dtype::float32, {3, 5}, "x");
  CHECK(t.size() == 15);
  CHECK(t.nbytes() == 60);
  CHECK(reinterpret_cast<std::uintptr_t>(t.bytes()) % QUENCH_TENSOR_ALIGNMENT == 0);
  auto v = t.view<float>();
  for (float f : v) CHECK(f == 0.f);
  v[14] = 2.5f;
  quench::tensor_view<const float> cv = v;
  CHECK(cv[14] == 2.5f);
  CHECK_THROWS_WITH(t.view<std::int8_t>(),
                    "[quench.dtype_mismatch] tensor 'x': expected element type int8, found float");
}

TEST_CASE("packed 4-bit tensors store two elements per byte") {
  quench::tensor t(quench::dtype::int4, {5});
  CHECK(t.size() == 5);
  CHECK(t.nbytes() == 3);
}

TEST_CASE("clone, reshape, from") {
  auto t = quench::tensor::from<std::int32_t>({2, 2}, {1, 2, 3, 4});
  auto c = t.clone();
  c.view<std::int32_t>()[0] = 9;
  CHECK(t.view<std::int32_t>()[0] == 1);
  c.reshape({4});
  CHECK(c.shape() == quench::shape{4});
  CHECK_THROWS_AS(c.reshape({3}), quench::error);
  CHECK_THROWS_AS(quench::tensor::from<float>({3}, {1.f, 2.f}), quench::error);
  CHECK_THROWS_AS(quench::tensor(quench::dtype::string, {1}), quench::error);
}
