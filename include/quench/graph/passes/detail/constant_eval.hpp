#pragma once
// Evaluation of the small operators found in shape computations (Shape, Gather, Concat, Slice,
// Reshape, arithmetic, ...) on constant inputs, exact to the ONNX operator definitions, for
// fold_constants.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"

namespace quench::detail {

/// A constant during folding. Integer and bool elements are held as int64 (uint32 fits, uint64
/// is not folded); float and double as double, rounded to the element type after every
/// operation, which gives exactly the float result for + - * / (double has more than 2 * 24 + 2
/// significand bits).
struct folded {
  dtype type = dtype::undefined;
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> ints;
  std::vector<double> reals;

  bool is_real() const noexcept { return type == dtype::float32 || type == dtype::float64; }
  std::size_t size() const noexcept { return is_real() ? reals.size() : ints.size(); }
};

inline bool foldable_dtype(dtype t) noexcept {
  switch (t) {
    case dtype::float32:
    case dtype::float64:
    case dtype::int8:
    case dtype::uint8:
    case dtype::int16:
    case dtype::uint16:
    case dtype::int32:
    case dtype::uint32:
    case dtype::int64:
    case dtype::bool_: return true;
    default: return false;
  }
}

inline std::size_t element_count(const std::vector<std::int64_t>& dims) {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

/// Wraps an integer into the range of `t` as a static_cast to it does (two's complement).
inline std::int64_t wrap_to(dtype t, std::int64_t x) noexcept {
  switch (t) {
    case dtype::int8: return static_cast<std::int8_t>(x);
    case dtype::uint8: return static_cast<std::uint8_t>(x);
    case dtype::int16: return static_cast<std::int16_t>(x);
    case dtype::uint16: return static_cast<std::uint16_t>(x);
    case dtype::int32: return static_cast<std::int32_t>(x);
    case dtype::uint32: return static_cast<std::uint32_t>(x);
    case dtype::bool_: return x != 0;
    default: return x;
  }
}

inline double round_to(dtype t, double x) noexcept {
  return t == dtype::float32 ? static_cast<double>(static_cast<float>(x)) : x;
}

/// Smallest and largest value of integer type `t`.
inline void int_range(dtype t, std::int64_t& lo, std::int64_t& hi) noexcept {
  switch (t) {
    case dtype::int8: lo = INT8_MIN, hi = INT8_MAX; break;
    case dtype::uint8: lo = 0, hi = UINT8_MAX; break;
    case dtype::int16: lo = INT16_MIN, hi = INT16_MAX; break;
    case dtype::uint16: lo = 0, hi = UINT16_MAX; break;
    case dtype::int32: lo = INT32_MIN, hi = INT32_MAX; break;
    case dtype::uint32: lo = 0, hi = UINT32_MAX; break;
    case dtype::bool_: lo = 0, hi = 1; break;
    default: lo = INT64_MIN, hi = INT64_MAX; break;
  }
}

template <class T>
void read_elements(const tensor& t, folded& f) {
  auto v = t.view<T>();
  if constexpr (std::is_floating_point_v<T>) f.reals.assign(v.begin(), v.end());
  else f.ints.assign(v.begin(), v.end());
}

/// The tensor's elements, or nothing for an element type folding does not handle.
inline std::optional<folded> read_folded(const tensor& t) {
  folded f;
  f.type = t.dtype();
  f.dims = t.shape().dims();
  switch (t.dtype()) {
    case dtype::float32: read_elements<float>(t, f); break;
    case dtype::float64: read_elements<double>(t, f); break;
    case dtype::int8: read_elements<std::int8_t>(t, f); break;
    case dtype::uint8: read_elements<std::uint8_t>(t, f); break;
    case dtype::int16: read_elements<std::int16_t>(t, f); break;
    case dtype::uint16: read_elements<std::uint16_t>(t, f); break;
    case dtype::int32: read_elements<std::int32_t>(t, f); break;
    case dtype::uint32: read_elements<std::uint32_t>(t, f); break;
    case dtype::int64: read_elements<std::int64_t>(t, f); break;
    case dtype::bool_: read_elements<bool>(t, f); break;
    default: return std::nullopt;
  }
  return f;
}

template <class T>
void write_elements(const folded& f, tensor& t) {
  auto v = t.view<T>();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>) v[i] = static_cast<T>(f.reals[i]);
    else v[i] = static_cast<T>(f.ints[i]);
  }
}

