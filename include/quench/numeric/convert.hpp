#pragma once
// Bulk conversion of contiguous arrays between float and float16 / bfloat16 / the four float8
// types, dispatched at run time to the best SIMD target of the CPU (quench/numeric/cpu.hpp).
//
// Every target gives exactly the bits of the scalar conversion functions of float16.hpp,
// bfloat16.hpp and float8.hpp (round to nearest even, subnormals kept, NaN and overflow rules
// documented there), on any input and for any length and alignment; tests/numeric/convert_test.cpp
// checks each target against the scalar path. The rounding does not depend on MXCSR (rounding
// mode, FTZ, DAZ) either.
//
// The pointer overloads are noexcept kernels: `src` and `dst` each hold `n` elements and must not
// overlap. The tensor_view overloads check that the shapes agree and throw quench::error
// (errc::shape_mismatch) otherwise.
//
// Thread safety: all functions are reentrant; concurrent calls on disjoint outputs are safe.

#include <cstddef>
#include <string>
#include <type_traits>

#include "quench/core/config.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/detail/convert_avx2.hpp"
#include "quench/numeric/detail/convert_avx512.hpp"
#include "quench/numeric/detail/convert_ref.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"

namespace quench {

/// True for float8e4m3fn, float8e4m3fnuz, float8e5m2 and float8e5m2fnuz.
template <class T>
inline constexpr bool is_float8_v = std::is_same_v<T, float8e4m3fn> || std::is_same_v<T, float8e4m3fnuz> ||
                                    std::is_same_v<T, float8e5m2> || std::is_same_v<T, float8e5m2fnuz>;

// The dispatch: a requested target the CPU lacks falls back to the best one it has
// (effective_simd_target), so a wrong request costs speed, never correctness or a crash.
#if QUENCH_ENABLE_SIMD
#  define QUENCH_DETAIL_DISPATCH(target, name, ...)                        \
     switch (effective_simd_target(target)) {                             \
       case simd_target::avx512: detail::name##_avx512(__VA_ARGS__); return; \
       case simd_target::avx2: detail::name##_avx2(__VA_ARGS__); return;     \
       case simd_target::scalar: break;                                    \
     }                                                                     \
     detail::name##_ref(__VA_ARGS__)
#else
#  define QUENCH_DETAIL_DISPATCH(target, name, ...) \
     (void)(target);                                \
     detail::name##_ref(__VA_ARGS__)
#endif

/// float -> float16, round to nearest even; |x| >= 65520 becomes +-Inf.
///
///     std::vector<float> w = ...;
///     std::vector<quench::float16> h(w.size());
///     quench::convert(w.data(), h.data(), w.size());
///
/// `target` forces an instruction set (tests, benchmarks); leave it out in normal use.
inline void convert(const float* src, float16* dst, std::size_t n,
                    simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, float_to_half, src, dst, n);
}

/// float16 -> float, exact (NaN payloads kept).
///
///     quench::convert(h.data(), w.data(), h.size());
inline void convert(const float16* src, float* dst, std::size_t n,
                    simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, half_to_float, src, dst, n);
}

/// float -> bfloat16, round to nearest even, float subnormals rounded (not flushed).
///
///     std::vector<quench::bfloat16> b(w.size());
///     quench::convert(w.data(), b.data(), w.size());
inline void convert(const float* src, bfloat16* dst, std::size_t n,
                    simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, float_to_bfloat16, src, dst, n);
}

/// bfloat16 -> float, exact.
inline void convert(const bfloat16* src, float* dst, std::size_t n,
                    simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, bfloat16_to_float, src, dst, n);
}

/// float -> one of the float8 types as ONNX Cast (opset 19) with attribute `saturate`: round to
/// nearest even; out-of-range values and Inf become +-max when `saturate`, else NaN (Inf for
/// e5m2). See float8.hpp for the full table.
///
///     std::vector<quench::float8e4m3fn> q(w.size());
///     quench::convert(w.data(), q.data(), w.size(), /*saturate=*/true);
template <class Float8, class = std::enable_if_t<is_float8_v<Float8>>>
inline void convert(const float* src, Float8* dst, std::size_t n, bool saturate = true,
                    simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, float_to_float8, src, dst, n, saturate);
}

/// float8 -> float, exact; every NaN code gives the float quiet NaN with the code's sign.
///
///     quench::convert(q.data(), w.data(), q.size());
template <class Float8, class = std::enable_if_t<is_float8_v<Float8>>>
inline void convert(const Float8* src, float* dst, std::size_t n, simd_target target = best_simd_target()) noexcept {
  QUENCH_DETAIL_DISPATCH(target, float8_to_float, src, dst, n);
}

#undef QUENCH_DETAIL_DISPATCH

namespace detail {
template <class Src, class Dst>
inline void check_convert_shapes(const tensor_view<Src>& src, const tensor_view<Dst>& dst) {
  static_assert(!std::is_const_v<Dst>, "quench::convert: the destination view must be mutable; pass a "
                                       "tensor_view<T>, not a tensor_view<const T>");
  if (src.shape() != dst.shape())
    throw_shape_mismatch("convert", "destination shape " + to_string(src.shape()) + " (the source's)",
                         to_string(dst.shape()));
}
}  // namespace detail

/// Converts a whole view into another of the same shape; the element types choose the conversion
/// (any pair the pointer overloads accept). Throws quench::error (shape_mismatch) if the shapes
/// differ.
///
///     quench::tensor w = ...;                                   // float32
///     quench::tensor h(quench::dtype::float16, w.shape());
///     quench::convert(w.view<float>(), h.view<quench::float16>());
template <class Src, class Dst>
inline void convert(tensor_view<Src> src, tensor_view<Dst> dst, simd_target target = best_simd_target()) {
  detail::check_convert_shapes(src, dst);
  convert(src.data(), dst.data(), src.size(), target);
}

/// The float8 form with ONNX's `saturate`; throws quench::error (shape_mismatch) if the shapes
/// differ.
///
///     quench::convert(w.view<float>(), q.view<quench::float8e5m2>(), /*saturate=*/false);
template <class Src, class Dst>
inline void convert(tensor_view<Src> src, tensor_view<Dst> dst, bool saturate,
                    simd_target target = best_simd_target()) {
  static_assert(is_float8_v<std::remove_cv_t<Dst>>,
                "quench::convert: `saturate` applies only to float -> float8; drop the argument for "
                "other destination types");
  detail::check_convert_shapes(src, dst);
  convert(src.data(), dst.data(), src.size(), saturate, target);
}

}  // namespace quench
