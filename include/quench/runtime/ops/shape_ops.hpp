#pragma once
// Shape and data-movement operators: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout
// (inference), Transpose, Concat, Split, Slice, Gather, GatherElements, Expand, Tile, Pad,
// DepthToSpace, SpaceToDepth, Shape, Size, NonZero, Constant, ConstantOfShape, Range, Cast and
// CastLike, in every opset from 1 to 21 whose signature differs (attributes before, inputs after).
//
// Data movement is dtype-agnostic: elements are copied as bytes of their size, so these kernels
// serve bool, float16, float8 and quantized tensors alike. 4-bit tensors are unpacked to one
// byte per element around the kernel and packed again (`nibble_aware`).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/runtime/broadcast.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

namespace detail::shape_ops {

/// Every element type a tensor can hold (strings cannot be allocated).
constexpr std::uint32_t all_tensor_types = types::any & ~types::bit(dtype::string);

/// Bytes per element; 4-bit types must have been unpacked by nibble_aware first.
inline std::size_t elem_bytes(const op_context& ctx, dtype t) {
  if (is_sub_byte(t) || bit_width(t) == 0)
    ctx.fail(errc::unsupported_dtype, "element type " + to_string(t) + " is not supported by this kernel");
  return static_cast<std::size_t>(bit_width(t) / 8);
}

/// The values of a scalar or 1-D int32/int64 input (shapes, axes, pads, repeats, ...).
inline std::vector<std::int64_t> ints_of(const op_context& ctx, const tensor& t, const std::string& what) {
  if (t.rank() > 1)
    ctx.fail(errc::shape_mismatch, what + ": expected a 1-D tensor, found shape " + to_string(t.shape()));
  std::vector<std::int64_t> v(t.size());
  if (t.dtype() == dtype::int64) {
    const auto x = t.view<std::int64_t>();
    std::copy(x.begin(), x.end(), v.begin());
  } else if (t.dtype() == dtype::int32) {
    const auto x = t.view<std::int32_t>();
    std::copy(x.begin(), x.end(), v.begin());
  } else {
    ctx.fail(errc::dtype_mismatch, what + ": expected int64 or int32, found " + to_string(t.dtype()));
  }
  return v;
}

/// Input `i` as integers, or `fallback` when the optional input is omitted.
inline std::vector<std::int64_t> optional_ints(const op_context& ctx, std::size_t i, const std::string& what,
                                               std::vector<std::int64_t> fallback) {
  const tensor* t = ctx.input(i);
  return t ? ints_of(ctx, *t, what) : std::move(fallback);
}

/// One scalar (or one-element) input read as double; integers and floats accepted.
inline double scalar_of(const op_context& ctx, const tensor& t, const std::string& what) {
  if (t.size() != 1)
    ctx.fail(errc::shape_mismatch, what + ": expected one element, found shape " + to_string(t.shape()));
  return visit_numeric(t.dtype(), ctx,
                       [&](auto tag) { return static_cast<double>(t.view<decltype(tag)>()[0]); });
}

/// Resolves `axis` against `rank`, failing with the node as context.
inline std::size_t axis_of(const op_context& ctx, std::int64_t axis, std::size_t rank) {
  return normalize_axis(axis, rank, ctx.node().context());
}

/// Axes resolved against `rank`; a repeated axis is an error.
inline std::vector<std::size_t> axes_of(const op_context& ctx, const std::vector<std::int64_t>& axes,
                                        std::size_t rank) {
  std::vector<std::size_t> out;
  std::vector<bool> seen(rank, false);
  for (std::int64_t a : axes) {
    const std::size_t n = axis_of(ctx, a, rank);
    if (seen[n]) ctx.fail(errc::invalid_model, "axis " + std::to_string(a) + " is listed twice");
    seen[n] = true;
    out.push_back(n);
  }
  return out;
}

/// "[1, -1, 0]" for messages.
inline std::string list_string(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// Row-major element strides of `s`.
inline std::vector<std::int64_t> strides_of(const shape& s) {
  std::vector<std::int64_t> st(s.rank(), 1);
  for (std::size_t i = s.rank(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

template <std::size_t E>
inline void copy_elements(const std::byte* src, std::byte* dst, std::int64_t n,
                          std::int64_t stride) noexcept {
  // Fixed-size memcpy compiles to one load and store, without alignment or aliasing assumptions.
  for (std::int64_t j = 0; j < n; ++j)
    std::memcpy(dst + j * static_cast<std::int64_t>(E), src + j * stride * static_cast<std::int64_t>(E), E);
}

/// Copies `n` elements read `stride` elements apart in `src` to contiguous `dst`.
inline void copy_run(const std::byte* src, std::byte* dst, std::int64_t n, std::int64_t stride,
                     std::size_t esz) noexcept {
  if (stride == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * esz);
    return;
  }
  switch (esz) {
    case 1:
      return copy_elements<1>(src, dst, n, stride);
    case 2:
      return copy_elements<2>(src, dst, n, stride);
    case 4:
      return copy_elements<4>(src, dst, n, stride);
    case 8:
      return copy_elements<8>(src, dst, n, stride);
    default:
      for (std::int64_t j = 0; j < n; ++j)
        std::memcpy(dst + j * static_cast<std::int64_t>(esz),
                    src + j * stride * static_cast<std::int64_t>(esz), esz);
  }
}

/// Writes the view of `src` with dimensions `dims` and element strides `strides` (0 repeats an
/// element, negative walks backwards) contiguously to `dst`. Transpose, Slice, Expand, Tile and
/// the depth/space rearrangements are all such views.
inline void strided_copy(const std::byte* src, std::byte* dst, std::size_t esz,
                         const std::vector<std::int64_t>& dims,
                         const std::vector<std::int64_t>& strides) noexcept {
  // Drop unit axes and merge an axis into the previous one when they are contiguous, so the
  // inner run is as long as possible.
  std::vector<std::int64_t> d, s;
  for (std::size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 0) return;
    if (dims[k] == 1) continue;
    if (!d.empty() && s.back() == strides[k] * dims[k]) {
      d.back() *= dims[k];
      s.back() = strides[k];
      continue;
    }
    d.push_back(dims[k]);
    s.push_back(strides[k]);
  }
  if (d.empty()) {
    std::memcpy(dst, src, esz);
    return;
  }
  const std::size_t r = d.size();
  const std::int64_t n = d[r - 1], st = s[r - 1];
  const auto step = static_cast<std::int64_t>(esz);
  std::vector<std::int64_t> idx(r, 0);
  // When the innermost output axis walks the input with a stride, every element would come from
  // a new cache line. If another axis is contiguous in the input (a transpose), copy in square
  // tiles over the two: each input line read then serves a whole tile column.
  std::size_t c = r;
  if (st > 1 || st < -1)
    for (std::size_t k = 0; k + 1 < r; ++k)
      if (s[k] == 1) c = k;
  if (c < r) {
    constexpr std::int64_t tile = 16;
    std::vector<std::int64_t> os(r, 1);  // contiguous output strides
    for (std::size_t k = r - 1; k-- > 0;) os[k] = os[k + 1] * d[k + 1];
    std::int64_t so = 0, doff = 0;
    for (;;) {
      for (std::int64_t i0 = 0; i0 < d[c]; i0 += tile)
        for (std::int64_t j0 = 0; j0 < n; j0 += tile) {
          const std::int64_t i1 = std::min(i0 + tile, d[c]), j1 = std::min(j0 + tile, n);
          for (std::int64_t i = i0; i < i1; ++i)
            copy_run(src + (so + i + j0 * st) * step, dst + (doff + i * os[c] + j0) * step, j1 - j0, st, esz);
        }
      std::size_t k = r - 1;
      for (;;) {
        if (k == 0) return;
        --k;
        if (k == c) continue;
        if (++idx[k] < d[k]) {
          so += s[k];
          doff += os[k];
          break;
        }
        so -= s[k] * (d[k] - 1);
        doff -= os[k] * (d[k] - 1);
        idx[k] = 0;
      }
    }
  }
  std::int64_t off = 0;
  for (;;) {
    copy_run(src + off * step, dst, n, st, esz);
    dst += n * step;
    std::size_t k = r - 1;
    for (;;) {
      if (k == 0) return;
      --k;
      if (++idx[k] < d[k]) {
        off += s[k];
        break;
      }
      off -= s[k] * (d[k] - 1);
      idx[k] = 0;
    }
  }
}

/// A copy of `x` with shape `s` (same element count).
inline tensor reshaped(const tensor& x, shape s) {
  tensor y = x.clone();
  y.reshape(std::move(s));
  return y;
}

/// Runs `Kernel` with every int4/uint4 input unpacked to one uint8 per element (the raw nibble)
/// and packs the kernel's uint8 outputs back, so data-movement kernels only handle whole bytes.
template <void (*Kernel)(op_context&)>
void nibble_aware(op_context& ctx) {
  dtype packed = dtype::undefined;
  for (std::size_t i = 0; i < ctx.input_count(); ++i) {
    const tensor* t = ctx.input(i);
    if (!t || !is_sub_byte(t->dtype())) continue;
    if (packed != dtype::undefined && packed != t->dtype())
      ctx.fail(errc::dtype_mismatch, "inputs mix " + to_string(packed) + " and " + to_string(t->dtype()));
    packed = t->dtype();
  }
  if (packed == dtype::undefined) return Kernel(ctx);
  std::vector<tensor> unpacked(ctx.input_count());
  std::vector<const tensor*> ins(ctx.input_count());
  for (std::size_t i = 0; i < ctx.input_count(); ++i) {
    const tensor* t = ctx.input(i);
    ins[i] = t;
    if (!t || !is_sub_byte(t->dtype())) continue;
    unpacked[i] = tensor(dtype::uint8, t->shape());
    auto* u = reinterpret_cast<std::uint8_t*>(unpacked[i].bytes());
    const auto* p = reinterpret_cast<const std::uint8_t*>(t->bytes());
    for (std::size_t j = 0; j < t->size(); ++j) u[j] = get_nibble(p, j);
    ins[i] = &unpacked[i];
  }
  std::vector<tensor> outs(ctx.output_count());
  op_context inner(ctx.node(), ctx.opset(), std::move(ins), outs, ctx.threads());
  Kernel(inner);
  for (std::size_t o = 0; o < outs.size(); ++o) {
    if (outs[o].dtype() == dtype::undefined) continue;
    if (outs[o].dtype() != dtype::uint8) {
      ctx.set_output(o, std::move(outs[o]));
      continue;
    }
    tensor p(packed, outs[o].shape());
    pack_4bit(reinterpret_cast<const std::uint8_t*>(outs[o].bytes()), outs[o].size(),
              reinterpret_cast<std::uint8_t*>(p.bytes()));
    ctx.set_output(o, std::move(p));
  }
}

// ---- Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout ----------------------------------

/// The shape Reshape produces: 0 copies the input dimension (unless `allowzero`), -1 is inferred.
inline shape reshape_target(const op_context& ctx, const shape& in, const std::vector<std::int64_t>& spec,
                            bool allowzero) {
  std::vector<std::int64_t> out(spec.size());
  std::ptrdiff_t infer = -1;
  bool literal_zero = false;
  std::size_t known = 1;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    std::int64_t v = spec[i];
    if (v == -1) {
      if (infer >= 0) ctx.fail(errc::invalid_model, "shape " + list_string(spec) + " has more than one -1");
      infer = static_cast<std::ptrdiff_t>(i);
      continue;
    }
    if (v < -1) ctx.fail(errc::invalid_value, "shape entry " + std::to_string(v) + " is negative");
    if (v == 0) {
      if (allowzero) {
        literal_zero = true;
      } else {
        if (i >= in.rank())
          ctx.fail(errc::shape_mismatch, "shape entry " + std::to_string(i) +
                                             " is 0 (copy the input dimension) but the input " +
                                             to_string(in) + " has rank " + std::to_string(in.rank()));
        v = in[i];
      }
    }
    out[i] = v;
    known *= static_cast<std::size_t>(v);
  }
  if (infer >= 0) {
    // ONNX: with allowzero, a shape holding both 0 and -1 is invalid (the -1 cannot be inferred).
    if (literal_zero) ctx.fail(errc::invalid_model, "allowzero=1 and the shape holds both 0 and -1");
    if (known == 0 || in.numel() % known != 0)
      ctx.fail(errc::shape_mismatch, "cannot reshape " + to_string(in) + " (" + std::to_string(in.numel()) +
                                         " elements) with a -1 and the other dimensions multiplying to " +
                                         std::to_string(known));
    out[static_cast<std::size_t>(infer)] = static_cast<std::int64_t>(in.numel() / known);
  } else if (known != in.numel()) {
    ctx.fail(errc::shape_mismatch, "cannot reshape " + to_string(in) + " (" + std::to_string(in.numel()) +
                                       " elements) to " + std::to_string(known) + " elements");
  }
  return shape(std::move(out));
}

/// Reshape-1 to -4: the target is the `shape` attribute.
inline void run_reshape_attr(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto* a = ctx.node().find_attribute("shape");
  if (!a) ctx.fail(errc::invalid_model, "requires the 'shape' attribute before opset 5");
  ctx.set_output(0, reshaped(x, reshape_target(ctx, x.shape(), ctx.node().attr_ints("shape", {}), false)));
}

/// Reshape-5 and later: the target is input 1; allowzero from opset 14.
inline void run_reshape(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto spec = ints_of(ctx, ctx.required_input(1), "shape");
  const bool allowzero = ctx.node().attr_int("allowzero", 0) != 0;
  ctx.set_output(0, reshaped(x, reshape_target(ctx, x.shape(), spec, allowzero)));
}

inline void run_flatten(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto r = static_cast<std::int64_t>(x.rank());
  std::int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -r || axis > r)
    ctx.fail(errc::out_of_range, "axis " + std::to_string(axis) + " is outside [" + std::to_string(-r) +
                                     ", " + std::to_string(r) + "]");
  if (axis < 0) axis += r;
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < r; ++i) (i < axis ? outer : inner) *= x.shape()[static_cast<std::size_t>(i)];
  ctx.set_output(0, reshaped(x, shape{outer, inner}));
}