inline tensor write_folded(const folded& f) {
  tensor t(f.type, shape(f.dims));
  switch (f.type) {
    case dtype::float32: write_elements<float>(f, t); break;
    case dtype::float64: write_elements<double>(f, t); break;
    case dtype::int8: write_elements<std::int8_t>(f, t); break;
    case dtype::uint8: write_elements<std::uint8_t>(f, t); break;
    case dtype::int16: write_elements<std::int16_t>(f, t); break;
    case dtype::uint16: write_elements<std::uint16_t>(f, t); break;
    case dtype::int32: write_elements<std::int32_t>(f, t); break;
    case dtype::uint32: write_elements<std::uint32_t>(f, t); break;
    case dtype::int64: write_elements<std::int64_t>(f, t); break;
    case dtype::bool_: write_elements<bool>(f, t); break;
    default: throw_error(errc::unsupported_dtype, {}, "cannot fold " + to_string(f.type));
  }
  return t;
}

/// Inputs of one node under evaluation, with the limits that keep folding to small tensors.
class fold_context {
 public:
  fold_context(const node& n, std::vector<std::optional<folded>> inputs, std::int64_t opset, std::size_t max_bytes)
      : n_(n), in_(std::move(inputs)), opset_(opset), max_bytes_(max_bytes) {}

  const node& op() const noexcept { return n_; }
  std::int64_t opset() const noexcept { return opset_; }
  bool has(std::size_t i) const noexcept { return i < in_.size() && in_[i].has_value(); }
  const folded& in(std::size_t i) const {
    if (!has(i)) throw_error(errc::invalid_model, n_.context(), "input " + std::to_string(i) + " is missing");
    return *in_[i];
  }
  /// Whether an output of `count` elements of `t` stays within the size limit.
  bool fits(std::size_t count, dtype t) const noexcept {
    const std::size_t bytes = std::max(bit_width(t) / 8, 1);
    return count <= max_bytes_ / bytes;
  }
  [[noreturn]] void fail(errc code, const std::string& message) const { throw_error(code, n_.context(), message); }

  /// Integer elements of input `i` (int32 or int64, as shape-like inputs are).
  const std::vector<std::int64_t>& int_input(std::size_t i, const char* what) const {
    const folded& f = in(i);
    if (f.type != dtype::int64 && f.type != dtype::int32)
      fail(errc::invalid_model, std::string(what) + " must be int64 or int32, found " + to_string(f.type));
    return f.ints;
  }

 private:
  const node& n_;
  std::vector<std::optional<folded>> in_;
  std::int64_t opset_;
  std::size_t max_bytes_;
};

inline std::string dims_text(const std::vector<std::int64_t>& d) { return to_string(shape(d)); }

/// Multidirectional (numpy) broadcasting of several shapes; throws for incompatible ones.
inline std::vector<std::int64_t> broadcast_dims(const fold_context& c, const std::vector<const std::vector<std::int64_t>*>& shapes) {
  std::size_t rank = 0;
  for (const auto* s : shapes) rank = std::max(rank, s->size());
  std::vector<std::int64_t> out(rank, 1);
  for (const auto* s : shapes)
    for (std::size_t k = 0; k < s->size(); ++k) {
      std::int64_t& o = out[rank - s->size() + k];
      const std::int64_t d = (*s)[k];
      if (d == o || d == 1) continue;
      if (o != 1) {
        std::string all;
        for (const auto* t : shapes) all += (all.empty() ? "" : " and ") + dims_text(*t);
        c.fail(errc::shape_mismatch, "shapes " + all + " do not broadcast");
      }
      o = d;
    }
  return out;
}

