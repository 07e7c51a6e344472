#pragma once
// Zero-copy adapters between quench views and xtensor. The only quench header that includes
// xtensor (target quench::xtensor). xtensor 0.24 (Debian 12) and >= 0.26 keep xadapt.hpp in
// different folders; both are found.
//
//     xt::xarray<float> a = {{1, 2}, {3, 4}};
//     auto v = quench::view_of(a);                  // tensor_view<float>, shape [2, 2]
//     auto x = quench::as_xtensor(v);               // xtensor adaptor over the same memory

#if __has_include(<xtensor/containers/xadapt.hpp>)
#  include <xtensor/containers/xadapt.hpp>
#  include <xtensor/core/xlayout.hpp>
#else
#  include <xtensor/xadapt.hpp>
#  include <xtensor/xlayout.hpp>
#endif

#include <cstddef>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"

namespace quench {

/// An xtensor adaptor (no ownership, row-major) over a view's memory, with the view's shape.
template <class T>
auto as_xtensor(tensor_view<T> v) {
  std::vector<std::size_t> dims(v.shape().begin(), v.shape().end());
  return xt::adapt(v.data(), v.size(), xt::no_ownership(), dims);
}

/// A view over a contiguous row-major xtensor container (xarray, xtensor, an adaptor); strided
/// views and column-major containers are refused.
template <class E>
auto view_of(E& e) -> tensor_view<std::remove_pointer_t<decltype(e.data())>> {
  if (e.layout() != xt::layout_type::row_major && e.dimension() > 1)
    throw_invalid_argument({}, "a row-major xtensor container", "another layout");
  std::vector<std::int64_t> dims(e.shape().begin(), e.shape().end());
  shape s(std::move(dims));
  std::size_t stride = 1;
  for (std::size_t i = e.dimension(); i-- > 0;) {
    if (s[i] > 1 && static_cast<std::size_t>(e.strides()[i]) != stride)
      throw_invalid_argument({}, "a contiguous xtensor container", "a strided one");
    stride *= static_cast<std::size_t>(s[i]);
  }
  return {e.data(), std::move(s)};
}

}  // namespace quench