/// Squeeze axes: the `axes` attribute before opset 13, input 1 after; none = every unit axis.
template <bool AxesInput>
void run_squeeze(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const bool given = AxesInput ? ctx.input(1) != nullptr : ctx.node().find_attribute("axes") != nullptr;
  const auto axes = AxesInput ? optional_ints(ctx, 1, "axes", {}) : ctx.node().attr_ints("axes", {});
  std::vector<bool> drop(x.rank(), false);
  if (given) {
    for (std::size_t a : axes_of(ctx, axes, x.rank())) {
      if (x.shape()[a] != 1)
        ctx.fail(errc::shape_mismatch, "cannot squeeze axis " + std::to_string(a) + " of size " +
                                           std::to_string(x.shape()[a]) + " in " + to_string(x.shape()));
      drop[a] = true;
    }
  } else {
    for (std::size_t a = 0; a < x.rank(); ++a) drop[a] = x.shape()[a] == 1;
  }
  std::vector<std::int64_t> dims;
  for (std::size_t a = 0; a < x.rank(); ++a)
    if (!drop[a]) dims.push_back(x.shape()[a]);
  ctx.set_output(0, reshaped(x, shape(std::move(dims))));
}

/// Unsqueeze axes (required): the `axes` attribute before opset 13, input 1 after. Axes index
/// the output, whose rank is the input's plus the number of axes.
template <bool AxesInput>
void run_unsqueeze(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (!AxesInput && !ctx.node().find_attribute("axes"))
    ctx.fail(errc::invalid_model, "requires the 'axes' attribute");
  const auto axes =
      AxesInput ? ints_of(ctx, ctx.required_input(1), "axes") : ctx.node().attr_ints("axes", {});
  const std::size_t out_rank = x.rank() + axes.size();
  std::vector<bool> inserted(out_rank, false);
  for (std::size_t a : axes_of(ctx, axes, out_rank)) inserted[a] = true;
  std::vector<std::int64_t> dims(out_rank, 1);
  std::size_t k = 0;
  for (std::size_t a = 0; a < out_rank; ++a)
    if (!inserted[a]) dims[a] = x.shape()[k++];
  ctx.set_output(0, reshaped(x, shape(std::move(dims))));
}

inline void run_identity(op_context& ctx) { ctx.set_output(0, ctx.required_input(0).clone()); }

