#pragma once
// QuantizeLinear kernels: scalar reference and AVX2 / AVX-512 fast paths for 8- and 16-bit
// integer outputs (4-bit outputs reuse the 8-bit path and pack nibbles). All targets give the
// same bits:
//
//   * x / scale is a true IEEE division (ONNX and ONNX Runtime divide; multiplying by 1/scale
//     differs in the last bit for some inputs, which moves ties);
//   * rounding is to nearest, ties to even (vroundps/vrndscaleps with an explicit rounding mode,
//     and an exact add-and-subtract-2^23 in the scalar path);
//   * the zero point is added in float (exact: both are integers below 2^24), then the value is
//     clamped to [qmin, qmax] before conversion, so no conversion overflows;
//   * NaN becomes qmin. ONNX leaves NaN -> integer undefined; ONNX Runtime 1.30's vectorised
//     paths give qmin for int8/uint8/int16/uint16/int4/uint4 (measured on every element position
//     of tensors of 1..257 elements; its scalar fallbacks convert NaN to int32 and give qmin or
//     qmax, see tests/onnx/quantize_ort_test.cpp). vmaxps returns its second operand when the
//     first is NaN, so max(v, qmin) does this for free; the scalar path tests `!(v >= qmin)`.
//
// The results assume the default floating-point environment (round to nearest), as every
// division in the program does.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "quench/core/config.hpp"
#include "quench/core/dtype.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/quant/detail/plan.hpp"

#if QUENCH_ENABLE_SIMD
#  include <immintrin.h>
#endif

namespace quench::detail {

/// Round half to even without touching the floating-point environment (std::nearbyint may call
/// libm and save/restore it). For |v| < 2^23, |v| + 2^23 lies in [2^23, 2^24) where the spacing
/// of floats is exactly 1, so the addition itself rounds to the nearest integer, ties to even.
/// Larger magnitudes are already integers; NaN and Inf pass through.
inline float round_half_even(float v) noexcept {
  const float a = std::fabs(v);
  if (a < 8388608.f) return std::copysign((a + 8388608.f) - 8388608.f, v);
  return v;
}

/// One element of QuantizeLinear to an integer type, as the clamped float value.
inline float quantize_value(float x, float scale, float zero_point, float lo, float hi) noexcept {
  float v = round_half_even(x / scale) + zero_point;
  if (!(v >= lo)) v = lo;  // also NaN -> qmin, as ONNX Runtime
  if (v > hi) v = hi;
  return v;
}

/// A run of `n` elements: `scale`/`zp` point at one value (Vec = false) or at one per element.
/// `zp` may be null (zero). Writes Q, which holds every value of [lo, hi].
template <class Q, bool Vec>
inline void quantize_run_scalar(const float* x, std::size_t n, const float* scale, const std::int32_t* zp,
                                float lo, float hi, Q* y) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    const float z = zp ? static_cast<float>(zp[k]) : 0.f;
    y[i] = static_cast<Q>(static_cast<std::int32_t>(quantize_value(x[i], scale[k], z, lo, hi)));
  }
}

#if QUENCH_ENABLE_SIMD

// ---- AVX2 -------------------------------------------------------------------------------------

QUENCH_TARGET("avx2")
inline __m256i quantize8_avx2(__m256 x, __m256 s, __m256 z, __m256 lo, __m256 hi) noexcept {
  __m256 v = _mm256_div_ps(x, s);
  v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(v, z);
  v = _mm256_max_ps(v, lo);  // NaN in v -> lo
  v = _mm256_min_ps(v, hi);
  return _mm256_cvtps_epi32(v);  // exact: v is an integer in [lo, hi]
}

template <bool Vec>
QUENCH_TARGET("avx2")
inline void load_params_avx2(const float* scale, const std::int32_t* zp, std::size_t i, __m256& s, __m256& z) noexcept {
  if (Vec) {
    s = _mm256_loadu_ps(scale + i);
    z = zp ? _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(zp + i)))
           : _mm256_setzero_ps();
  }
}

