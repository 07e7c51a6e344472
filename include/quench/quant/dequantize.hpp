#pragma once
// dequantize: ONNX DequantizeLinear (opsets 10, 13, 19, 21), bit-exact.
//
//   integer types  y = float(x - zero_point) * scale   (int32 input: zero point 0, ONNX's bias case)
//   float8 types   y = float(x) * scale                  (zero point must be 0)
//   int4/uint4     read packed, first element in the low nibble
//
// The subtraction is exact in int32 and the product is one float32 multiply, as in ONNX Runtime.
// Outputs: float32, or float16/bfloat16 (the float32 result rounded once to nearest even, which is
// what ONNX Runtime 1.30 returns for a float16 scale). AVX2 / AVX-512 paths for 8/16/32-bit
// integer inputs give the same bits as the scalar path.

#include <cstddef>
#include <cstdint>
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
#include "quench/quant/detail/dequantize_kernels.hpp"
#include "quench/quant/detail/plan.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

namespace detail {

template <class Out>
inline void dequantize_checked(const void* x, std::size_t x_bytes, const qparams& p, Out* y, const shape& s,
                               std::string_view context, simd_target target) {
  validate(p, s, context);
  const std::size_t need = storage_bytes(p.type, s.numel());
  if (x_bytes < need)
    throw_error(errc::invalid_argument, std::string(context),
                "expected an input buffer of at least " + std::to_string(need) + " bytes for " +
                    std::to_string(s.numel()) + " " + to_string(p.type) + " elements, found " +
                    std::to_string(x_bytes));
  if (need == 0) return;
  dequantize_kernel(x, make_plan(p, s), p.type, y, effective_simd_target(target));
}

}  // namespace detail

/// Dequantizes `x_bytes` bytes of `p.type` storage (4-bit packed, float8 bit patterns) into `y`,
/// whose shape gives the element count and the layout of `p`. `target` forces an instruction set
/// (tests, benchmarks); every target gives the same bits.
///
///     std::vector<float> out(q.size());
///     quench::dequantize(q.data(), q.size(), p, quench::tensor_view<float>(out.data(), {4, 16}));
inline void dequantize(const void* x, std::size_t x_bytes, const qparams& p, tensor_view<float> y,
                       simd_target target = best_simd_target()) {
  detail::dequantize_checked(x, x_bytes, p, y.data(), y.shape(), {}, target);
}
/// float16 output: the float32 result rounded to nearest even.
inline void dequantize(const void* x, std::size_t x_bytes, const qparams& p, tensor_view<float16> y,
                       simd_target target = best_simd_target()) {
  detail::dequantize_checked(x, x_bytes, p, y.data(), y.shape(), {}, target);
}
/// bfloat16 output: the float32 result rounded to nearest even.
inline void dequantize(const void* x, std::size_t x_bytes, const qparams& p, tensor_view<bfloat16> y,
                       simd_target target = best_simd_target()) {
  detail::dequantize_checked(x, x_bytes, p, y.data(), y.shape(), {}, target);
}

/// Dequantizes a typed view (8-, 16- or 32-bit integers, or float8) into `y` of the same shape;
/// `Q` must be `p.type`.
///
///     quench::dequantize(q.view<std::int8_t>(), p, out.view<float>());
template <class Q>
inline void dequantize(const_tensor_view<Q> x, const qparams& p, tensor_view<float> y,
                       simd_target target = best_simd_target()) {
  static_assert(!is_sub_byte(dtype_of_v<Q>),
                "int4/uint4 inputs are packed two per byte: use the dequantize overload that takes a byte buffer");
  if (dtype_of_v<Q> != p.type)
    throw_error(errc::dtype_mismatch, "input",
                "expected element type " + to_string(p.type) + ", found " + to_string(dtype_of_v<Q>));
  if (y.shape() != x.shape()) throw_shape_mismatch("output", to_string(x.shape()) + " (the input's)", to_string(y.shape()));
  dequantize(static_cast<const void*>(x.data()), x.size() * sizeof(Q), p, y, target);
}

/// Dequantizes tensor `x` (type `p.type`) into `y`: float32, float16 or bfloat16, x's shape.
inline void dequantize(const tensor& x, const qparams& p, tensor& y) {
  const std::string ctx = tensor_context(x.name());
  if (x.dtype() != p.type)
    throw_error(errc::dtype_mismatch, ctx,
                "expected element type " + to_string(p.type) + " (the zero point's), found " + to_string(x.dtype()));
  if (y.shape() != x.shape())
    throw_shape_mismatch(tensor_context(y.name()), to_string(x.shape()) + " (the input's)", to_string(y.shape()));
  switch (y.dtype()) {
    case dtype::float32:
      return detail::dequantize_checked(x.bytes(), x.nbytes(), p, y.view<float>().data(), x.shape(), ctx,
                                        best_simd_target());
    case dtype::float16:
      return detail::dequantize_checked(x.bytes(), x.nbytes(), p, y.view<float16>().data(), x.shape(), ctx,
                                        best_simd_target());
    case dtype::bfloat16:
      return detail::dequantize_checked(x.bytes(), x.nbytes(), p, y.view<bfloat16>().data(), x.shape(), ctx,
                                        best_simd_target());
    default:
      throw_error(errc::unsupported_dtype, tensor_context(y.name()),
                  "expected a float, float16 or bfloat16 output, found " + to_string(y.dtype()));
  }
}

/// Dequantizes tensor `x` into a new tensor of type `out` (float32, float16 or bfloat16).
///
///     quench::tensor w = quench::dequantize(q, p);   // float32
inline tensor dequantize(const tensor& x, const qparams& p, dtype out = dtype::float32) {
  if (out != dtype::float32 && out != dtype::float16 && out != dtype::bfloat16)
    throw_error(errc::unsupported_dtype, tensor_context(x.name()),
                "expected a float, float16 or bfloat16 output type, found " + to_string(out));
  tensor y(out, x.shape(), x.name());
  dequantize(x, p, y);
  return y;
}

}  // namespace quench