/// Identity also passes sequences and optionals (opsets 14, 16), which the executor does not hold:
/// a typed value without a tensor element type is one of those.
inline void check_identity(const node& n, std::int64_t) {
  if (const value* v = n.input(0); v && v->elem_type() == 0 && !v->type_residual().empty())
    throw_error(errc::unsupported_op, n.context(),
                "input '" + v->name() + "' is not a tensor (a sequence or optional)");
}

/// Dropout at inference is the identity; the optional mask is all ones (bool from opset 10, the
/// input's type before). Training mode (opset 12 input) with a non-zero ratio would draw random
/// numbers, which a deterministic reference executor does not do.
inline void run_dropout(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (ctx.opset() >= 12) {
    if (const tensor* training = ctx.input(2)) {
      if (training->dtype() != dtype::bool_ || training->size() != 1)
        ctx.fail(errc::invalid_model, "training_mode must be one bool");
      double ratio = 0.5;
      if (const tensor* r = ctx.input(1))
        ratio = visit_float(r->dtype(), ctx,
                            [&](auto tag) { return static_cast<double>(r->view<decltype(tag)>()[0]); });
      if (training->view<bool>()[0] && ratio != 0.0)
        ctx.unsupported("training_mode=true with ratio " + std::to_string(ratio) +
                        " (random dropout) is not supported");
    }
  }
  if (ctx.output_wanted(1)) {
    if (ctx.opset() >= 10) {
      tensor mask(dtype::bool_, x.shape());
      auto m = mask.view<bool>();
      std::fill(m.begin(), m.end(), true);
      ctx.set_output(1, std::move(mask));
    } else {
      ctx.set_output(1, visit_float(x.dtype(), ctx, [&](auto tag) {
                       using T = decltype(tag);
                       tensor mask(x.dtype(), x.shape());
                       auto m = mask.view<T>();
                       std::fill(m.begin(), m.end(), T(1));
                       return mask;
                     }));
    }
  }
  ctx.set_output(0, x.clone());
}

inline void check_dropout(const node& n, std::int64_t opset) {
  // A training_mode fed at run time cannot be proven false before running; only a constant can.
  if (opset < 12) return;
  const value* t = n.input(2);
  if (!t) return;
  const tensor* c = t->initializer();
  if (!c && t->producer() && t->producer()->is("Constant")) {
    const attribute* a = t->producer()->find_attribute("value");
    if (a && a->t) c = a->t.get();
  }
  if (c) {
    if (c->dtype() == dtype::bool_ && c->size() == 1 && !c->view<bool>()[0]) return;
    if (c->dtype() == dtype::bool_ && c->size() == 1 && c->view<bool>()[0]) {
      const value* r = n.input(1);
      const tensor* rt = r ? r->initializer() : nullptr;
      if (rt && rt->size() == 1 && rt->dtype() == dtype::float32 && rt->view<float>()[0] == 0.f) return;
      throw_error(errc::unsupported_op, n.context(), "training_mode=true (random dropout) is not supported");
    }
    return;
  }
  if (t->is_graph_input())
    throw_error(errc::unsupported_op, n.context(),
                "training_mode is a graph input; only a constant false (inference) is supported");
}

// ---- Transpose, Concat, Split, Slice ------------------------------------------------------------

inline void run_transpose(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const std::size_t r = x.rank();
  std::vector<std::int64_t> perm = ctx.node().attr_ints("perm", {});
  if (!ctx.node().find_attribute("perm")) {
    perm.resize(r);
    for (std::size_t i = 0; i < r; ++i) perm[i] = static_cast<std::int64_t>(r - 1 - i);
  }
  if (perm.size() != r)
    ctx.fail(errc::invalid_model, "perm has " + std::to_string(perm.size()) +
                                      " entries for an input of rank " + std::to_string(r));
  std::vector<bool> seen(r, false);
  for (std::int64_t p : perm) {
    if (p < 0 || p >= static_cast<std::int64_t>(r) || seen[static_cast<std::size_t>(p)])
      ctx.fail(errc::invalid_model, "perm is not a permutation of 0.." + std::to_string(r ? r - 1 : 0));
    seen[static_cast<std::size_t>(p)] = true;
  }
  const auto in_strides = strides_of(x.shape());
  std::vector<std::int64_t> dims(r), strides(r);
  for (std::size_t i = 0; i < r; ++i) {
    dims[i] = x.shape()[static_cast<std::size_t>(perm[i])];
    strides[i] = in_strides[static_cast<std::size_t>(perm[i])];
  }
  tensor y(x.dtype(), shape(dims));
  strided_copy(x.bytes(), y.bytes(), elem_bytes(ctx, x.dtype()), dims, strides);
  ctx.set_output(0, std::move(y));
}

inline void run_concat(op_context& ctx) {
  if (ctx.input_count() == 0) ctx.fail(errc::invalid_model, "needs at least one input");
  // Concat-1 defaults the axis to 1; from opset 4 it is required.
  if (ctx.opset() >= 4 && !ctx.node().find_attribute("axis"))
    ctx.fail(errc::invalid_model, "requires the 'axis' attribute");
  const tensor& first = ctx.required_input(0);
  const std::size_t r = first.rank();
  if (r == 0) ctx.fail(errc::shape_mismatch, "cannot concatenate scalars");
  const std::size_t axis = axis_of(ctx, ctx.node().attr_int("axis", 1), r);
  std::vector<std::int64_t> dims = first.shape().dims();
  dims[axis] = 0;
  for (std::size_t i = 0; i < ctx.input_count(); ++i) {
    const tensor& t = ctx.required_input(i);
    if (t.dtype() != first.dtype())
      ctx.fail(errc::dtype_mismatch, "input " + std::to_string(i) + " has element type " +
                                         to_string(t.dtype()) + ", input 0 " + to_string(first.dtype()));
    bool ok = t.rank() == r;
    for (std::size_t a = 0; ok && a < r; ++a) ok = a == axis || t.shape()[a] == first.shape()[a];
    if (!ok)
      ctx.fail(errc::shape_mismatch, "input " + std::to_string(i) + " has shape " + to_string(t.shape()) +
                                         ", which does not match input 0 " + to_string(first.shape()) +
                                         " outside axis " + std::to_string(axis));
    dims[axis] += t.shape()[axis];
  }
  tensor y(first.dtype(), shape(dims));
  const std::size_t esz = elem_bytes(ctx, first.dtype());
  const std::size_t outer = first.shape().outer(axis), inner = first.shape().inner(axis) * esz;
  std::byte* dst = y.bytes();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < ctx.input_count(); ++i) {
      const tensor& t = ctx.required_input(i);
      const std::size_t block = static_cast<std::size_t>(t.shape()[axis]) * inner;
      if (block) std::memcpy(dst, t.bytes() + o * block, block);
      dst += block;
    }
  ctx.set_output(0, std::move(y));
}

