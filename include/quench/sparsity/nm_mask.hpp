#pragma once
// N:M masks as NVIDIA apex ASP computes them (m4n2_1d for 2:4; mn_1d_best for any N:M): keep the N
// of every M consecutive weights along the reduction axis whose magnitudes sum highest.
//
// Which axis: the one a GEMM reduces over, so that the sparse tensor core sees N:M along K. ASP's
// create_mask permutes a PyTorch Conv weight [K, C, R, S] to [R, S, K, C] and groups along C for
// every (k, r, s); a Linear [K, C] along C. nm_mask takes the axis explicitly and walks the
// weight in place ([outer, axis, inner] strides), so an ONNX MatMul weight [C, N] is grouped along
// axis 0 and a ConvTranspose weight [C, K/g, R, S] along axis 0 without a transposed copy.
// nm_axis_for gives the axis for each ONNX operator; asp_axis the one ASP uses for a PyTorch
// tensor of a given rank.
//
// Ties: ASP scores the six (C(M, N)) patterns in the iteration order of a Python set and keeps the
// first maximum (see detail/asp_pattern_order.hpp). For 2:4 an all-equal (or all-zero) group
// keeps positions 1 and 3; a group |w| = (3, 1, 1, 0) keeps 0 and 1. Scores are float32 sums as
// in ASP, so two pairs whose sums round to the same float are tied too (detail/nm_mask_ref.hpp).
//
// NaN and Inf are refused (errc::not_finite, naming the tensor and the element): ASP's scores are
// |w| @ pattern, where Inf * 0 is NaN and argmax then picks whatever NaN lands on.
//
//     quench::tensor w = ...;                                   // float32 [64, 128] Linear weight
//     quench::tensor mask = quench::sparsity::nm_mask(w, 1);    // uint8 [64, 128], 2 of 4 ones
//     quench::sparsity::apply_mask(w, mask);                    // the pruned weights become 0
//
// Thread safety: all functions are reentrant.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/sparsity/detail/asp_pattern_order.hpp"
#include "quench/sparsity/detail/nm_mask_avx2.hpp"
#include "quench/sparsity/detail/nm_mask_ref.hpp"
#include "quench/sparsity/nm_pattern.hpp"

namespace quench::detail {

inline std::string nm_coordinates(const shape& s, std::size_t flat) {
  std::string out = "[";
  std::vector<std::int64_t> idx(s.rank());
  for (std::size_t d = s.rank(); d-- > 0;) {
    const auto n = static_cast<std::size_t>(s[d]);
    idx[d] = n ? static_cast<std::int64_t>(flat % n) : 0;
    flat = n ? flat / n : 0;
  }
  for (std::size_t d = 0; d < idx.size(); ++d) out += (d ? ", " : "") + std::to_string(idx[d]);
  return out + "]";
}

[[noreturn]] inline void nm_throw_not_finite(const float* w, const shape& s, std::string_view name) {
  for (std::size_t i = 0; i < s.numel(); ++i)
    if (!nm_is_finite(w[i]))
      throw_error(errc::not_finite, tensor_context(name),
                  "element " + nm_coordinates(s, i) + " is " + (std::isnan(w[i]) ? "NaN" : "Inf") +
                      "; N:M masks need finite weights");
  throw_error(errc::not_finite, tensor_context(name), "non-finite weight");  // not reached
}

}  // namespace quench::detail