/// Offset in an input of shape `in` of the element broadcast to flat position `flat` of `out`.
inline std::size_t broadcast_offset(std::size_t flat, const std::vector<std::int64_t>& out, const std::vector<std::int64_t>& in) {
  std::size_t offset = 0, stride = 1;
  for (std::size_t k = 0; k < out.size(); ++k) {
    const auto extent = static_cast<std::size_t>(out[out.size() - 1 - k]);
    const std::size_t idx = flat % extent;
    flat /= extent;
    if (k < in.size()) {
      const auto d = static_cast<std::size_t>(in[in.size() - 1 - k]);
      if (d != 1) offset += idx * stride;
      stride *= d;
    }
  }
  return offset;
}

inline void require_same_type(const fold_context& c, const folded& a, const folded& b) {
  if (a.type != b.type)
    c.fail(errc::dtype_mismatch, "inputs have different element types, " + to_string(a.type) + " and " + to_string(b.type));
}

/// Add, Sub, Mul, Div. Nothing for an integer division by zero or overflow (the runtime's
/// behaviour is undefined there; folding must not pick one).
inline std::optional<folded> eval_arithmetic(const fold_context& c, char op) {
  const folded& a = c.in(0);
  const folded& b = c.in(1);
  require_same_type(c, a, b);
  if (c.opset() < 7 && a.dims != b.dims) return std::nullopt;  // legacy broadcast/axis attributes
  folded r;
  r.type = a.type;
  r.dims = broadcast_dims(c, {&a.dims, &b.dims});
  const std::size_t n = element_count(r.dims);
  if (!c.fits(n, r.type)) return std::nullopt;
  if (a.is_real()) {
    r.reals.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double x = a.reals[broadcast_offset(i, r.dims, a.dims)];
      const double y = b.reals[broadcast_offset(i, r.dims, b.dims)];
      const double z = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
      r.reals[i] = round_to(r.type, z);
    }
    return r;
  }
  if (a.type == dtype::bool_) return std::nullopt;  // arithmetic is not defined on bool
  std::int64_t lo, hi;
  int_range(r.type, lo, hi);
  r.ints.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t x = a.ints[broadcast_offset(i, r.dims, a.dims)];
    const std::int64_t y = b.ints[broadcast_offset(i, r.dims, b.dims)];
    // Unsigned arithmetic wraps like the element type does, without signed-overflow UB.
    const auto ux = static_cast<std::uint64_t>(x), uy = static_cast<std::uint64_t>(y);
    std::int64_t z;
    if (op == '+') z = static_cast<std::int64_t>(ux + uy);
    else if (op == '-') z = static_cast<std::int64_t>(ux - uy);
    else if (op == '*') z = static_cast<std::int64_t>(ux * uy);
    else {
      if (y == 0 || (x == lo && y == -1 && lo < 0)) return std::nullopt;
      z = x / y;  // truncates toward zero, as ONNX integer Div does
    }
    r.ints[i] = wrap_to(r.type, z);
  }
  return r;
}

inline std::optional<folded> eval_equal(const fold_context& c) {
  const folded& a = c.in(0);
  const folded& b = c.in(1);
  require_same_type(c, a, b);
  folded r;
  r.type = dtype::bool_;
  r.dims = broadcast_dims(c, {&a.dims, &b.dims});
  const std::size_t n = element_count(r.dims);
  if (!c.fits(n, r.type)) return std::nullopt;
  r.ints.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t ia = broadcast_offset(i, r.dims, a.dims), ib = broadcast_offset(i, r.dims, b.dims);
    r.ints[i] = a.is_real() ? a.reals[ia] == b.reals[ib] : a.ints[ia] == b.ints[ib];
  }
  return r;
}