/// Split sizes: the `split` attribute (opsets 1-12; opset 1 also takes it as input 1) or input 1
/// (13+); otherwise equal parts, and from opset 18 `num_outputs` parts of ceil(dim / n), the
/// last one smaller.
inline void run_split(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() == 0) ctx.fail(errc::shape_mismatch, "cannot split a scalar");
  const std::size_t axis = axis_of(ctx, ctx.node().attr_int("axis", 0), x.rank());
  const std::int64_t dim = x.shape()[axis];
  const std::size_t n_out = ctx.output_count();
  std::vector<std::int64_t> split;
  bool given = false;
  if (ctx.opset() < 13 && ctx.node().find_attribute("split")) {
    split = ctx.node().attr_ints("split", {});
    given = true;
  } else if ((ctx.opset() >= 13 || ctx.opset() == 1) && ctx.input(1)) {
    split = ints_of(ctx, *ctx.input(1), "split");
    given = true;
  }
  if (given) {
    if (split.size() != n_out)
      ctx.fail(errc::invalid_model, "split has " + std::to_string(split.size()) + " entries for " +
                                        std::to_string(n_out) + " outputs");
    std::int64_t sum = 0;
    for (std::int64_t s : split) {
      if (s < 0) ctx.fail(errc::invalid_value, "split entry " + std::to_string(s) + " is negative");
      sum += s;
    }
    if (sum != dim)
      ctx.fail(errc::shape_mismatch, "split sums to " + std::to_string(sum) + " but axis " +
                                         std::to_string(axis) + " has " + std::to_string(dim));
  } else {
    const std::int64_t parts = ctx.opset() >= 18
                                   ? ctx.node().attr_int("num_outputs", static_cast<std::int64_t>(n_out))
                                   : static_cast<std::int64_t>(n_out);
    if (parts <= 0 || static_cast<std::size_t>(parts) != n_out)
      ctx.fail(errc::invalid_model, "num_outputs is " + std::to_string(parts) + " but the node has " +
                                        std::to_string(n_out) + " outputs");
    if (ctx.opset() < 18 && dim % parts != 0)
      ctx.fail(errc::shape_mismatch, "axis " + std::to_string(axis) + " of size " + std::to_string(dim) +
                                         " does not split into " + std::to_string(parts) + " equal parts");
    const std::int64_t chunk = (dim + parts - 1) / parts;
    std::int64_t left = dim;
    for (std::int64_t i = 0; i < parts; ++i) {
      split.push_back(std::min(chunk, left));
      left -= split.back();
    }
  }
  const std::size_t esz = elem_bytes(ctx, x.dtype());
  const std::size_t outer = x.shape().outer(axis), inner = x.shape().inner(axis) * esz;
  const std::size_t row = static_cast<std::size_t>(dim) * inner;
  std::size_t begin = 0;
  for (std::size_t k = 0; k < n_out; ++k) {
    const std::size_t block = static_cast<std::size_t>(split[k]) * inner;
    if (ctx.output_wanted(k)) {
      std::vector<std::int64_t> dims = x.shape().dims();
      dims[axis] = split[k];
      tensor y(x.dtype(), shape(dims));
      std::byte* dst = y.bytes();
      for (std::size_t o = 0; o < outer && block; ++o)
        std::memcpy(dst + o * block, x.bytes() + o * row + begin, block);
      ctx.set_output(k, std::move(y));
    }
    begin += block;
  }
}

/// Slices x with ONNX's clamping: negative starts/ends count from the end, then starts clamp to
/// [0, dim] ([0, dim-1] for negative steps) and ends to [0, dim] ([-1, dim-1] for negative steps).
inline void slice_impl(op_context& ctx, const tensor& x, const std::vector<std::int64_t>& starts,
                       const std::vector<std::int64_t>& ends, const std::vector<std::int64_t>& axes_in,
                       const std::vector<std::int64_t>& steps) {
  const std::size_t r = x.rank();
  if (starts.size() != ends.size())
    ctx.fail(errc::invalid_model,
             "starts has " + std::to_string(starts.size()) + " entries, ends " + std::to_string(ends.size()));
  std::vector<std::int64_t> axes = axes_in;
  if (axes.empty()) {
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  }
  if (axes.size() != starts.size()) ctx.fail(errc::invalid_model, "axes and starts have different lengths");
  if (!steps.empty() && steps.size() != starts.size())
    ctx.fail(errc::invalid_model, "steps and starts have different lengths");
  const auto in_strides = strides_of(x.shape());
  std::vector<std::int64_t> dims = x.shape().dims();
  std::vector<std::int64_t> strides = in_strides;
  std::int64_t offset = 0;
  const auto resolved = axes_of(ctx, axes, r);
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    const std::size_t a = resolved[i];
    const std::int64_t d = x.shape()[a];
    const std::int64_t step = steps.empty() ? 1 : steps[i];
    if (step == 0) ctx.fail(errc::invalid_value, "step 0 on axis " + std::to_string(a));
    std::int64_t b = starts[i], e = ends[i];
    if (b < 0) b += d;
    if (e < 0) e += d;
    std::int64_t count;
    if (d == 0) {
      count = 0;
    } else if (step > 0) {
      b = std::clamp<std::int64_t>(b, 0, d);
      e = std::clamp<std::int64_t>(e, 0, d);
      count = e > b ? (e - b + step - 1) / step : 0;
    } else {
      b = std::clamp<std::int64_t>(b, 0, d - 1);
      e = std::clamp<std::int64_t>(e, -1, d - 1);
      count = b > e ? (b - e + (-step) - 1) / (-step) : 0;
    }
    dims[a] = count;
    strides[a] = step * in_strides[a];
    if (count > 0) offset += b * in_strides[a];
  }
  tensor y(x.dtype(), shape(dims));
  const std::size_t esz = elem_bytes(ctx, x.dtype());
  if (y.size())
    strided_copy(x.bytes() + offset * static_cast<std::int64_t>(esz), y.bytes(), esz, dims, strides);
  ctx.set_output(0, std::move(y));
}

/// Slice-1 to -9: starts, ends and axes are attributes.
inline void run_slice_attr(op_context& ctx) {
  const node& n = ctx.node();
  if (!n.find_attribute("starts") || !n.find_attribute("ends"))
    ctx.fail(errc::invalid_model, "requires 'starts' and 'ends' attributes");
  slice_impl(ctx, ctx.required_input(0), n.attr_ints("starts", {}), n.attr_ints("ends", {}),
             n.attr_ints("axes", {}), {});
}

/// Slice-10 and later: starts, ends, axes and steps are inputs.
inline void run_slice(op_context& ctx) {
  slice_impl(ctx, ctx.required_input(0), ints_of(ctx, ctx.required_input(1), "starts"),
             ints_of(ctx, ctx.required_input(2), "ends"), optional_ints(ctx, 3, "axes", {}),
             optional_ints(ctx, 4, "steps", {}));
}

// ---- Gather, GatherElements, Expand, Tile --------------------------------------------------------

/// Index `i` of an int32/int64 indices tensor, negative counting from `dim`, checked in range.
inline std::vector<std::int64_t> indices_of(const op_context& ctx, const tensor& t, std::int64_t dim) {
  std::vector<std::int64_t> idx(t.size());
  if (t.dtype() == dtype::int64) {
    const auto v = t.view<std::int64_t>();
    std::copy(v.begin(), v.end(), idx.begin());
  } else if (t.dtype() == dtype::int32) {
    const auto v = t.view<std::int32_t>();
    std::copy(v.begin(), v.end(), idx.begin());
  } else {
    ctx.fail(errc::dtype_mismatch, "indices must be int32 or int64, found " + to_string(t.dtype()));
  }
  for (auto& i : idx) {
    if (i < -dim || i >= dim)
      ctx.fail(errc::out_of_range, "index " + std::to_string(i) + " is outside [" + std::to_string(-dim) +
                                       ", " + std::to_string(dim - 1) + "]");
    if (i < 0) i += dim;
  }
  return idx;
}

inline void run_gather(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& ind = ctx.required_input(1);
  if (x.rank() == 0) ctx.fail(errc::shape_mismatch, "cannot gather from a scalar");
  const std::size_t axis = axis_of(ctx, ctx.node().attr_int("axis", 0), x.rank());
  const std::int64_t dim = x.shape()[axis];
  const auto idx = indices_of(ctx, ind, dim);
  std::vector<std::int64_t> dims(x.shape().begin(), x.shape().begin() + static_cast<std::ptrdiff_t>(axis));
  dims.insert(dims.end(), ind.shape().begin(), ind.shape().end());
  dims.insert(dims.end(), x.shape().begin() + static_cast<std::ptrdiff_t>(axis) + 1, x.shape().end());
  tensor y(x.dtype(), shape(dims));
  const std::size_t esz = elem_bytes(ctx, x.dtype());
  const std::size_t outer = x.shape().outer(axis), inner = x.shape().inner(axis) * esz;
  std::byte* dst = y.bytes();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::int64_t i : idx) {
      if (inner)
        std::memcpy(dst,
                    x.bytes() + (o * static_cast<std::size_t>(dim) + static_cast<std::size_t>(i)) * inner,
                    inner);
      dst += inner;
    }
  ctx.set_output(0, std::move(y));
}

