#pragma once
// quantize: ONNX QuantizeLinear (opsets 10, 13, 19, 21), bit-exact.
//
//   integer types  y = saturate(round_half_even(x / scale) + zero_point)
//                  saturate clamps to the type's whole range (int8 [-128, 127], int4 [-8, 7], ...)
//   float8 types   y = cast(x / scale) rounded to nearest even; `saturate` (default true) maps
//                  out-of-range values and +-Inf to +-max (but Inf -> NaN for the FNUZ types), and
//                  without saturate to NaN (Inf for e5m2). See quench/numeric/float8.hpp.
//   int4/uint4     packed two per byte, first element in the low nibble (onnx.proto).
//
// x / scale is a float32 division, also for float16/bfloat16 inputs (converted exactly first), as
// ONNX Runtime computes it. NaN inputs give qmin for the integer types (ONNX leaves this
// undefined; ONNX Runtime 1.30 gives qmin) and NaN for float8.
//
// Where ONNX Runtime 1.30 deviates from the ONNX spec, quench follows the spec: FNUZ float8 with
// saturate maps +-Inf to NaN (ORT: +-max); float8e5m2 without saturate maps finite values that
// round past 57344 to +-Inf (ORT: NaN); quotients beyond the int32 range saturate (ORT's scalar
// fallbacks, e.g. for float16 input or blocked scales, wrap). tests/onnx/quantize_ort_test.cpp
// counts each case.
//
// Input: float32, float16 or bfloat16. Output: int8, uint8, int16, uint16, int4, uint4 or a
// float8 type (QuantizeLinear never produces int32). The fast paths use AVX2 or AVX-512 when the
// CPU has them and give the same bits as the scalar path.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/quant/detail/plan.hpp"
#include "quench/quant/detail/quantize_kernels.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

namespace detail {

inline void check_quantize_output_type(const qparams& p, std::string_view context) {
  if (p.type == dtype::int32)
    throw_error(errc::unsupported_dtype, std::string(context),
                "expected a QuantizeLinear output type (int8, uint8, int16, uint16, int4, uint4 or float8), "
                "found int32 (ONNX quantizes to int32 only inside a bias computation)");
}

template <class In>
inline void quantize_checked(const In* x, const shape& s, const qparams& p, void* y, std::size_t y_bytes,
                             std::string_view context, simd_target target) {
  validate(p, s, context);
  check_quantize_output_type(p, context);
  const std::size_t need = storage_bytes(p.type, s.numel());
  if (y_bytes < need)
    throw_error(errc::invalid_argument, std::string(context),
                "expected an output buffer of at least " + std::to_string(need) + " bytes for " +
                    std::to_string(s.numel()) + " " + to_string(p.type) + " elements, found " +
                    std::to_string(y_bytes));
  if (need == 0) return;
  // An odd 4-bit count leaves the high nibble of the last byte as padding: ONNX writes it as 0.
  if (is_sub_byte(p.type) && (s.numel() & 1)) static_cast<std::uint8_t*>(y)[need - 1] = 0;
  quantize_kernel(x, make_plan(p, s), p.type, p.saturate, y, effective_simd_target(target));
}

}  // namespace detail

/// Quantizes `x` into `y`, which holds `storage_bytes(p.type, x.size())` bytes (4-bit types packed,
/// float8 as bit patterns). Throws quench::error if `p` does not fit `x` or `y` is too small.
/// `target` forces an instruction set (tests, benchmarks); every target gives the same bits.
///
///     std::vector<std::int8_t> q(x.size());
///     quench::quantize(x, quench::qparams::per_tensor(quench::dtype::int8, 0.05f), q.data(), q.size());
inline void quantize(const_tensor_view<float> x, const qparams& p, void* y, std::size_t y_bytes,
                     simd_target target = best_simd_target()) {
  detail::quantize_checked(x.data(), x.shape(), p, y, y_bytes, {}, target);
}
/// float16 input: converted exactly to float32, then as the float32 overload.
inline void quantize(const_tensor_view<float16> x, const qparams& p, void* y, std::size_t y_bytes,
                     simd_target target = best_simd_target()) {
  detail::quantize_checked(x.data(), x.shape(), p, y, y_bytes, {}, target);
}
/// bfloat16 input: converted exactly to float32, then as the float32 overload.
inline void quantize(const_tensor_view<bfloat16> x, const qparams& p, void* y, std::size_t y_bytes,
                     simd_target target = best_simd_target()) {
  detail::quantize_checked(x.data(), x.shape(), p, y, y_bytes, {}, target);
}

/// Quantizes into a typed view of the same shape; `Q` must be `p.type` (8- or 16-bit types;
/// float8 views work too).
///
///     quench::quantize(x, p, out.view<std::int8_t>());
template <class Q>
inline void quantize(const_tensor_view<float> x, const qparams& p, tensor_view<Q> y,
                     simd_target target = best_simd_target()) {
  static_assert(!std::is_const<Q>::value, "quench::quantize writes its output: pass a tensor_view<Q>, not <const Q>");
  static_assert(!is_sub_byte(dtype_of_v<Q>),
                "int4/uint4 outputs are packed two per byte: use the quantize overload that takes a byte buffer");
  if (dtype_of_v<Q> != p.type)
    throw_error(errc::dtype_mismatch, "output",
                "expected element type " + to_string(p.type) + ", found " + to_string(dtype_of_v<Q>));
  if (y.shape() != x.shape()) throw_shape_mismatch("output", to_string(x.shape()) + " (the input's)", to_string(y.shape()));
  quantize(x, p, static_cast<void*>(y.data()), y.size() * sizeof(Q), target);
}

/// Quantizes tensor `x` (float32, float16 or bfloat16) into `y`, which must already have type
/// `p.type` and x's shape.
inline void quantize(const tensor& x, const qparams& p, tensor& y) {
  const std::string ctx = tensor_context(x.name());
  if (y.dtype() != p.type)
    throw_error(errc::dtype_mismatch, tensor_context(y.name()),
                "expected element type " + to_string(p.type) + ", found " + to_string(y.dtype()));
  if (y.shape() != x.shape())
    throw_shape_mismatch(tensor_context(y.name()), to_string(x.shape()) + " (the input's)", to_string(y.shape()));
  switch (x.dtype()) {
    case dtype::float32:
      return detail::quantize_checked(x.view<float>().data(), x.shape(), p, y.bytes(), y.nbytes(), ctx,
                                      best_simd_target());
    case dtype::float16:
      return detail::quantize_checked(x.view<float16>().data(), x.shape(), p, y.bytes(), y.nbytes(), ctx,
                                      best_simd_target());
    case dtype::bfloat16:
      return detail::quantize_checked(x.view<bfloat16>().data(), x.shape(), p, y.bytes(), y.nbytes(), ctx,
                                      best_simd_target());
    default:
      throw_error(errc::unsupported_dtype, ctx,
                  "expected a float, float16 or bfloat16 input, found " + to_string(x.dtype()));
  }
}

/// Quantizes tensor `x` (float32, float16 or bfloat16) into a new tensor of type `p.type`, same
/// shape, named after x.
///
///     quench::tensor q = quench::quantize(w, quench::qparams::per_axis(quench::dtype::int8, 0, scales));
inline tensor quantize(const tensor& x, const qparams& p) {
  const std::string ctx = tensor_context(x.name());
  validate(p, x.shape(), ctx);
  detail::check_quantize_output_type(p, ctx);
  tensor y(p.type, x.shape(), x.name());
  quantize(x, p, y);
  return y;
}

}  // namespace quench