inline std::optional<folded> eval_where(const fold_context& c) {
  const folded& cond = c.in(0);
  const folded& x = c.in(1);
  const folded& y = c.in(2);
  if (cond.type != dtype::bool_) c.fail(errc::dtype_mismatch, "condition must be bool, found " + to_string(cond.type));
  require_same_type(c, x, y);
  folded r;
  r.type = x.type;
  r.dims = broadcast_dims(c, {&cond.dims, &x.dims, &y.dims});
  const std::size_t n = element_count(r.dims);
  if (!c.fits(n, r.type)) return std::nullopt;
  for (std::size_t i = 0; i < n; ++i) {
    const bool pick_x = cond.ints[broadcast_offset(i, r.dims, cond.dims)] != 0;
    const folded& src = pick_x ? x : y;
    const std::size_t at = broadcast_offset(i, r.dims, src.dims);
    if (r.is_real()) r.reals.push_back(src.reals[at]);
    else r.ints.push_back(src.ints[at]);
  }
  return r;
}

/// Copies the elements at `offsets` of `src` into a result of shape `dims`.
inline folded gather_elements(const folded& src, std::vector<std::int64_t> dims, const std::vector<std::size_t>& offsets) {
  folded r;
  r.type = src.type;
  r.dims = std::move(dims);
  if (src.is_real()) {
    r.reals.reserve(offsets.size());
    for (auto o : offsets) r.reals.push_back(src.reals[o]);
  } else {
    r.ints.reserve(offsets.size());
    for (auto o : offsets) r.ints.push_back(src.ints[o]);
  }
  return r;
}

inline std::optional<folded> eval_gather(const fold_context& c) {
  const folded& data = c.in(0);
  const auto& idx = c.int_input(1, "indices");
  const folded& indices = c.in(1);
  if (data.dims.empty()) c.fail(errc::shape_mismatch, "data must have rank >= 1");
  const std::size_t axis = normalize_axis(c.op().attr_int("axis", 0), data.dims.size(), c.op().context());
  const std::int64_t extent = data.dims[axis];
  std::vector<std::int64_t> dims(data.dims.begin(), data.dims.begin() + static_cast<std::ptrdiff_t>(axis));
  dims.insert(dims.end(), indices.dims.begin(), indices.dims.end());
  dims.insert(dims.end(), data.dims.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.dims.end());
  const std::size_t n = element_count(dims);
  if (!c.fits(n, data.type)) return std::nullopt;
  const std::size_t outer = shape(data.dims).outer(axis), inner = shape(data.dims).inner(axis);
  std::vector<std::size_t> offsets;
  offsets.reserve(n);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::int64_t ix : idx) {
      if (ix < -extent || ix >= extent)
        c.fail(errc::out_of_range, "index " + std::to_string(ix) + " is outside [" + std::to_string(-extent) + ", " +
                                       std::to_string(extent - 1) + "]");
      const auto j = static_cast<std::size_t>(ix < 0 ? ix + extent : ix);
      for (std::size_t k = 0; k < inner; ++k)
        offsets.push_back((o * static_cast<std::size_t>(extent) + j) * inner + k);
    }
  return gather_elements(data, std::move(dims), offsets);
}

/// The `axes` of Squeeze/Unsqueeze: an attribute before opset 13, an input from 13 on.
inline std::optional<std::vector<std::int64_t>> squeeze_axes(const fold_context& c) {
  if (c.opset() < 13) {
    if (!c.op().find_attribute("axes")) return std::nullopt;
    return c.op().attr_ints("axes", {});
  }
  if (!c.has(1)) return std::nullopt;
  return c.int_input(1, "axes");
}

inline std::vector<std::size_t> identity_offsets(std::size_t n) {
  std::vector<std::size_t> o(n);
  for (std::size_t i = 0; i < n; ++i) o[i] = i;
  return o;
}

inline std::optional<folded> eval_unsqueeze(const fold_context& c) {
  const folded& data = c.in(0);
  const auto axes = squeeze_axes(c);
  if (!axes) c.fail(errc::invalid_model, "has no axes");
  const std::size_t rank = data.dims.size() + axes->size();
  std::vector<bool> inserted(rank, false);
  for (std::int64_t a : *axes) {
    const std::size_t k = normalize_axis(a, rank, c.op().context());
    if (inserted[k]) c.fail(errc::invalid_model, "axis " + std::to_string(a) + " is given twice");
    inserted[k] = true;
  }
  std::vector<std::int64_t> dims;
  std::size_t src = 0;
  for (std::size_t k = 0; k < rank; ++k) dims.push_back(inserted[k] ? 1 : data.dims[src++]);
  folded r = data;
  r.dims = std::move(dims);
  return r;
}