/// Stores 8 int32 lanes (already in Q's range) as Q.
template <class Q>
QUENCH_TARGET("avx2")
inline void store8_avx2(Q* y, __m256i a) noexcept {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));  // 8 x int16
  if (sizeof(Q) == 1) {
    const __m128i b = std::is_signed<Q>::value ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y), b);
  } else if (std::is_signed<Q>::value) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), w);
  } else {
    const __m128i u = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), u);
  }
}

/// Stores 32 int32 lanes a|b|c|d (already in Q's range) as Q.
template <class Q>
QUENCH_TARGET("avx2")
inline void store32_avx2(Q* y, __m256i a, __m256i b, __m256i c, __m256i d) noexcept {
  if (sizeof(Q) == 1) {
    // packs work per 128-bit lane: the result holds 4-byte groups a0 b0 c0 d0 a1 b1 c1 d1.
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    __m256i r = std::is_signed<Q>::value ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
    r = _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), r);
  } else {
    __m256i ab = std::is_signed<Q>::value ? _mm256_packs_epi32(a, b) : _mm256_packus_epi32(a, b);
    __m256i cd = std::is_signed<Q>::value ? _mm256_packs_epi32(c, d) : _mm256_packus_epi32(c, d);
    ab = _mm256_permute4x64_epi64(ab, 0xd8);
    cd = _mm256_permute4x64_epi64(cd, 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), ab);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 16), cd);
  }
}

template <class Q, bool Vec>
QUENCH_TARGET("avx2")
inline void quantize_run_avx2(const float* x, std::size_t n, const float* scale, const std::int32_t* zp, float lo,
                              float hi, Q* y) noexcept {
  __m256 s = _mm256_set1_ps(scale[0]);
  __m256 z = _mm256_set1_ps(zp ? static_cast<float>(zp[0]) : 0.f);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    load_params_avx2<Vec>(scale, zp, i, s, z);
    const __m256i a = quantize8_avx2(_mm256_loadu_ps(x + i), s, z, vlo, vhi);
    load_params_avx2<Vec>(scale, zp, i + 8, s, z);
    const __m256i b = quantize8_avx2(_mm256_loadu_ps(x + i + 8), s, z, vlo, vhi);
    load_params_avx2<Vec>(scale, zp, i + 16, s, z);
    const __m256i c = quantize8_avx2(_mm256_loadu_ps(x + i + 16), s, z, vlo, vhi);
    load_params_avx2<Vec>(scale, zp, i + 24, s, z);
    const __m256i d = quantize8_avx2(_mm256_loadu_ps(x + i + 24), s, z, vlo, vhi);
    store32_avx2(y + i, a, b, c, d);
  }
  for (; i + 8 <= n; i += 8) {
    load_params_avx2<Vec>(scale, zp, i, s, z);
    store8_avx2(y + i, quantize8_avx2(_mm256_loadu_ps(x + i), s, z, vlo, vhi));
  }
  if (i < n) quantize_run_scalar<Q, Vec>(x + i, n - i, Vec ? scale + i : scale, (Vec && zp) ? zp + i : zp, lo, hi, y + i);
}

// ---- AVX-512 ----------------------------------------------------------------------------------

// The zero-masking forms with a full mask are the same instructions; GCC 12's unmasked wrappers
// start from _mm512_undefined_*() and trip -Wmaybe-uninitialized (GCC bug 105593).
QUENCH_TARGET("avx512f")
inline __m512i quantize16_avx512(__m512 x, __m512 s, __m512 z, __m512 lo, __m512 hi) noexcept {
  constexpr __mmask16 all = 0xffff;
  __m512 v = _mm512_div_ps(x, s);
  v = _mm512_maskz_roundscale_ps(all, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(v, z);
  v = _mm512_maskz_max_ps(all, v, lo);  // NaN in v -> lo
  v = _mm512_maskz_min_ps(all, v, hi);
  return _mm512_maskz_cvtps_epi32(all, v);
}

/// Stores 16 int32 lanes (in Q's range) as Q; the saturating narrowing never saturates. Narrowing
/// in a register and storing unmasked: masked narrowing stores (vpmovsdb m128{k}) are microcoded
/// on AMD Zen 4 and made the whole kernel 3x slower there.
template <class Q>
QUENCH_TARGET("avx512f")
inline void store16_avx512(Q* y, __m512i q) noexcept {
  constexpr __mmask16 all = 0xffff;
  if (sizeof(Q) == 1) {
    const __m128i b = std::is_signed<Q>::value ? _mm512_maskz_cvtsepi32_epi8(all, q) : _mm512_maskz_cvtusepi32_epi8(all, q);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y), b);
  } else {
    const __m256i w =
        std::is_signed<Q>::value ? _mm512_maskz_cvtsepi32_epi16(all, q) : _mm512_maskz_cvtusepi32_epi16(all, q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), w);
  }
}