inline void run_gather_elements(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& ind = ctx.required_input(1);
  const std::size_t r = x.rank();
  if (r == 0 || ind.rank() != r)
    ctx.fail(errc::shape_mismatch, "data " + to_string(x.shape()) + " and indices " + to_string(ind.shape()) +
                                       " must have the same rank >= 1");
  const std::size_t axis = axis_of(ctx, ctx.node().attr_int("axis", 0), r);
  for (std::size_t a = 0; a < r; ++a)
    if (a != axis && ind.shape()[a] > x.shape()[a])
      ctx.fail(errc::shape_mismatch, "indices " + to_string(ind.shape()) + " exceed data " +
                                         to_string(x.shape()) + " on axis " + std::to_string(a));
  const auto idx = indices_of(ctx, ind, x.shape()[axis]);
  tensor y(x.dtype(), ind.shape());
  const std::size_t esz = elem_bytes(ctx, x.dtype());
  const auto xs = strides_of(x.shape());
  std::vector<std::int64_t> pos(r, 0);
  std::int64_t base = 0;  // data offset of `pos` without the gathered axis
  std::byte* dst = y.bytes();
  for (std::size_t k = 0; k < idx.size(); ++k) {
    std::memcpy(dst + k * esz, x.bytes() + static_cast<std::size_t>(base + idx[k] * xs[axis]) * esz, esz);
    for (std::size_t a = r; a-- > 0;) {
      const std::int64_t s = a == axis ? 0 : xs[a];
      if (++pos[a] < ind.shape()[a]) {
        base += s;
        break;
      }
      base -= s * (pos[a] - 1);
      pos[a] = 0;
    }
  }
  ctx.set_output(0, std::move(y));
}

inline void run_expand(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto dims = ints_of(ctx, ctx.required_input(1), "shape");
  for (std::int64_t d : dims)
    if (d < 0) ctx.fail(errc::invalid_value, "shape entry " + std::to_string(d) + " is negative");
  const shape target(dims);
  const shape out = broadcast_shapes({&x.shape(), &target}, ctx.node().context());
  const auto bs = broadcast_strides(x.shape(), out);
  std::vector<std::int64_t> strides(bs.begin(), bs.end());
  tensor y(x.dtype(), out);
  if (y.size()) strided_copy(x.bytes(), y.bytes(), elem_bytes(ctx, x.dtype()), out.dims(), strides);
  ctx.set_output(0, std::move(y));
}

inline void run_tile(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto reps = ints_of(ctx, ctx.required_input(1), "repeats");
  if (reps.size() != x.rank())
    ctx.fail(errc::shape_mismatch, "repeats has " + std::to_string(reps.size()) +
                                       " entries for an input of rank " + std::to_string(x.rank()));
  // Tiling is a view with dimensions (r0, d0, r1, d1, ...): the repeat axes have stride 0.
  const auto xs = strides_of(x.shape());
  std::vector<std::int64_t> dims, strides, out;
  for (std::size_t a = 0; a < x.rank(); ++a) {
    if (reps[a] < 0)
      ctx.fail(errc::invalid_value, "repeats entry " + std::to_string(reps[a]) + " is negative");
    dims.insert(dims.end(), {reps[a], x.shape()[a]});
    strides.insert(strides.end(), {0, xs[a]});
    out.push_back(reps[a] * x.shape()[a]);
  }
  tensor y(x.dtype(), shape(out));
  if (y.size()) strided_copy(x.bytes(), y.bytes(), elem_bytes(ctx, x.dtype()), dims, strides);
  ctx.set_output(0, std::move(y));
}

// ---- Pad -------------------------------------------------------------------------------------------

/// The bytes of one element of type `t` holding `v` (Pad's float `value` attribute before opset 11).
inline std::vector<std::byte> element_bytes_of(const op_context& ctx, dtype t, double v) {
  tensor e(t, shape{});
  switch (t) {
    case dtype::bool_:
      e.view<bool>()[0] = v != 0.0;
      break;
    case dtype::float16:
      e.view<float16>()[0] = float16(static_cast<float>(v));
      break;
    case dtype::bfloat16:
      e.view<bfloat16>()[0] = bfloat16(static_cast<float>(v));
      break;
    default:
      visit_numeric(t, ctx, [&](auto tag) {
        e.view<decltype(tag)>()[0] = static_cast<decltype(tag)>(v);
        return 0;
      });
  }
  return {e.bytes(), e.bytes() + e.nbytes()};
}

inline void run_pad(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const node& n = ctx.node();
  const std::size_t r = x.rank();
  const std::string mode = n.attr_string("mode", "constant");
  const std::size_t esz = elem_bytes(ctx, x.dtype());

  std::vector<std::int64_t> pads;
  std::vector<std::byte> fill(esz, std::byte{0});
  std::vector<std::size_t> axes;
  if (ctx.opset() < 11) {
    const char* name = ctx.opset() < 2 ? "paddings" : "pads";
    if (!n.find_attribute(name))
      ctx.fail(errc::invalid_model, std::string("requires the '") + name + "' attribute");
    pads = n.attr_ints(name, {});
    fill = element_bytes_of(ctx, x.dtype(), n.attr_float("value", 0.f));
  } else {
    pads = ints_of(ctx, ctx.required_input(1), "pads");
    if (const tensor* c = ctx.input(2); c && c->size() > 0) {
      if (c->dtype() != x.dtype())
        ctx.fail(errc::dtype_mismatch, "constant_value has element type " + to_string(c->dtype()) +
                                           ", data " + to_string(x.dtype()));
      if (c->size() != 1)
        ctx.fail(errc::shape_mismatch,
                 "constant_value must hold one element, found shape " + to_string(c->shape()));
      fill.assign(c->bytes(), c->bytes() + esz);
    }
    if (ctx.opset() >= 18 && ctx.input(3)) axes = axes_of(ctx, ints_of(ctx, *ctx.input(3), "axes"), r);
  }
  if (axes.empty() && !(ctx.opset() >= 18 && ctx.input(3)))
    for (std::size_t a = 0; a < r; ++a) axes.push_back(a);
  if (pads.size() != 2 * axes.size())
    ctx.fail(errc::invalid_model, "pads has " + std::to_string(pads.size()) + " entries, expected " +
                                      std::to_string(2 * axes.size()));
  std::vector<std::int64_t> begin(r, 0), end(r, 0);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    begin[axes[i]] = pads[i];
    end[axes[i]] = pads[i + axes.size()];
  }

  // Negative pads crop first (as ONNX Runtime does); the cropped input is then padded.
  std::vector<std::int64_t> out_dims(r), crop(r), kept(r);
  for (std::size_t a = 0; a < r; ++a) {
    crop[a] = begin[a] < 0 ? -begin[a] : 0;
    kept[a] = x.shape()[a] + std::min<std::int64_t>(begin[a], 0) + std::min<std::int64_t>(end[a], 0);
    if (kept[a] < 0)
      ctx.fail(errc::shape_mismatch, "negative pads remove more than the " + std::to_string(x.shape()[a]) +
                                         " elements of axis " + std::to_string(a));
    begin[a] = std::max<std::int64_t>(begin[a], 0);
    end[a] = std::max<std::int64_t>(end[a], 0);
    out_dims[a] = kept[a] + begin[a] + end[a];
    if (mode != "constant" && kept[a] == 0 && out_dims[a] > 0)
      ctx.fail(errc::shape_mismatch,
               "mode '" + mode + "' cannot pad axis " + std::to_string(a) + ", which is empty");
  }
  // Per axis, the input index each output index reads (-1: the constant).
  std::vector<std::vector<std::int64_t>> src(r);
  for (std::size_t a = 0; a < r; ++a) {
    const std::int64_t d = kept[a];
    src[a].resize(static_cast<std::size_t>(out_dims[a]));
    for (std::int64_t o = 0; o < out_dims[a]; ++o) {
      std::int64_t i = o - begin[a];
      if (i < 0 || i >= d) {
        if (mode == "constant") {
          i = -1;
        } else if (mode == "edge") {
          i = std::clamp<std::int64_t>(i, 0, d - 1);
        } else if (mode == "reflect") {
          // Mirror without repeating the edge element: period 2(d - 1), as numpy.pad 'reflect'.
          const std::int64_t p = 2 * (d - 1);
          if (p == 0) {
            i = 0;
          } else {
            i = ((i % p) + p) % p;
            if (i >= d) i = p - i;
          }
        } else {  // wrap
          i = ((i % d) + d) % d;
        }
      }
      src[a][static_cast<std::size_t>(o)] = i < 0 ? -1 : i + crop[a];
    }
  }
  tensor y(x.dtype(), shape(out_dims));
  if (y.size() == 0) return ctx.set_output(0, std::move(y));
  if (r == 0) return ctx.set_output(0, x.clone());
  const auto xs = strides_of(x.shape());
  const std::int64_t row = out_dims[r - 1];
  const auto& last = src[r - 1];
  std::vector<std::int64_t> pos(r, 0);
  std::byte* dst = y.bytes();
  const std::byte* xb = x.bytes();
  for (;;) {
    std::int64_t base = 0;
    bool constant_row = false;
    for (std::size_t a = 0; a + 1 < r; ++a) {
      const std::int64_t i = src[a][static_cast<std::size_t>(pos[a])];
      if (i < 0) constant_row = true;
      base += i * xs[a];
    }
    for (std::int64_t o = 0; o < row; ++o) {
      const std::int64_t i = last[static_cast<std::size_t>(o)];
      if (constant_row || i < 0)
        std::memcpy(dst + o * static_cast<std::int64_t>(esz), fill.data(), esz);
      else
        std::memcpy(dst + o * static_cast<std::int64_t>(esz),
                    xb + (base + i) * static_cast<std::int64_t>(esz), esz);
    }
    dst += row * static_cast<std::int64_t>(esz);
    std::size_t a = r - 1;
    for (;;) {
      if (a == 0) return ctx.set_output(0, std::move(y));
      --a;
      if (++pos[a] < out_dims[a]) break;
      pos[a] = 0;
    }
  }
}