inline std::optional<folded> eval_squeeze(const fold_context& c) {
  const folded& data = c.in(0);
  const auto axes = squeeze_axes(c);
  std::vector<bool> drop(data.dims.size(), false);
  if (!axes) {
    for (std::size_t k = 0; k < data.dims.size(); ++k) drop[k] = data.dims[k] == 1;
  } else {
    for (std::int64_t a : *axes) {
      const std::size_t k = normalize_axis(a, data.dims.size(), c.op().context());
      if (data.dims[k] != 1)
        c.fail(errc::shape_mismatch, "cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(data.dims[k]));
      drop[k] = true;
    }
  }
  folded r = data;
  r.dims.clear();
  for (std::size_t k = 0; k < data.dims.size(); ++k)
    if (!drop[k]) r.dims.push_back(data.dims[k]);
  return r;
}

inline std::optional<folded> eval_concat(const fold_context& c) {
  const auto& ins = c.op().inputs();
  if (ins.empty()) c.fail(errc::invalid_model, "has no inputs");
  const folded& first = c.in(0);
  if (first.dims.empty()) c.fail(errc::shape_mismatch, "cannot concatenate scalars");
  const std::size_t axis = normalize_axis(c.op().attr_int("axis", c.opset() < 4 ? 1 : 0), first.dims.size(), c.op().context());
  folded r;
  r.type = first.type;
  r.dims = first.dims;
  r.dims[axis] = 0;
  for (std::size_t i = 0; i < ins.size(); ++i) {
    const folded& f = c.in(i);
    require_same_type(c, first, f);
    bool same = f.dims.size() == first.dims.size();
    for (std::size_t k = 0; same && k < f.dims.size(); ++k) same = k == axis || f.dims[k] == first.dims[k];
    if (!same) c.fail(errc::shape_mismatch, "input shapes " + dims_text(first.dims) + " and " + dims_text(f.dims) + " differ off the concatenation axis");
    r.dims[axis] += f.dims[axis];
  }
  const std::size_t n = element_count(r.dims);
  if (!c.fits(n, r.type)) return std::nullopt;
  const std::size_t outer = shape(first.dims).outer(axis);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < ins.size(); ++i) {
      const folded& f = c.in(i);
      const std::size_t block = static_cast<std::size_t>(f.dims[axis]) * shape(f.dims).inner(axis);
      if (r.is_real()) r.reals.insert(r.reals.end(), f.reals.begin() + static_cast<std::ptrdiff_t>(o * block), f.reals.begin() + static_cast<std::ptrdiff_t>((o + 1) * block));
      else r.ints.insert(r.ints.end(), f.ints.begin() + static_cast<std::ptrdiff_t>(o * block), f.ints.begin() + static_cast<std::ptrdiff_t>((o + 1) * block));
    }
  return r;
}

