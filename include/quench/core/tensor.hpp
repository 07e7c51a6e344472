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
#include "quench/core/memory_pool.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor_view.hpp"

namespace quench {

namespace detail {
/// Allocates `bytes` bytes aligned to QUENCH_TENSOR_ALIGNMENT, owned by a shared_ptr: from the
/// current thread's memory_pool if one is installed, else from the C heap; zeroed with `zero`.
inline std::shared_ptr<std::byte> allocate_aligned(std::size_t bytes, bool zero = true) {
  if (bytes == 0) return {};
  constexpr std::size_t a = QUENCH_TENSOR_ALIGNMENT;
  // std::aligned_alloc requires the size to be a multiple of the alignment.
  const std::size_t rounded = (bytes + a - 1) / a * a;
  std::shared_ptr<std::byte> out;
  if (const auto& pool = memory_pool::current()) {
    out = pool->allocate(rounded);
  } else {
    void* p = std::aligned_alloc(a, rounded);
    if (!p) throw std::bad_alloc();
    out = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
  }
  if (zero) std::memset(out.get(), 0, rounded);
  return out;
}
}  // namespace detail

/// Storage for `shape.numel()` elements of `dtype`, packed as ONNX stores them (4-bit types two
/// per byte, low nibble first). Move-only; `clone()` copies explicitly.
///
/// A tensor either owns zero-initialised, 64-byte aligned memory, or adopts memory someone else
/// keeps alive (`adopt`): the bytes of a loaded protobuf, a memory-mapped external-data file. That
/// is how a model's initializers are viewed without copying them. Adopted read-only memory is
/// copied into owned storage the first time it is accessed mutably (copy on write), so a mapped
/// file is never written through. Not thread-safe for concurrent mutation; concurrent const
/// access is fine.
///
///     quench::tensor t(quench::dtype::float32, {2, 3});
///     auto v = t.view<float>();   // tensor_view<float>
///     v[0] = 1.f;
class tensor {
 public:
  tensor() = default;
  tensor(quench::dtype type, quench::shape s, std::string name = {})
      : type_(type), shape_(std::move(s)), name_(std::move(name)) {
    allocate(true);
  }

  /// A tensor whose elements are left uninitialised, for kernels that write every element: it
  /// saves the zero-fill pass over the output.
  static tensor uninitialized(quench::dtype type, quench::shape s, std::string name = {}) {
    tensor t;
    t.type_ = type;
    t.shape_ = std::move(s);
    t.name_ = std::move(name);
    t.allocate(false);
    return t;
  }

  /// Wraps `nbytes` bytes at `data` without copying; `data` (usually an aliasing shared_ptr)
  /// keeps the memory alive. With `read_only`, mutable access first copies into owned storage.
  static tensor adopt(quench::dtype type, quench::shape s, std::shared_ptr<std::byte> data, std::size_t nbytes,
                      bool read_only, std::string name = {}) {
    tensor t;
    t.type_ = type;
    t.shape_ = std::move(s);
    t.name_ = std::move(name);
    t.bytes_ = storage_bytes(type, t.shape_.numel());
    if (nbytes != t.bytes_)
      throw_error(errc::shape_mismatch, tensor_context(t.name_),
                  "expected " + std::to_string(t.bytes_) + " bytes for " + to_string(type) + " " +
                      to_string(t.shape_) + ", found " + std::to_string(nbytes));
    t.data_ = std::move(data);
    t.read_only_ = read_only;
    return t;
  }

  tensor(tensor&& other) noexcept { swap(other); }
  tensor& operator=(tensor&& other) noexcept {
    tensor(std::move(other)).swap(*this);
    return *this;
  }
  void swap(tensor& other) noexcept {
    std::swap(type_, other.type_);
    std::swap(shape_, other.shape_);
    std::swap(name_, other.name_);
    std::swap(bytes_, other.bytes_);
    std::swap(data_, other.data_);
    std::swap(read_only_, other.read_only_);
  }
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
    return t;  // always owned and aligned, whatever this tensor's storage is
  }

  quench::dtype dtype() const noexcept { return type_; }
  const quench::shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.rank(); }
  /// Element count; 0 for a default-constructed (undefined) tensor.
  std::size_t size() const noexcept { return type_ == quench::dtype::undefined ? 0 : shape_.numel(); }
  /// A read-only tensor viewing this one's storage (no copy); the storage lives while either does,
  /// and neither counts as storage_unique() meanwhile, so nothing writes it in place.
  tensor share() const {
    tensor t = adopt(type_, shape_, data_, bytes_, true, name_);
    return t;
  }

  /// True if this tensor is the only user of owned, writable storage: writing it in place can
  /// affect no other tensor (an executor hands such tensors to kernels to reuse).
  bool storage_unique() const noexcept { return data_ && !read_only_ && data_.use_count() == 1; }
  std::size_t nbytes() const noexcept { return bytes_; }
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  /// Mutable bytes; copies adopted read-only memory into owned storage first.
  std::byte* bytes() {
    make_writable();
    return data_.get();
  }
  const std::byte* bytes() const noexcept { return data_.get(); }
  /// True when the storage is adopted read-only memory that has not been copied yet.
  bool is_read_only() const noexcept { return read_only_; }

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
    make_writable();
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
  void allocate(bool zero) {
    if (type_ == dtype::undefined || type_ == dtype::string)
      throw_error(errc::unsupported_dtype, tensor_context(name_),
                  "cannot allocate a tensor of element type " + to_string(type_));
    bytes_ = storage_bytes(type_, shape_.numel());
    data_ = detail::allocate_aligned(bytes_, zero);
  }

  void make_writable() {
    if (!read_only_) return;
    auto owned = detail::allocate_aligned(bytes_, false);
    if (bytes_) std::memcpy(owned.get(), data_.get(), bytes_);
    data_ = std::move(owned);
    read_only_ = false;
  }

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
  std::shared_ptr<std::byte> data_;
  bool read_only_ = false;
};

}  // namespace quench
