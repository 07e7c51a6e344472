#pragma once
// shape: the dimensions of a dense tensor, row-major (last axis contiguous) as ONNX lays out data.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "quench/core/error.hpp"

namespace quench {

class shape {
 public:
  using value_type = std::int64_t;

  shape() = default;  ///< rank 0: a scalar with one element
  shape(std::initializer_list<std::int64_t> dims) : dims_(dims) { validate(); }
  explicit shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) { validate(); }
  template <class It>
  shape(It first, It last) : dims_(first, last) { validate(); }

  std::size_t rank() const noexcept { return dims_.size(); }
  std::int64_t operator[](std::size_t i) const noexcept { return dims_[i]; }
  std::int64_t& operator[](std::size_t i) noexcept { return dims_[i]; }
  const std::vector<std::int64_t>& dims() const noexcept { return dims_; }
  auto begin() const noexcept { return dims_.begin(); }
  auto end() const noexcept { return dims_.end(); }

  /// Number of elements (1 for a scalar, 0 if any dimension is 0).
  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (auto d : dims_) n *= static_cast<std::size_t>(d);
    return n;
  }

  /// Product of the dimensions before `axis` (the "outer" count of a per-axis loop).
  std::size_t outer(std::size_t axis) const noexcept {
    std::size_t n = 1;
    for (std::size_t i = 0; i < axis; ++i) n *= static_cast<std::size_t>(dims_[i]);
    return n;
  }
  /// Product of the dimensions after `axis` (the contiguous "inner" run of a per-axis loop).
  std::size_t inner(std::size_t axis) const noexcept {
    std::size_t n = 1;
    for (std::size_t i = axis + 1; i < dims_.size(); ++i) n *= static_cast<std::size_t>(dims_[i]);
    return n;
  }

  friend bool operator==(const shape& a, const shape& b) noexcept { return a.dims_ == b.dims_; }
  friend bool operator!=(const shape& a, const shape& b) noexcept { return !(a == b); }

 private:
  void validate() const {
    for (auto d : dims_)
      if (d < 0) throw_error(errc::invalid_argument, {}, "shape " + to_string_impl() + " has a negative dimension");
  }
  std::string to_string_impl() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }
  friend std::string to_string(const shape& s);

  std::vector<std::int64_t> dims_;
};

/// "[2, 3, 4]"; "[]" for a scalar.
inline std::string to_string(const shape& s) { return s.to_string_impl(); }

/// Resolves an ONNX axis (negative counts from the end) against `rank`; throws out_of_range.
inline std::size_t normalize_axis(std::int64_t axis, std::size_t rank, const std::string& context = {}) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r)
    throw_error(errc::out_of_range, context,
                "axis " + std::to_string(axis) + " is outside [" + std::to_string(-r) + ", " +
                    std::to_string(r - 1) + "] for rank " + std::to_string(rank));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

}  // namespace quench