template <class Q, bool Vec>
QUENCH_TARGET("avx512f")
inline void quantize_run_avx512(const float* x, std::size_t n, const float* scale, const std::int32_t* zp, float lo,
                                float hi, Q* y) noexcept {
  __m512 s = _mm512_set1_ps(scale[0]);
  __m512 z = _mm512_set1_ps(zp ? static_cast<float>(zp[0]) : 0.f);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (Vec) {
      s = _mm512_loadu_ps(scale + i);
      z = zp ? _mm512_maskz_cvtepi32_ps(0xffff, _mm512_loadu_si512(zp + i)) : _mm512_setzero_ps();
    }
    store16_avx512(y + i, quantize16_avx512(_mm512_loadu_ps(x + i), s, z, vlo, vhi));
  }
  if (i < n) quantize_run_scalar<Q, Vec>(x + i, n - i, Vec ? scale + i : scale, (Vec && zp) ? zp + i : zp, lo, hi, y + i);
}

#endif  // QUENCH_ENABLE_SIMD

/// One run on the chosen target. Only 8- and 16-bit integer Q have SIMD paths.
template <class Q, bool Vec>
inline void quantize_run(const float* x, std::size_t n, const float* scale, const std::int32_t* zp, float lo, float hi,
                         Q* y, simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  if (target == simd_target::avx512) return quantize_run_avx512<Q, Vec>(x, n, scale, zp, lo, hi, y);
  if (target == simd_target::avx2) return quantize_run_avx2<Q, Vec>(x, n, scale, zp, lo, hi, y);
#else
  (void)target;
#endif
  quantize_run_scalar<Q, Vec>(x, n, scale, zp, lo, hi, y);
}

/// Elements converted to float per step when the input is float16/bfloat16 or the output 4-bit.
inline constexpr std::size_t quant_chunk = 256;

/// Calls `f(const float* xs, std::size_t off, std::size_t len)` over [0, n) of `x` as float: in
/// place for float input, through a stack buffer filled by the (exact) bulk converter otherwise.
template <class In, class F>
inline void with_float_input(const In* x, std::size_t n, simd_target target, F&& f) {
  if constexpr (std::is_same<In, float>::value) {
    (void)target;
    f(x, std::size_t{0}, n);
  } else {
    float buf[quant_chunk];
    for (std::size_t off = 0; off < n; off += quant_chunk) {
      const std::size_t len = n - off < quant_chunk ? n - off : quant_chunk;
      convert(x + off, buf, len, target);
      f(static_cast<const float*>(buf), off, len);
    }
  }
}

/// Integer outputs of 8 or 16 bits.
template <class Q, class In>
inline void quantize_integer(const In* x, const quant_plan& plan, float lo, float hi, Q* y, simd_target target) noexcept {
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        const std::int32_t* zp = plan.zero_point ? plan.zero_point + k : nullptr;
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          quantize_run<Q, false>(xs, l, plan.scale + k, zp, lo, hi, y + off + o, target);
        });
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          const std::int32_t* zp = plan.zero_point ? plan.zero_point + k + o : nullptr;
          quantize_run<Q, true>(xs, l, plan.scale + k + o, zp, lo, hi, y + off + o, target);
        });
      });
}

