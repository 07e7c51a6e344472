#pragma once
// tensor: an owning, dtype-erased, dense row-major tensor with 64-byte aligned storage.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "quench/core/config.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor_view.hpp"

namespace quench {

namespace detail {
struct aligned_free {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using aligned_buffer = std::unique_ptr<std::byte[], aligned_free>;

inline aligned_buffer allocate_aligned(std::size_t bytes) {
  if (bytes == 0) return aligned_buffer{};
  constexpr std::size_t a = QUENCH_TENSOR_ALIGNMENT;
  // std::aligned_alloc requires the size to be a multiple of the alignment.
  const std::size_t rounded = (bytes + a - 1) / a * a;
  void* p = std::aligned_alloc(a, rounded);
  if (!p) throw std::bad_alloc();
  return aligned_buffer(static_cast<std::byte*>(p));
}
}  // namespace detail

/// Owns zero-initialised storage for `shape.numel()` elements of `dtype`, packed as ONNX stores
/// them (4-bit types two per byte, low nibble first). Move-only; `clone()` copies explicitly.
/// Not thread-safe for concurrent mutation; concurrent reads are fine.
///
///     quench::tensor t(quench::dtype::float32, {2, 3});
///     auto v = t.view<float>();   // tensor_view<float>
///     v[0] = 1.f;
class tensor {
 public:
  tensor() = default;
  tensor(quench::dtype type, quench::shape s, std::string name = {})
      : type_(type), shape_(std::move(s)), name_(std::move(name)) {
    if (type_ == dtype::undefined || type_ == dtype::string)
      throw_error(errc::unsupported_dtype, tensor_context(name_),
                  "cannot allocate a tensor of element type " + to_string(type_));
    bytes_ = storage_bytes(type_, shape_.numel());
    data_ = detail::allocate_aligned(bytes_);
    if (bytes_) std::memset(data_.get(), 0, bytes_);
  }

  tensor(tensor&&) noexcept = default;
  tensor& operator=(tensor&&) noexcept = default;
  tensor(const tensor&) = delete;
  tensor& operator=(const tensor&) = delete;

  /// A tensor holding a copy of `values`, e.g. `tensor::from<float>({2}, {1.f, 2.f})`.
  template <class T>
  static tensor from(quench::shape s, std::initializer_list<T> values, std::string name = {}) {
    tensor t(dtype_of_v<T>, std::move(s), std::move(name));
    if (values.size() != t.size())
      throw_shape_mismatch(tensor_context(t.name_), std::to_string(t.size()) + " values",
                           std::to_string(values.size()));
    std::copy(values.begin(), values.end(), t.view<T>().data());
    return t;
  }

  tensor clone() const {
    tensor t(type_, shape_, name_);
    if (bytes_) std::memcpy(t.data_.get(), data_.get(), bytes_);
    return t;
  }

  quench::dtype dtype() const noexcept { return type_; }
  const quench::shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.rank(); }
  std::size_t size() const noexcept { return shape_.numel(); }
  std::size_t nbytes() const noexcept { return bytes_; }
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  std::byte* bytes() noexcept { return data_.get(); }
  const std::byte* bytes() const noexcept { return data_.get(); }

  /// Reinterprets the shape without touching data; the element count must stay the same.
  void reshape(quench::shape s) {
    if (s.numel() != shape_.numel())
      throw_shape_mismatch(tensor_context(name_), std::to_string(shape_.numel()) + " elements",
                           std::to_string(s.numel()) + " in shape " + to_string(s));
    shape_ = std::move(s);
  }

  /// Typed view; throws dtype_mismatch when T is not this tensor's element type.
  template <class T>
  tensor_view<T> view() & {
    check_type<T>();
    return {reinterpret_cast<T*>(data_.get()), shape_};
  }
  template <class T>
  tensor_view<const T> view() const& {
    check_type<T>();
    return {reinterpret_cast<const T*>(data_.get()), shape_};
  }
  /// A view of a temporary would dangle.
  template <class T>
  tensor_view<T> view() && = delete;

 private:
  template <class T>
  void check_type() const {
    constexpr quench::dtype want = dtype_of_v<T>;
    static_assert(!is_sub_byte(want),
                  "int4/uint4 tensors are packed two per byte: use tensor::bytes() with the nibble "
                  "helpers of quench/numeric/int4.hpp instead of a typed view");
    if (want != type_)
      throw_error(errc::dtype_mismatch, tensor_context(name_),
                  "expected element type " + to_string(want) + ", found " + to_string(type_));
  }

  quench::dtype type_ = dtype::undefined;
  quench::shape shape_;
  std::string name_;
  std::size_t bytes_ = 0;
  detail::aligned_buffer data_;
};

}  // namespace quench