namespace quench::sparsity {

using detail::nm_layout;

/// The axis ASP groups along for a PyTorch weight of rank `rank`: 1-D tensors along their only
/// axis, 2-D Linear [K, C] and Conv [K, C, ...] along axis 1 (C).
constexpr std::size_t asp_axis(std::size_t rank) noexcept { return rank <= 1 ? 0 : 1; }

/// [outer, reduce, inner] of `s` around `axis`; throws out_of_range for a bad axis.
inline nm_layout nm_layout_of(const shape& s, std::size_t axis, const std::string& context = {}) {
  if (axis >= s.rank() && !(s.rank() == 0 && axis == 0))
    throw_error(errc::out_of_range, context, "axis " + std::to_string(axis) + " of a rank-" + std::to_string(s.rank()) + " tensor");
  nm_layout l;
  l.outer = s.outer(axis);
  l.reduce = s.rank() == 0 ? 1 : static_cast<std::size_t>(s[axis]);
  l.inner = s.inner(axis);
  return l;
}


/// Throws shape_mismatch (naming the tensor) unless `s[axis]` is a multiple of M.
inline void check_nm_shape(const shape& s, std::size_t axis, nm_pattern p, std::string_view name = {}) {
  check_nm_pattern(p, tensor_context(name));
  const nm_layout l = nm_layout_of(s, axis, tensor_context(name));
  if (l.reduce % static_cast<std::size_t>(p.m) != 0)
    throw_error(errc::shape_mismatch, tensor_context(name),
                "dimension " + std::to_string(axis) + " of shape " + to_string(s) + " has size " + std::to_string(l.reduce) +
                    ", not a multiple of " + std::to_string(p.m) + " as the " + to_string(p) + " pattern needs");
}

/// The noexcept kernel: mask bytes (1 keep, 0 prune) for the float weights `w` laid out as `l`
/// (l.reduce a multiple of p.m, p valid). Returns false if `w` holds NaN or Inf, the mask then
/// being incomplete. `rank` is asp_pattern_ranks(p.n, p.m), unused (may be null) for 2:4.
inline bool nm_mask_kernel(const float* w, std::uint8_t* mask, const nm_layout& l, nm_pattern p,
                           const std::uint16_t* rank, simd_target target = best_simd_target()) noexcept {
  if (!p.is_2_4()) return detail::nm_mask_ref(w, mask, l, p.n, p.m, rank);
#if QUENCH_ENABLE_SIMD
  switch (effective_simd_target(target)) {
    case simd_target::avx512: return detail::nm_mask_2_4_avx512(w, mask, l);
    case simd_target::avx2: return detail::nm_mask_2_4_avx2(w, mask, l);
    case simd_target::scalar: break;
  }
#else
  (void)target;
#endif
  return detail::nm_mask_2_4_ref(w, mask, l);
}

/// Writes into `mask` (same shape as `w`) the N:M mask of `w` grouped along `axis`. Throws
/// shape_mismatch when the shapes differ or `w.shape()[axis]` is not a multiple of M, and
/// not_finite for NaN/Inf, both naming `name`.
///
///     std::vector<std::uint8_t> m(w.size());
///     quench::sparsity::nm_mask(w.view<float>(), 1, quench::tensor_view<std::uint8_t>(m.data(), w.shape()));
inline void nm_mask(tensor_view<const float> w, std::size_t axis, tensor_view<std::uint8_t> mask, nm_pattern p = {},
                    std::string_view name = {}, simd_target target = best_simd_target()) {
  if (w.shape() != mask.shape())
    throw_shape_mismatch(tensor_context(name), "a mask of shape " + to_string(w.shape()), to_string(mask.shape()));
  check_nm_shape(w.shape(), axis, p, name);
  const nm_layout l = nm_layout_of(w.shape(), axis);
  std::vector<std::uint16_t> rank;
  if (!p.is_2_4()) rank = detail::asp_pattern_ranks(p.n, p.m);
  if (!nm_mask_kernel(w.data(), mask.data(), l, p, rank.data(), target)) detail::nm_throw_not_finite(w.data(), w.shape(), name);
}

/// The values of a float32, float16 or bfloat16 tensor as float32 (exact), which is what ASP scores
/// (`tensor.float()`); other types throw unsupported_dtype naming the tensor.
inline std::vector<float> float_values(const tensor& t) {
  std::vector<float> out(t.size());
  switch (t.dtype()) {
    case dtype::float32: {
      const auto v = t.view<float>();
      std::copy(v.begin(), v.end(), out.begin());
      break;
    }
    case dtype::float16: {
      const auto v = t.view<float16>();
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = v[i].to_float();
      break;
    }
    case dtype::bfloat16: {
      const auto v = t.view<bfloat16>();
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = v[i].to_float();
      break;
    }
    default:
      throw_error(errc::unsupported_dtype, tensor_context(t.name()),
                  "expected float, float16 or bfloat16 weights, found " + to_string(t.dtype()));
  }
  return out;
}

/// The N:M mask of a float32 / float16 / bfloat16 tensor along `axis`, as a uint8 tensor of the
/// same shape named "<name>_mask".
///
///     auto mask = quench::sparsity::nm_mask(conv_w, 1, {4, 8});   // 4:8 along C
inline tensor nm_mask(const tensor& w, std::size_t axis, nm_pattern p = {}, simd_target target = best_simd_target()) {
  tensor mask = tensor::uninitialized(dtype::uint8, w.shape(), w.name().empty() ? std::string{} : w.name() + "_mask");
  if (w.dtype() == dtype::float32) {
    nm_mask(w.view<float>(), axis, mask.view<std::uint8_t>(), p, w.name(), target);
  } else {
    const std::vector<float> f = float_values(w);
    nm_mask(tensor_view<const float>(f.data(), w.shape()), axis, mask.view<std::uint8_t>(), p, w.name(), target);
  }
  return mask;
}

/// Zeroes the elements of `w` whose mask byte is 0 (any element type except 4-bit ones; -0.0
/// becomes +0.0). Throws shape_mismatch when the shapes differ.
inline void apply_mask(tensor& w, const tensor& mask) {
  if (w.shape() != mask.shape())
    throw_shape_mismatch(tensor_context(w.name()), "a mask of shape " + to_string(w.shape()), to_string(mask.shape()));
  if (mask.dtype() != dtype::uint8 && mask.dtype() != dtype::bool_)
    throw_error(errc::dtype_mismatch, tensor_context(mask.name()), "expected a uint8 or bool mask, found " + to_string(mask.dtype()));
  if (is_sub_byte(w.dtype()))
    throw_error(errc::unsupported_dtype, tensor_context(w.name()), "masks of packed 4-bit tensors are not supported");
  const std::size_t width = storage_bytes(w.dtype(), 1);
  std::byte* data = w.bytes();
  const auto* m = reinterpret_cast<const std::uint8_t*>(mask.bytes());
  for (std::size_t i = 0; i < w.size(); ++i)
    if (!m[i]) std::memset(data + i * width, 0, width);
}

/// sum |w| over the kept elements and over all elements, in double: "retained magnitude", the figure
/// of merit of N:M masks and of channel permutations.
struct magnitude {
  double kept = 0, total = 0;
  /// kept / total (1 for an all-zero tensor).
  double fraction() const noexcept { return total > 0 ? kept / total : 1.0; }
};

/// The retained L1 magnitude of `w` under `mask` (uint8, same shape).
inline magnitude retained_magnitude(const tensor& w, const tensor& mask) {
  if (w.shape() != mask.shape())
    throw_shape_mismatch(tensor_context(w.name()), "a mask of shape " + to_string(w.shape()), to_string(mask.shape()));
  const std::vector<float> f = float_values(w);
  const auto* m = reinterpret_cast<const std::uint8_t*>(mask.bytes());
  magnitude r;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const double a = std::fabs(static_cast<double>(f[i]));
    r.total += a;
    if (m[i]) r.kept += a;
  }
  return r;
}

}  // namespace quench::sparsity