/// int4/uint4: quantize through the 8-bit path into a stack buffer, then pack nibbles (low nibble
/// first, ONNX's order). Runs may start at odd elements, so each nibble is written on its own.
template <class In>
inline void quantize_4bit(const In* x, const quant_plan& plan, bool is_signed, std::uint8_t* y, simd_target target) noexcept {
  const float lo = is_signed ? -8.f : 0.f, hi = is_signed ? 7.f : 15.f;
  auto emit = [&](const float* xs, std::size_t len, const float* scale, const std::int32_t* zp, bool vec,
                  std::size_t dst) {
    std::int8_t buf[quant_chunk];
    for (std::size_t o = 0; o < len; o += quant_chunk) {
      const std::size_t l = len - o < quant_chunk ? len - o : quant_chunk;
      if (vec)
        quantize_run<std::int8_t, true>(xs + o, l, scale + o, zp ? zp + o : nullptr, lo, hi, buf, target);
      else
        quantize_run<std::int8_t, false>(xs + o, l, scale, zp, lo, hi, buf, target);
      for (std::size_t j = 0; j < l; ++j) set_nibble(y, dst + o + j, static_cast<std::uint8_t>(buf[j]));
    }
  };
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        const std::int32_t* zp = plan.zero_point ? plan.zero_point + k : nullptr;
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          emit(xs, l, plan.scale + k, zp, false, off + o);
        });
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          emit(xs, l, plan.scale + k + o, plan.zero_point ? plan.zero_point + k + o : nullptr, true, off + o);
        });
      });
}

/// float8: x / scale into a stack buffer, then the bulk float8 converter (round to nearest even;
/// saturate or not), whose every target matches float8.hpp's scalar conversion.
template <class Float8, class In>
inline void quantize_float8(const In* x, const quant_plan& plan, bool saturate, std::uint8_t* y,
                            simd_target target) noexcept {
  auto* out = reinterpret_cast<Float8*>(y);
  auto emit = [&](const float* xs, std::size_t len, const float* scale, bool vec, std::size_t dst) {
    float buf[quant_chunk];
    for (std::size_t o = 0; o < len; o += quant_chunk) {
      const std::size_t l = len - o < quant_chunk ? len - o : quant_chunk;
      for (std::size_t j = 0; j < l; ++j) buf[j] = xs[o + j] / (vec ? scale[o + j] : scale[0]);
      convert(static_cast<const float*>(buf), out + dst + o, l, saturate, target);
    }
  };
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          emit(xs, l, plan.scale + k, false, off + o);
        });
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_input(x + off, len, target, [&](const float* xs, std::size_t o, std::size_t l) {
          emit(xs, l, plan.scale + k + o, true, off + o);
        });
      });
}

/// Quantizes every element of `x` as `plan` says into storage of `type` (validated, not int32).
template <class In>
inline void quantize_kernel(const In* x, const quant_plan& plan, dtype type, bool saturate, void* y,
                            simd_target target) noexcept {
  auto* yb = static_cast<std::uint8_t*>(y);
  switch (type) {
    case dtype::int8: return quantize_integer(x, plan, -128.f, 127.f, static_cast<std::int8_t*>(y), target);
    case dtype::uint8: return quantize_integer(x, plan, 0.f, 255.f, static_cast<std::uint8_t*>(y), target);
    case dtype::int16: return quantize_integer(x, plan, -32768.f, 32767.f, static_cast<std::int16_t*>(y), target);
    case dtype::uint16: return quantize_integer(x, plan, 0.f, 65535.f, static_cast<std::uint16_t*>(y), target);
    case dtype::int4: return quantize_4bit(x, plan, true, yb, target);
    case dtype::uint4: return quantize_4bit(x, plan, false, yb, target);
    case dtype::float8e4m3fn: return quantize_float8<float8e4m3fn>(x, plan, saturate, yb, target);
    case dtype::float8e4m3fnuz: return quantize_float8<float8e4m3fnuz>(x, plan, saturate, yb, target);
    case dtype::float8e5m2: return quantize_float8<float8e5m2>(x, plan, saturate, yb, target);
    case dtype::float8e5m2fnuz: return quantize_float8<float8e5m2fnuz>(x, plan, saturate, yb, target);
    default: QUENCH_ASSERT(false && "quantize_kernel: type was not validated"); return;
  }
}

}  // namespace quench::detail