inline void check_pad(const node& n, std::int64_t opset) {
  const std::string mode = n.attr_string("mode", "constant");
  if (mode == "constant" || mode == "reflect" || mode == "edge" || (mode == "wrap" && opset >= 19)) return;
  throw_error(errc::unsupported_op, n.context(),
              "mode '" + mode + "' is not supported" + (mode == "wrap" ? " before opset 19" : ""));
}

// ---- DepthToSpace, SpaceToDepth ------------------------------------------------------------------

inline void run_depth_to_space(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() != 4)
    ctx.fail(errc::shape_mismatch, "expected a 4-D input, found shape " + to_string(x.shape()));
  const std::int64_t b = ctx.node().attr_int("blocksize", 0);
  const std::string mode = ctx.opset() >= 11 ? ctx.node().attr_string("mode", "DCR") : "DCR";
  const std::int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  if (b <= 0 || C % (b * b) != 0)
    ctx.fail(errc::shape_mismatch, "blocksize " + std::to_string(b) + " does not divide the " +
                                       std::to_string(C) + " channels into blocksize^2 groups");
  const std::int64_t c = C / (b * b), hw = H * W;
  // Output viewed as (N, c, H, b, W, b); DCR reads channel (b1 * b + b2) * c + ci, CRD ci * b * b + b1 * b +
  // b2.
  const std::vector<std::int64_t> dims{N, c, H, b, W, b};
  std::vector<std::int64_t> strides;
  if (mode == "DCR")
    strides = {C * hw, hw, W, b * c * hw, 1, c * hw};
  else
    strides = {C * hw, b * b * hw, W, b * hw, 1, hw};
  tensor y(x.dtype(), shape{N, c, H * b, W * b});
  if (y.size()) strided_copy(x.bytes(), y.bytes(), elem_bytes(ctx, x.dtype()), dims, strides);
  ctx.set_output(0, std::move(y));
}

inline void check_depth_to_space(const node& n, std::int64_t opset) {
  const std::string mode = n.attr_string("mode", "DCR");
  if (opset >= 11 && mode != "DCR" && mode != "CRD")
    throw_error(errc::unsupported_op, n.context(), "mode '" + mode + "' is not DCR or CRD");
  if (n.attr_int("blocksize", 0) <= 0)
    throw_error(errc::invalid_model, n.context(), "requires a positive 'blocksize'");
}

inline void run_space_to_depth(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() != 4)
    ctx.fail(errc::shape_mismatch, "expected a 4-D input, found shape " + to_string(x.shape()));
  const std::int64_t b = ctx.node().attr_int("blocksize", 0);
  const std::int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  if (b <= 0 || H % b != 0 || W % b != 0)
    ctx.fail(errc::shape_mismatch, "blocksize " + std::to_string(b) + " does not divide the spatial size " +
                                       std::to_string(H) + "x" + std::to_string(W));
  // Output viewed as (N, b, b, C, H / b, W / b), read from the input viewed as (N, C, H / b, b, W / b, b).
  const std::vector<std::int64_t> dims{N, b, b, C, H / b, W / b};
  const std::vector<std::int64_t> strides{C * H * W, W, 1, H * W, b * W, b};
  tensor y(x.dtype(), shape{N, C * b * b, H / b, W / b});
  if (y.size()) strided_copy(x.bytes(), y.bytes(), elem_bytes(ctx, x.dtype()), dims, strides);
  ctx.set_output(0, std::move(y));
}

// ---- Shape, Size, NonZero ------------------------------------------------------------------------------

/// Shape; opset 15 adds start/end, clamped to [0, rank] after adding rank to negatives.
inline void run_shape(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const auto r = static_cast<std::int64_t>(x.rank());
  auto clamp_end = [r](std::int64_t v) { return std::clamp<std::int64_t>(v < 0 ? v + r : v, 0, r); };
  const std::int64_t b = clamp_end(ctx.node().attr_int("start", 0));
  const std::int64_t e = clamp_end(ctx.node().attr_int("end", r));
  const std::int64_t n = std::max<std::int64_t>(e - b, 0);
  tensor y(dtype::int64, shape{n});
  auto v = y.view<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = x.shape()[static_cast<std::size_t>(b + i)];
  ctx.set_output(0, std::move(y));
}

inline void run_size(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  tensor y(dtype::int64, shape{});
  y.view<std::int64_t>()[0] = static_cast<std::int64_t>(x.shape().numel());
  ctx.set_output(0, std::move(y));
}

/// NonZero: int64 [rank, count] of the non-zero positions in row-major order (a scalar counts as
/// rank 1, as numpy.nonzero and ONNX Runtime treat it).
inline void run_nonzero(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  std::vector<std::size_t> hits;
  auto scan = [&](auto tag) {
    using T = decltype(tag);
    const auto v = x.view<T>();
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i] != T(0)) hits.push_back(i);
    return 0;
  };
  if (x.dtype() == dtype::bool_)
    scan(bool{});
  else
    visit_numeric(x.dtype(), ctx, scan);
  const std::size_t r = std::max<std::size_t>(x.rank(), 1);
  const auto n = static_cast<std::int64_t>(hits.size());
  tensor y(dtype::int64, shape{static_cast<std::int64_t>(r), n});
  auto out = y.view<std::int64_t>();
  for (std::size_t k = 0; k < hits.size(); ++k) {
    std::size_t rest = hits[k];
    for (std::size_t a = x.rank(); a-- > 0;) {
      const auto d = static_cast<std::size_t>(x.shape()[a]);
      out[a * hits.size() + k] = static_cast<std::int64_t>(rest % d);
      rest /= d;
    }
    if (x.rank() == 0) out[k] = 0;
  }
  ctx.set_output(0, std::move(y));
}

// ---- Constant, ConstantOfShape, Range ---------------------------------------------------------------------

inline void run_constant(op_context& ctx) {
  const node& n = ctx.node();
  if (const attribute* a = n.find_attribute("value")) {
    if (!a->t) ctx.fail(errc::invalid_model, "attribute 'value' is not a tensor");
    return ctx.set_output(0, a->t->clone());
  }
  if (const attribute* a = n.find_attribute("value_float"))
    return ctx.set_output(0, tensor::from<float>(shape{}, {a->f}));
  if (const attribute* a = n.find_attribute("value_int"))
    return ctx.set_output(0, tensor::from<std::int64_t>(shape{}, {a->i}));
  if (const attribute* a = n.find_attribute("value_floats")) {
    tensor y(dtype::float32, shape{static_cast<std::int64_t>(a->floats.size())});
    std::copy(a->floats.begin(), a->floats.end(), y.view<float>().data());
    return ctx.set_output(0, std::move(y));
  }
  if (const attribute* a = n.find_attribute("value_ints")) {
    tensor y(dtype::int64, shape{static_cast<std::int64_t>(a->ints.size())});
    std::copy(a->ints.begin(), a->ints.end(), y.view<std::int64_t>().data());
    return ctx.set_output(0, std::move(y));
  }
  ctx.unsupported("has none of the attributes value, value_float(s), value_int(s)");
}

inline void check_constant(const node& n, std::int64_t) {
  for (const char* name : {"value", "value_float", "value_floats", "value_int", "value_ints"})
    if (n.find_attribute(name)) {
      const attribute* a = n.find_attribute(name);
      if (std::string(name) == "value" && !a->t)
        throw_error(errc::unsupported_op, n.context(), "attribute 'value' is not a dense tensor");
      return;
    }
  throw_error(errc::unsupported_op, n.context(),
              "only value, value_float(s) and value_int(s) are supported (not strings or sparse tensors)");
}