inline std::optional<folded> eval_slice(const fold_context& c) {
  const folded& data = c.in(0);
  const std::size_t rank = data.dims.size();
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (c.opset() < 10) {
    starts = c.op().attr_ints("starts", {});
    ends = c.op().attr_ints("ends", {});
    axes = c.op().attr_ints("axes", {});
  } else {
    starts = c.int_input(1, "starts");
    ends = c.int_input(2, "ends");
    if (c.has(3)) axes = c.int_input(3, "axes");
    if (c.has(4)) steps = c.int_input(4, "steps");
  }
  if (axes.empty())
    for (std::size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<std::int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail(errc::invalid_model, "starts, ends, axes and steps differ in length");
  std::vector<std::int64_t> first(rank, 0), step(rank, 1), dims = data.dims;
  std::vector<bool> seen(rank, false);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const std::size_t k = normalize_axis(axes[i], rank, c.op().context());
    if (seen[k]) c.fail(errc::invalid_model, "axis " + std::to_string(axes[i]) + " is sliced twice");
    seen[k] = true;
    const std::int64_t d = data.dims[k], s = steps[i];
    if (s == 0) c.fail(errc::invalid_model, "step 0 on axis " + std::to_string(axes[i]));
    std::int64_t b = starts[i], e = ends[i];
    // ONNX: negative positions count from the end, then clamp so the slice stays inside.
    if (b < 0) b += d;
    if (e < 0) e += d;
    std::int64_t count;
    if (s > 0) {
      b = std::clamp<std::int64_t>(b, 0, d);
      e = std::clamp<std::int64_t>(e, 0, d);
      count = e > b ? 1 + (e - b - 1) / s : 0;
    } else {
      b = std::clamp<std::int64_t>(b, 0, d - 1);
      e = std::clamp<std::int64_t>(e, -1, d - 1);
      const auto magnitude = static_cast<std::uint64_t>(-(s + 1)) + 1;
      count = b > e ? 1 + static_cast<std::int64_t>(static_cast<std::uint64_t>(b - e - 1) / magnitude) : 0;
    }
    first[k] = b;
    step[k] = s;
    dims[k] = count;
  }
  const std::size_t n = element_count(dims);
  if (!c.fits(n, data.type)) return std::nullopt;
  std::vector<std::size_t> offsets(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t flat = i, offset = 0, stride = 1;
    for (std::size_t k = rank; k-- > 0;) {
      const auto extent = static_cast<std::size_t>(dims[k]);
      const auto idx = static_cast<std::int64_t>(flat % extent);
      flat /= extent;
      offset += static_cast<std::size_t>(first[k] + idx * step[k]) * stride;
      stride *= static_cast<std::size_t>(data.dims[k]);
    }
    offsets[i] = offset;
  }
  return gather_elements(data, std::move(dims), offsets);
}

inline std::optional<folded> eval_cast(const fold_context& c) {
  const folded& x = c.in(0);
  const attribute* to = c.op().find_attribute("to");
  if (!to) c.fail(errc::invalid_model, "has no 'to' attribute");
  const std::int64_t code = c.op().attr_int("to", 0);
  if (!is_known_dtype(static_cast<std::int32_t>(code))) return std::nullopt;
  const auto type = static_cast<dtype>(code);
  if (!foldable_dtype(type)) return std::nullopt;
  folded r;
  r.type = type;
  r.dims = x.dims;
  const std::size_t n = x.size();
  if (r.is_real()) {
    r.reals.resize(n);
    for (std::size_t i = 0; i < n; ++i) r.reals[i] = round_to(type, x.is_real() ? x.reals[i] : static_cast<double>(x.ints[i]));
    return r;
  }
  r.ints.resize(n);
  std::int64_t lo, hi;
  int_range(type, lo, hi);
  for (std::size_t i = 0; i < n; ++i) {
    if (!x.is_real()) {
      r.ints[i] = wrap_to(type, x.ints[i]);
    } else if (type == dtype::bool_) {
      r.ints[i] = x.reals[i] != 0.0;
    } else {
      // Out-of-range float to integer is undefined in C++ and ONNX alike: leave it to the runtime.
      const double t = std::trunc(x.reals[i]);
      if (!(t >= static_cast<double>(lo) && t <= static_cast<double>(hi)) || t >= 9.2233720368547758e18) return std::nullopt;
      r.ints[i] = static_cast<std::int64_t>(t);
    }
  }
  return r;
}

