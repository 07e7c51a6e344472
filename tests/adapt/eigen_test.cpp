#include <doctest/doctest.h>

#include "quench/adapt/eigen.hpp"
#include "quench/core/tensor.hpp"

TEST_CASE("as_eigen_matrix maps tensor memory without copying") {
  quench::tensor t(quench::dtype::float32, {2, 3, 4});
  auto m = quench::as_eigen_matrix(t.view<float>());
  CHECK(m.rows() == 6);
  CHECK(m.cols() == 4);
  CHECK(m.data() == t.view<float>().data());
  m(1, 2) = 7.f;  // row-major: element 1 * 4 + 2
  CHECK(t.view<float>()[6] == 7.f);

  const quench::tensor& ct = t;
  auto cm = quench::as_eigen_matrix(ct.view<float>());
  CHECK(cm(1, 2) == 7.f);
  auto vec = quench::as_eigen_vector(ct.view<float>());
  CHECK(vec.size() == 24);
  CHECK(vec(6) == 7.f);

  CHECK_THROWS_AS(quench::as_eigen_matrix(quench::tensor_view<float>(nullptr, quench::shape{})), quench::error);
}

TEST_CASE("view_of wraps row-major Eigen storage") {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  auto v = quench::view_of(m);
  CHECK(v.shape() == quench::shape{2, 3});
  CHECK(v[4] == 5.f);
  v[0] = 10.f;
  CHECK(m(0, 0) == 10.f);

  Eigen::VectorXd col(4);
  col << 1, 2, 3, 4;
  auto cv = quench::view_of(col);
  CHECK(cv.shape() == quench::shape{4, 1});

  float buf[12] = {};
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> map(buf, 3, 4);
  CHECK(quench::view_of(map).data() == buf);
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>> strided(
      buf, 2, 3, Eigen::OuterStride<>(4));
  CHECK_THROWS_AS(quench::view_of(strided), quench::error);
}