inline void run_constant_of_shape(op_context& ctx) {
  const auto dims = ints_of(ctx, ctx.required_input(0), "shape");
  for (std::int64_t d : dims)
    if (d < 0) ctx.fail(errc::invalid_value, "shape entry " + std::to_string(d) + " is negative");
  const attribute* a = ctx.node().find_attribute("value");
  if (!a) return ctx.set_output(0, tensor(dtype::float32, shape(dims)));  // default: float zeros
  if (!a->t || a->t->size() != 1)
    ctx.fail(errc::invalid_model, "attribute 'value' must be a one-element tensor");
  const tensor& v = *a->t;
  tensor y(v.dtype(), shape(dims));
  const std::size_t esz = elem_bytes(ctx, v.dtype());
  std::byte* dst = y.bytes();
  for (std::size_t i = 0; i < y.size(); ++i) std::memcpy(dst + i * esz, v.bytes(), esz);
  ctx.set_output(0, std::move(y));
}

/// Range: max(ceil((limit - start) / delta), 0) elements start + i * delta, computed in the
/// element type as numpy.arange does.
inline void run_range(op_context& ctx) {
  const tensor& s = ctx.required_input(0);
  const tensor& l = ctx.required_input(1);
  const tensor& d = ctx.required_input(2);
  if (s.dtype() != l.dtype() || s.dtype() != d.dtype())
    ctx.fail(errc::dtype_mismatch, "start, limit and delta must have the same element type");
  for (const tensor* t : {&s, &l, &d})
    if (t->size() != 1)
      ctx.fail(errc::shape_mismatch,
               "start, limit and delta must be scalars, found shape " + to_string(t->shape()));
  ctx.set_output(
      0, visit_numeric(s.dtype(), ctx, [&](auto tag) {
        using T = decltype(tag);
        const T start = s.view<T>()[0], limit = l.view<T>()[0], delta = d.view<T>()[0];
        if (delta == T(0)) ctx.fail(errc::invalid_value, "delta is 0");
        std::int64_t n;
        const double count =
            std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
        // A non-finite bound or a count beyond any memory is a broken model, not an allocation to try.
        if (!(count < 1e12))
          ctx.fail(errc::invalid_value, "start, limit and delta give " + std::to_string(count) + " elements");
        n = count > 0 ? static_cast<std::int64_t>(count) : 0;
        tensor y(s.dtype(), shape{n});
        auto v = y.view<T>();
        for (std::int64_t i = 0; i < n; ++i)
          v[static_cast<std::size_t>(i)] = static_cast<T>(start + static_cast<T>(i) * delta);
        return y;
      }));
}

// ---- Cast, CastLike ------------------------------------------------------------------------------------

inline bool is_narrow_float(dtype t) noexcept {
  return t == dtype::float16 || t == dtype::bfloat16 || is_float8(t);
}

inline bool is_native(dtype t) noexcept {
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
    case dtype::uint64:
    case dtype::bool_:
      return true;
    default:
      return false;
  }
}

/// Calls f(T{}) for the element types C++ converts with static_cast.
template <class F>
decltype(auto) visit_native(dtype t, const op_context& ctx, F&& f) {
  if (t == dtype::bool_) return f(bool{});
  return visit_numeric(t, ctx, std::forward<F>(f));
}

/// float -> integer as ONNX Runtime and numpy behave on x86-64, where C++ leaves NaN and
/// out-of-range values undefined: the truncating conversion to int32 (int64 for 64-bit targets)
/// gives the "integer indefinite" minimum for them, and narrower types keep its low bits.
/// Unsigned 32/64-bit targets convert values from 2^31 (2^63) up as x - 2^31 with the top bit
/// set, the sequences compilers emit; so +inf gives 0, -inf and large negatives 2^31 (2^63), and
/// NaN 0 for uint32 but 2^63 for uint64.
template <class To, class From>
To float_to_int(From v) noexcept {
  const double d = static_cast<double>(v);
  auto cvtt32 = [](double x) -> std::int32_t {
    return (x > -2147483649.0 && x < 2147483648.0) ? static_cast<std::int32_t>(x)
                                                   : std::numeric_limits<std::int32_t>::min();
  };
  auto cvtt64 = [](double x) -> std::int64_t {
    return (x >= -9223372036854775808.0 && x < 9223372036854775808.0)
               ? static_cast<std::int64_t>(x)
               : std::numeric_limits<std::int64_t>::min();
  };
  if constexpr (std::is_same_v<To, std::uint32_t>) {
    if (d < 2147483648.0) return static_cast<std::uint32_t>(cvtt32(d));
    return static_cast<std::uint32_t>(cvtt32(d - 2147483648.0)) ^ 0x80000000u;
  } else if constexpr (std::is_same_v<To, std::uint64_t>) {
    if (!(d >= 9223372036854775808.0)) return static_cast<std::uint64_t>(cvtt64(d));  // NaN: 2^63
    return static_cast<std::uint64_t>(cvtt64(d - 9223372036854775808.0)) ^ 0x8000000000000000u;
  } else if constexpr (sizeof(To) <= 4) {
    return static_cast<To>(cvtt32(d));
  } else {
    return static_cast<To>(cvtt64(d));
  }
}

template <class To, class From>
To convert_native(From v) noexcept {
  if constexpr (std::is_same_v<To, bool>)
    return v != From(0);  // NaN converts to true, as in numpy
  else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>)
    return float_to_int<To>(v);
  else
    return static_cast<To>(v);
}

/// d rounded to float with round-to-odd: rounding that float once more to a format of at most
/// 22 significant bits (float16, bfloat16, float8) then gives exactly d rounded directly, with no
/// double-rounding error.
inline float round_to_odd_float(double d) noexcept {
  float f = static_cast<float>(d);
  if (std::isnan(d) || static_cast<double>(f) == d) return f;
  if (std::isinf(f)) return std::copysign(std::numeric_limits<float>::max(), static_cast<float>(d));
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) bits -= 1;  // truncate toward zero
  bits |= 1;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Exact widening of float16/bfloat16/float8 storage to float.
inline void narrow_to_float(const tensor& x, float* out) {
  const std::size_t n = x.size();
  switch (x.dtype()) {
    case dtype::float16:
      return convert(x.view<float16>().data(), out, n);
    case dtype::bfloat16:
      return convert(x.view<bfloat16>().data(), out, n);
    case dtype::float8e4m3fn:
      return convert(x.view<float8e4m3fn>().data(), out, n);
    case dtype::float8e4m3fnuz:
      return convert(x.view<float8e4m3fnuz>().data(), out, n);
    case dtype::float8e5m2:
      return convert(x.view<float8e5m2>().data(), out, n);
    case dtype::float8e5m2fnuz:
      return convert(x.view<float8e5m2fnuz>().data(), out, n);
    default:
      break;
  }
}

/// float to float16/bfloat16/float8 storage, round to nearest even (`saturate` for float8).
inline void float_to_narrow(const float* in, tensor& y, bool saturate) {
  const std::size_t n = y.size();
  switch (y.dtype()) {
    case dtype::float16:
      return convert(in, y.view<float16>().data(), n);
    case dtype::bfloat16:
      return convert(in, y.view<bfloat16>().data(), n);
    case dtype::float8e4m3fn:
      return convert(in, y.view<float8e4m3fn>().data(), n, saturate);
    case dtype::float8e4m3fnuz:
      return convert(in, y.view<float8e4m3fnuz>().data(), n, saturate);
    case dtype::float8e5m2:
      return convert(in, y.view<float8e5m2>().data(), n, saturate);
    case dtype::float8e5m2fnuz:
      return convert(in, y.view<float8e5m2fnuz>().data(), n, saturate);
    default:
      break;
  }
}

