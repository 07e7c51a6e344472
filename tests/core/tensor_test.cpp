#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

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

TEST_CASE("adopted memory is viewed without copying and copied on first write") {
  auto keeper = std::make_shared<std::string>(std::string(8, '\0'));
  const float init[2] = {1.5f, -2.f};
  std::memcpy(keeper->data(), init, 8);
  std::shared_ptr<std::byte> alias(keeper, reinterpret_cast<std::byte*>(keeper->data()));

  auto t = quench::tensor::adopt(quench::dtype::float32, {2}, alias, 8, /*read_only=*/true, "w");
  const quench::tensor& ct = t;
  CHECK(ct.view<float>().data() == reinterpret_cast<const float*>(keeper->data()));  // zero copy
  CHECK(t.is_read_only());
  t.view<float>()[0] = 3.f;  // copy on write
  CHECK_FALSE(t.is_read_only());
  CHECK(t.view<float>()[0] == 3.f);
  float original;
  std::memcpy(&original, keeper->data(), 4);
  CHECK(original == 1.5f);  // the adopted memory was not written

  auto writable = quench::tensor::adopt(quench::dtype::float32, {2}, alias, 8, /*read_only=*/false);
  writable.view<float>()[1] = 4.f;
  std::memcpy(&original, keeper->data() + 4, 4);
  CHECK(original == 4.f);

  CHECK_THROWS_AS(quench::tensor::adopt(quench::dtype::float32, {3}, alias, 8, true), quench::error);
  CHECK(quench::tensor().size() == 0);

  quench::tensor moved = std::move(t);
  CHECK(moved.view<float>()[0] == 3.f);
  CHECK(t.size() == 0);  // NOLINT(bugprone-use-after-move): a moved-from tensor is empty
}
