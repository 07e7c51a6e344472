#pragma once
// Zero-copy adapters between quench views and Eigen maps. The only quench header that includes
// Eigen for users; quench::quench links Eigen3::Eigen.
//
//     quench::tensor w(quench::dtype::float32, {64, 128});
//     auto m = quench::as_eigen_matrix(w.view<float>());   // Eigen::Map, 64x128, row-major
//     m.setRandom();                                        // writes into w
//     Eigen::MatrixXf r = m * m.transpose();

#include <Eigen/Core>

#include <type_traits>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"

namespace quench {

template <class T>
using eigen_row_matrix = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using eigen_vector = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>;

/// Row-major map over a view: rank 2 as is, rank > 2 as [product of leading dims, last dim]
/// (the layout of a Gemm/MatMul operand), rank 1 as one row. Constness follows T.
template <class T>
auto as_eigen_matrix(tensor_view<T> v) {
  using map_t = Eigen::Map<std::conditional_t<std::is_const_v<T>, const eigen_row_matrix<T>, eigen_row_matrix<T>>>;
  if (v.rank() == 0) throw_invalid_argument({}, "a tensor of rank >= 1 for an Eigen matrix map", "rank 0");
  const auto cols = static_cast<Eigen::Index>(v.shape()[v.rank() - 1]);
  const auto rows = static_cast<Eigen::Index>(v.rank() == 1 ? 1 : v.shape().outer(v.rank() - 1));
  return map_t(v.data(), rows, cols);
}

/// Map over all elements as a column vector.
template <class T>
auto as_eigen_vector(tensor_view<T> v) {
  using map_t = Eigen::Map<std::conditional_t<std::is_const_v<T>, const eigen_vector<T>, eigen_vector<T>>>;
  return map_t(v.data(), static_cast<Eigen::Index>(v.size()));
}

/// A view over an Eigen object's storage with shape [rows, cols]. The object must be contiguous
/// and row-major (or a vector, whose storage order does not matter); a column-major matrix has
/// no zero-copy row-major view: store it as Eigen::RowMajor or view its transpose.
template <class Derived>
auto view_of(Eigen::PlainObjectBase<Derived>& m) {
  using scalar = typename Derived::Scalar;
  static_assert(Derived::IsRowMajor || Derived::IsVectorAtCompileTime,
                "quench::view_of needs a row-major Eigen matrix (Eigen::RowMajor) or a vector: "
                "quench views are row-major");
  return tensor_view<scalar>(m.data(), shape{static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())});
}
template <class Derived>
auto view_of(const Eigen::PlainObjectBase<Derived>& m) {
  using scalar = typename Derived::Scalar;
  static_assert(Derived::IsRowMajor || Derived::IsVectorAtCompileTime,
                "quench::view_of needs a row-major Eigen matrix (Eigen::RowMajor) or a vector: "
                "quench views are row-major");
  return tensor_view<const scalar>(m.data(),
                                   shape{static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())});
}

/// A view over a contiguous Eigen::Map (inner stride 1, outer stride equal to the inner size).
template <class PlainObject, int Options, class Stride>
auto view_of(const Eigen::Map<PlainObject, Options, Stride>& m) {
  using scalar = typename PlainObject::Scalar;
  static_assert(PlainObject::IsRowMajor || PlainObject::IsVectorAtCompileTime,
                "quench::view_of needs a row-major Eigen map or a vector map: quench views are row-major");
  if (m.innerStride() != 1 || (m.rows() > 1 && m.cols() > 1 && m.outerStride() != m.innerSize()))
    throw_invalid_argument({}, "a contiguous Eigen map", "a strided map");
  using elem = std::conditional_t<std::is_const_v<PlainObject>, const scalar,
                                  std::remove_pointer_t<decltype(m.data())>>;
  return tensor_view<elem>(m.data(), shape{static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())});
}

}  // namespace quench