inline std::optional<folded> eval_reshape(const fold_context& c) {
  const folded& data = c.in(0);
  std::vector<std::int64_t> want = c.opset() < 5 ? c.op().attr_ints("shape", {}) : c.int_input(1, "shape");
  const bool allow_zero = c.opset() >= 14 && c.op().attr_int("allowzero", 0) != 0;
  std::size_t known = 1;
  std::ptrdiff_t infer = -1;
  for (std::size_t k = 0; k < want.size(); ++k) {
    if (want[k] == 0 && !allow_zero) {
      if (k >= data.dims.size()) c.fail(errc::shape_mismatch, "shape copies dimension " + std::to_string(k) + " of a rank " + std::to_string(data.dims.size()) + " input");
      want[k] = data.dims[k];
    }
    if (want[k] == -1) {
      if (infer >= 0) c.fail(errc::invalid_model, "shape has more than one -1");
      infer = static_cast<std::ptrdiff_t>(k);
    } else if (want[k] < 0) {
      c.fail(errc::invalid_model, "shape has the negative dimension " + std::to_string(want[k]));
    } else {
      known *= static_cast<std::size_t>(want[k]);
    }
  }
  const std::size_t n = data.size();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      c.fail(errc::shape_mismatch, "cannot reshape " + dims_text(data.dims) + " to " + dims_text(want));
    want[static_cast<std::size_t>(infer)] = static_cast<std::int64_t>(n / known);
  } else if (known != n) {
    c.fail(errc::shape_mismatch, "cannot reshape " + dims_text(data.dims) + " to " + dims_text(want));
  }
  folded r = data;
  r.dims = std::move(want);
  return r;
}

inline std::optional<folded> eval_range(const fold_context& c) {
  const folded& start = c.in(0);
  const folded& limit = c.in(1);
  const folded& delta = c.in(2);
  require_same_type(c, start, limit);
  require_same_type(c, start, delta);
  if (start.size() != 1 || limit.size() != 1 || delta.size() != 1) c.fail(errc::shape_mismatch, "start, limit and delta must be scalars");
  folded r;
  r.type = start.type;
  if (r.is_real()) {
    const double s = start.reals[0], l = limit.reals[0], d = delta.reals[0];
    if (d == 0.0) c.fail(errc::invalid_value, "delta is 0");
    // The count as the spec computes it in the element type: ceil((limit - start) / delta).
    const double q = std::ceil(round_to(r.type, round_to(r.type, l - s) / d));
    if (!(q < 1e18)) return std::nullopt;
    const auto count = static_cast<std::size_t>(std::max(q, 0.0));
    if (!c.fits(count, r.type)) return std::nullopt;
    r.dims = {static_cast<std::int64_t>(count)};
    // output[i] = start + i * delta, the spec's definition (not a running sum).
    for (std::size_t i = 0; i < count; ++i) r.reals.push_back(round_to(r.type, s + static_cast<double>(i) * d));
    return r;
  }
  if (r.type == dtype::bool_) c.fail(errc::dtype_mismatch, "Range is not defined on bool");
  const std::int64_t s = start.ints[0], l = limit.ints[0], d = delta.ints[0];
  if (d == 0) c.fail(errc::invalid_value, "delta is 0");
  std::uint64_t count = 0;
  if (d > 0 && l > s) {
    const std::uint64_t span = static_cast<std::uint64_t>(l) - static_cast<std::uint64_t>(s);
    count = span / static_cast<std::uint64_t>(d) + (span % static_cast<std::uint64_t>(d) != 0);
  } else if (d < 0 && s > l) {
    const std::uint64_t span = static_cast<std::uint64_t>(s) - static_cast<std::uint64_t>(l);
    const std::uint64_t magnitude = static_cast<std::uint64_t>(-(d + 1)) + 1;
    count = span / magnitude + (span % magnitude != 0);
  }
  if (!c.fits(static_cast<std::size_t>(std::min<std::uint64_t>(count, SIZE_MAX)), r.type)) return std::nullopt;
  r.dims = {static_cast<std::int64_t>(count)};
  for (std::uint64_t i = 0; i < count; ++i)
    r.ints.push_back(wrap_to(r.type, static_cast<std::int64_t>(static_cast<std::uint64_t>(s) + i * static_cast<std::uint64_t>(d))));
  return r;
}