/// ONNX Cast between every non-string, byte-addressable type. Narrow floats go through float,
/// which holds them exactly; other sources reach narrow floats through round_to_odd_float so the
/// result is rounded once.
inline tensor cast_tensor(const op_context& ctx, const tensor& x, dtype to, bool saturate) {
  const dtype from = x.dtype();
  auto supported = [](dtype t) { return is_native(t) || is_narrow_float(t); };
  if (!supported(from) || !supported(to))
    ctx.fail(errc::unsupported_dtype,
             "cast from " + to_string(from) + " to " + to_string(to) + " is not supported");
  if (from == to) return x.clone();
  if (is_narrow_float(from)) {
    tensor f(dtype::float32, x.shape());
    narrow_to_float(x, f.view<float>().data());
    return to == dtype::float32 ? std::move(f) : cast_tensor(ctx, f, to, saturate);
  }
  tensor y(to, x.shape());
  if (is_narrow_float(to)) {
    std::vector<float> tmp(x.size());
    if (from == dtype::float32) {
      const auto v = x.view<float>();
      std::copy(v.begin(), v.end(), tmp.begin());
    } else {
      visit_native(from, ctx, [&](auto tag) {
        const auto v = x.view<decltype(tag)>();
        for (std::size_t i = 0; i < v.size(); ++i) tmp[i] = round_to_odd_float(static_cast<double>(v[i]));
        return 0;
      });
    }
    float_to_narrow(tmp.data(), y, saturate);
    return y;
  }
  visit_native(from, ctx, [&](auto ftag) {
    using From = decltype(ftag);
    const auto v = x.view<From>();
    return visit_native(to, ctx, [&](auto ttag) {
      using To = decltype(ttag);
      auto o = y.view<To>();
      for (std::size_t i = 0; i < v.size(); ++i) o[i] = convert_native<To>(v[i]);
      return 0;
    });
  });
  return y;
}

/// Cast-1 to -5 name the target type as a string.
inline dtype cast_target_from_name(const std::string& s) {
  static const std::pair<const char*, dtype> names[] = {
      {"FLOAT", dtype::float32},  {"UINT8", dtype::uint8},   {"INT8", dtype::int8},
      {"UINT16", dtype::uint16},  {"INT16", dtype::int16},   {"INT32", dtype::int32},
      {"INT64", dtype::int64},    {"BOOL", dtype::bool_},    {"FLOAT16", dtype::float16},
      {"DOUBLE", dtype::float64}, {"UINT32", dtype::uint32}, {"UINT64", dtype::uint64}};
  for (const auto& [name, t] : names)
    if (s == name) return t;
  return dtype::undefined;
}

inline dtype cast_target(const node& n, std::int64_t opset) {
  const attribute* a = n.find_attribute("to");
  if (!a) throw_error(errc::invalid_model, n.context(), "requires the 'to' attribute");
  if (opset < 6 && a->type == attribute_type::string) return cast_target_from_name(a->s);
  const std::int64_t t = n.attr_int("to", 0);
  if (t < 0 || t > 1000 || !is_known_dtype(static_cast<std::int32_t>(t))) return dtype::undefined;
  return static_cast<dtype>(t);
}

inline void check_cast(const node& n, std::int64_t opset) {
  const dtype to = cast_target(n, opset);
  if (!is_native(to) && !is_narrow_float(to))
    throw_error(errc::unsupported_op, n.context(),
                "cast to " + (to == dtype::undefined ? std::string("this type") : to_string(to)) +
                    " is not supported");
  if (const value* in = n.input(0); in && in->elem_type() != 0) {
    const dtype from = in->dtype();
    if (!is_native(from) && !is_narrow_float(from))
      throw_error(errc::unsupported_op, n.context(),
                  "cast from element type " + std::to_string(in->elem_type()) + " is not supported");
  }
}

inline void run_cast(op_context& ctx) {
  const bool saturate = ctx.opset() >= 19 ? ctx.node().attr_int("saturate", 1) != 0 : true;
  ctx.set_output(0, cast_tensor(ctx, ctx.required_input(0), cast_target(ctx.node(), ctx.opset()), saturate));
}

inline void run_cast_like(op_context& ctx) {
  const bool saturate = ctx.opset() >= 19 ? ctx.node().attr_int("saturate", 1) != 0 : true;
  ctx.set_output(0, cast_tensor(ctx, ctx.required_input(0), ctx.required_input(1).dtype(), saturate));
}

inline void check_cast_like(const node& n, std::int64_t) {
  for (std::size_t i = 0; i < 2; ++i)
    if (const value* v = n.input(i);
        v && v->elem_type() != 0 && !is_native(v->dtype()) && !is_narrow_float(v->dtype()))
      throw_error(errc::unsupported_op, n.context(),
                  "input " + std::to_string(i) + " has element type " + std::to_string(v->elem_type()) +
                      ", which Cast does not support");
}

/// An attribute the operator turned into an input at opset `since` would be silently ignored by
/// the input-form kernel: such a model is invalid.
inline void reject_moved_attributes(const node& n, std::initializer_list<const char*> names,
                                    std::int64_t since) {
  for (const char* name : names)
    if (n.find_attribute(name))
      throw_error(errc::invalid_model, n.context(),
                  std::string("has a '") + name + "' attribute, which is an input from opset " +
                      std::to_string(since));
}

/// Rejects a Split whose sizes cannot come from the attribute or input of its opset.
inline void check_split(const node& n, std::int64_t opset) {
  if (opset >= 13) reject_moved_attributes(n, {"split"}, 13);
  if (opset >= 18 && n.find_attribute("num_outputs") && n.input(1))
    throw_error(errc::invalid_model, n.context(), "gives both the 'split' input and 'num_outputs'");
}

}  // namespace detail::shape_ops

/// Registers the shape and data-movement kernels.
inline void register_shape_ops(op_registry& r) {
  using namespace detail::shape_ops;
  constexpr std::uint32_t all = all_tensor_types;
  r.add("Reshape", run_reshape_attr, all, nullptr, 1, 4);
  r.add(
      "Reshape", run_reshape, all,
      [](const node& n, std::int64_t) { reject_moved_attributes(n, {"shape"}, 5); }, 5);
  r.add("Flatten", run_flatten, all);
  r.add("Squeeze", run_squeeze<false>, all, nullptr, 1, 12);
  r.add(
      "Squeeze", run_squeeze<true>, all,
      [](const node& n, std::int64_t) { reject_moved_attributes(n, {"axes"}, 13); }, 13);
  r.add("Unsqueeze", run_unsqueeze<false>, all, nullptr, 1, 12);
  r.add(
      "Unsqueeze", run_unsqueeze<true>, all,
      [](const node& n, std::int64_t) { reject_moved_attributes(n, {"axes"}, 13); }, 13);
  r.add("Identity", run_identity, all, check_identity);
  r.add("Dropout", run_dropout, all, check_dropout);
  r.add("Transpose", nibble_aware<run_transpose>, all);
  r.add("Concat", nibble_aware<run_concat>, all);
  r.add("Split", nibble_aware<run_split>, all, check_split);
  r.add("Slice", nibble_aware<run_slice_attr>, all, nullptr, 1, 9);
  r.add(
      "Slice", nibble_aware<run_slice>, all,
      [](const node& n, std::int64_t) {
        reject_moved_attributes(n, {"starts", "ends", "axes"}, 10);
      },
      10);
  r.add("Gather", nibble_aware<run_gather>, all);
  r.add("GatherElements", nibble_aware<run_gather_elements>, all, nullptr, 11);
  r.add("Expand", nibble_aware<run_expand>, all, nullptr, 8);
  r.add("Tile", nibble_aware<run_tile>, all, nullptr, 6);
  r.add("Pad", nibble_aware<run_pad>, all, check_pad, 1, 10);
  r.add(
      "Pad", nibble_aware<run_pad>, all,
      [](const node& n, std::int64_t opset) {
        check_pad(n, opset);
        reject_moved_attributes(n, {"pads", "value"}, 11);
      },
      11);
  r.add("DepthToSpace", nibble_aware<run_depth_to_space>, all, check_depth_to_space);
  r.add("SpaceToDepth", nibble_aware<run_space_to_depth>, all);
  r.add("Shape", run_shape, all);
  r.add("Size", run_size, all);
  r.add("NonZero", run_nonzero, types::numeric | types::boolean, nullptr, 9);
  r.add("Constant", run_constant, all, check_constant);
  r.add("ConstantOfShape", run_constant_of_shape, types::bit(dtype::int64), nullptr, 9);
  r.add("Range", run_range, types::numeric, nullptr, 11);
  r.add("Cast", run_cast, all, check_cast, 1, 5);
  r.add("Cast", run_cast, all, check_cast, 6);
  r.add("CastLike", run_cast_like, all, check_cast_like, 15);
}

}  // namespace quench::runtime
