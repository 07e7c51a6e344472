#pragma once
// tensor_view<T>: a non-owning, typed, contiguous view that kernels take.
// tensor_view<const T> for inputs, tensor_view<T> for outputs.

#include <cstddef>
#include <type_traits>

#include "quench/core/shape.hpp"

namespace quench {

/// Pointer + shape over row-major data the caller owns. Cheap to copy; never allocates.
/// Views address whole elements; packed 4-bit tensors are reached through tensor::bytes() and the
/// nibble helpers of quench/numeric/int4.hpp instead.
template <class T>
class tensor_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;

  constexpr tensor_view() noexcept = default;
  tensor_view(T* data, quench::shape s) noexcept : data_(data), shape_(std::move(s)) {}

  /// A mutable view converts to a const one.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  tensor_view(const tensor_view<U>& other) noexcept : data_(other.data()), shape_(other.shape()) {}

  T* data() const noexcept { return data_; }
  const quench::shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.rank(); }
  std::size_t size() const noexcept { return shape_.numel(); }
  bool empty() const noexcept { return size() == 0; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size(); }

 private:
  T* data_ = nullptr;
  quench::shape shape_;
};

template <class T>
using const_tensor_view = tensor_view<const T>;

}  // namespace quench