inline std::optional<folded> eval_constant_of_shape(const fold_context& c) {
  const auto& dims = c.int_input(0, "shape");
  for (auto d : dims)
    if (d < 0) c.fail(errc::invalid_model, "shape has the negative dimension " + std::to_string(d));
  folded fill;
  fill.type = dtype::float32;
  fill.reals = {0.0};
  if (const attribute* a = c.op().find_attribute("value")) {
    if (a->type != attribute_type::tensor || !a->t) c.fail(errc::invalid_model, "attribute 'value' is not a tensor");
    if (a->t->size() != 1) c.fail(errc::invalid_model, "attribute 'value' must hold one element, found " + std::to_string(a->t->size()));
    auto f = read_folded(*a->t);
    if (!f) return std::nullopt;
    fill = *f;
  }
  folded r;
  r.type = fill.type;
  r.dims = dims;
  const std::size_t n = element_count(dims);
  if (!c.fits(n, r.type)) return std::nullopt;
  if (r.is_real()) r.reals.assign(n, fill.reals[0]);
  else r.ints.assign(n, fill.ints[0]);
  return r;
}

inline std::optional<folded> eval_expand(const fold_context& c) {
  const folded& data = c.in(0);
  const std::vector<std::int64_t> want = c.int_input(1, "shape");
  const std::vector<std::int64_t> dims = broadcast_dims(c, {&data.dims, &want});
  const std::size_t n = element_count(dims);
  if (!c.fits(n, data.type)) return std::nullopt;
  std::vector<std::size_t> offsets(n);
  for (std::size_t i = 0; i < n; ++i) offsets[i] = broadcast_offset(i, dims, data.dims);
  return gather_elements(data, dims, offsets);
}

/// Shape (with opset 15's start/end) and Size, from the input's dimensions only.
inline folded shape_of(const node& n, const std::vector<std::int64_t>& dims, bool size) {
  folded r;
  r.type = dtype::int64;
  if (size) {
    r.ints = {static_cast<std::int64_t>(element_count(dims))};
    return r;
  }
  const auto rank = static_cast<std::int64_t>(dims.size());
  auto clamp_position = [&](std::int64_t p) { return std::clamp<std::int64_t>(p < 0 ? p + rank : p, 0, rank); };
  const std::int64_t b = clamp_position(n.attr_int("start", 0));
  const std::int64_t e = n.find_attribute("end") ? clamp_position(n.attr_int("end", rank)) : rank;
  for (std::int64_t k = b; k < e; ++k) r.ints.push_back(dims[static_cast<std::size_t>(k)]);
  r.dims = {static_cast<std::int64_t>(r.ints.size())};
  return r;
}

/// The ops fold_constants evaluates.
inline bool is_foldable_op(const node& n) {
  static const char* const ops[] = {"Shape", "Size",  "Gather",  "Unsqueeze", "Squeeze",         "Concat",
                                    "Slice", "Cast",  "Reshape", "Add",       "Sub",             "Mul",
                                    "Div",   "Range", "Equal",   "Where",     "ConstantOfShape", "Expand",
                                    "Identity"};
  for (const char* op : ops)
    if (n.is(op)) return true;
  return false;
}

/// Evaluates `c.op()` on its constant inputs (Shape and Size are handled by the caller).
inline std::optional<folded> evaluate(const fold_context& c) {
  const node& n = c.op();
  if (n.is("Add")) return eval_arithmetic(c, '+');
  if (n.is("Sub")) return eval_arithmetic(c, '-');
  if (n.is("Mul")) return eval_arithmetic(c, '*');
  if (n.is("Div")) return eval_arithmetic(c, '/');
  if (n.is("Gather")) return eval_gather(c);
  if (n.is("Unsqueeze")) return eval_unsqueeze(c);
  if (n.is("Squeeze")) return eval_squeeze(c);
  if (n.is("Concat")) return eval_concat(c);
  if (n.is("Slice")) return eval_slice(c);
  if (n.is("Cast")) return eval_cast(c);
  if (n.is("Reshape")) return eval_reshape(c);
  if (n.is("Range")) return eval_range(c);
  if (n.is("Equal")) return eval_equal(c);
  if (n.is("Where")) return eval_where(c);
  if (n.is("ConstantOfShape")) return eval_constant_of_shape(c);
  if (n.is("Expand")) return eval_expand(c);
  if (n.is("Identity")) return c.in(0);
  return std::nullopt;
}

}  // namespace quench::detail
