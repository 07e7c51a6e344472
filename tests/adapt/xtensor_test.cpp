#include <doctest/doctest.h>

#include <xtensor/xarray.hpp>
#include <xtensor/xview.hpp>

#include "quench/adapt/xtensor.hpp"
#include "quench/core/tensor.hpp"

TEST_CASE("as_xtensor adapts a view in place") {
  quench::tensor t(quench::dtype::float32, {2, 3});
  auto x = quench::as_xtensor(t.view<float>());
  CHECK(x.dimension() == 2);
  CHECK(x.shape()[1] == 3);
  x(1, 2) = 4.f;
  CHECK(t.view<float>()[5] == 4.f);
}

TEST_CASE("view_of wraps contiguous xtensor containers") {
  xt::xarray<float> a = {{1.f, 2.f}, {3.f, 4.f}};
  auto v = quench::view_of(a);
  CHECK(v.shape() == quench::shape{2, 2});
  CHECK(v[3] == 4.f);
  v[0] = 9.f;
  CHECK(a(0, 0) == 9.f);

  xt::xarray<float, xt::layout_type::column_major> c = {{1.f, 2.f}, {3.f, 4.f}};
  CHECK_THROWS_AS(quench::view_of(c), quench::error);
}
