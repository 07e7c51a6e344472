#pragma once
// DequantizeLinear kernels: y = float(int32(x) - zero_point) * scale, one float multiply, as ONNX
// Runtime computes it (the subtraction is exact in int32; the conversion to float is exact below
// 2^24 and rounds to nearest even above, identically in cvtsi2ss and vcvtdq2ps). float8 inputs
// are converted exactly and multiplied (their zero point is 0). float16/bfloat16 outputs are the
// float result rounded once, which is what ONNX Runtime 1.30 returns for a float16 scale.
// AVX2 / AVX-512 paths for int8/uint8/int16/uint16/int32 inputs give the same bits as the scalar
// path: every step is a single IEEE operation.

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

template <class Q, bool Vec>
inline void dequantize_run_scalar(const Q* x, std::size_t n, const float* scale, const std::int32_t* zp,
                                  float* y) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = Vec ? i : 0;
    const std::int32_t z = zp ? zp[k] : 0;
    y[i] = static_cast<float>(static_cast<std::int32_t>(x[i]) - z) * scale[k];
  }
}

#if QUENCH_ENABLE_SIMD

template <class Q>
QUENCH_TARGET("avx2")
inline __m256i load8_epi32_avx2(const Q* x) noexcept {
  if (sizeof(Q) == 1) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x));
    return std::is_signed<Q>::value ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
  }
  if (sizeof(Q) == 2) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    return std::is_signed<Q>::value ? _mm256_cvtepi16_epi32(w) : _mm256_cvtepu16_epi32(w);
  }
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
}

template <class Q, bool Vec>
QUENCH_TARGET("avx2")
inline void dequantize_run_avx2(const Q* x, std::size_t n, const float* scale, const std::int32_t* zp,
                                float* y) noexcept {
  __m256 s = _mm256_set1_ps(scale[0]);
  __m256i z = _mm256_set1_epi32(zp ? zp[0] : 0);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (Vec) {
      s = _mm256_loadu_ps(scale + i);
      z = zp ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zp + i)) : _mm256_setzero_si256();
    }
    const __m256i q = _mm256_sub_epi32(load8_epi32_avx2(x + i), z);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
  }
  if (i < n) dequantize_run_scalar<Q, Vec>(x + i, n - i, Vec ? scale + i : scale, (Vec && zp) ? zp + i : zp, y + i);
}

template <class Q>
QUENCH_TARGET("avx512f")
inline __m512i load16_epi32_avx512(const Q* x) noexcept {
  // Zero-masking forms with a full mask: see quantize16_avx512 (GCC bug 105593).
  constexpr __mmask16 all = 0xffff;
  if (sizeof(Q) == 1) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    return std::is_signed<Q>::value ? _mm512_maskz_cvtepi8_epi32(all, b) : _mm512_maskz_cvtepu8_epi32(all, b);
  }
  if (sizeof(Q) == 2) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    return std::is_signed<Q>::value ? _mm512_maskz_cvtepi16_epi32(all, w) : _mm512_maskz_cvtepu16_epi32(all, w);
  }
  return _mm512_loadu_si512(x);
}

template <class Q, bool Vec>
QUENCH_TARGET("avx512f")
inline void dequantize_run_avx512(const Q* x, std::size_t n, const float* scale, const std::int32_t* zp,
                                  float* y) noexcept {
  __m512 s = _mm512_set1_ps(scale[0]);
  __m512i z = _mm512_set1_epi32(zp ? zp[0] : 0);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (Vec) {
      s = _mm512_loadu_ps(scale + i);
      z = zp ? _mm512_loadu_si512(zp + i) : _mm512_setzero_si512();
    }
    const __m512i q = _mm512_sub_epi32(load16_epi32_avx512(x + i), z);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, q), s));  // maskz: see quantize16_avx512
  }
  if (i < n) dequantize_run_scalar<Q, Vec>(x + i, n - i, Vec ? scale + i : scale, (Vec && zp) ? zp + i : zp, y + i);
}

#endif  // QUENCH_ENABLE_SIMD

template <class Q, bool Vec>
inline void dequantize_run(const Q* x, std::size_t n, const float* scale, const std::int32_t* zp, float* y,
                           simd_target target) noexcept {
#if QUENCH_ENABLE_SIMD
  if (target == simd_target::avx512) return dequantize_run_avx512<Q, Vec>(x, n, scale, zp, y);
  if (target == simd_target::avx2) return dequantize_run_avx2<Q, Vec>(x, n, scale, zp, y);
#else
  (void)target;
#endif
  dequantize_run_scalar<Q, Vec>(x, n, scale, zp, y);
}

inline constexpr std::size_t dequant_chunk = 256;

/// Calls `f(float* ys, std::size_t off, std::size_t len)` over [0, n) of `y`: in place for float
/// output, through a stack buffer that the bulk converter then rounds to Out otherwise.
template <class Out, class F>
inline void with_float_output(Out* y, std::size_t n, simd_target target, F&& f) {
  if constexpr (std::is_same<Out, float>::value) {
    (void)target;
    f(y, std::size_t{0}, n);
  } else {
    float buf[dequant_chunk];
    for (std::size_t off = 0; off < n; off += dequant_chunk) {
      const std::size_t len = n - off < dequant_chunk ? n - off : dequant_chunk;
      f(buf, off, len);
      convert(static_cast<const float*>(buf), y + off, len, target);
    }
  }
}

/// Integer inputs of 8, 16 or 32 bits.
template <class Q, class Out>
inline void dequantize_integer(const Q* x, const quant_plan& plan, Out* y, simd_target target) noexcept {
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        const std::int32_t* zp = plan.zero_point ? plan.zero_point + k : nullptr;
        with_float_output(y + off, len, target, [&](float* ys, std::size_t o, std::size_t l) {
          dequantize_run<Q, false>(x + off + o, l, plan.scale + k, zp, ys, target);
        });
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_output(y + off, len, target, [&](float* ys, std::size_t o, std::size_t l) {
          const std::int32_t* zp = plan.zero_point ? plan.zero_point + k + o : nullptr;
          dequantize_run<Q, true>(x + off + o, l, plan.scale + k + o, zp, ys, target);
        });
      });
}

/// int4/uint4: unpack nibbles into a stack buffer, then the 8-bit path.
template <class Out>
inline void dequantize_4bit(const std::uint8_t* x, const quant_plan& plan, bool is_signed, Out* y,
                            simd_target target) noexcept {
  auto run = [&](std::size_t off, std::size_t len, const float* scale, const std::int32_t* zp, bool vec) {
    std::int8_t buf[dequant_chunk];
    with_float_output(y + off, len, target, [&](float* ys, std::size_t o, std::size_t l) {
      for (std::size_t done = 0; done < l; done += dequant_chunk) {
        const std::size_t m = l - done < dequant_chunk ? l - done : dequant_chunk;
        const std::size_t first = off + o + done;
        for (std::size_t j = 0; j < m; ++j)
          buf[j] = static_cast<std::int8_t>(is_signed ? get_int4(x, first + j) : get_uint4(x, first + j));
        if (vec)
          dequantize_run<std::int8_t, true>(buf, m, scale + o + done, zp ? zp + o + done : nullptr, ys + done, target);
        else
          dequantize_run<std::int8_t, false>(buf, m, scale, zp, ys + done, target);
      }
    });
  };
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        run(off, len, plan.scale + k, plan.zero_point ? plan.zero_point + k : nullptr, false);
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        run(off, len, plan.scale + k, plan.zero_point ? plan.zero_point + k : nullptr, true);
      });
}

/// float8: exact conversion through a 256-entry table, times the scale.
template <class Format, class Out>
inline void dequantize_float8(const std::uint8_t* x, const quant_plan& plan, Out* y, simd_target target) noexcept {
  float table[256];
  for (int b = 0; b < 256; ++b) table[b] = float8_bits_to_float<Format>(static_cast<std::uint8_t>(b));
  for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_output(y + off, len, target, [&](float* ys, std::size_t o, std::size_t l) {
          const float s = plan.scale[k];
          for (std::size_t j = 0; j < l; ++j) ys[j] = table[x[off + o + j]] * s;
        });
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        with_float_output(y + off, len, target, [&](float* ys, std::size_t o, std::size_t l) {
          for (std::size_t j = 0; j < l; ++j) ys[j] = table[x[off + o + j]] * plan.scale[k + o + j];
        });
      });
}

/// Dequantizes storage of `type` (validated) as `plan` says into `y`.
template <class Out>
inline void dequantize_kernel(const void* x, const quant_plan& plan, dtype type, Out* y, simd_target target) noexcept {
  const auto* xb = static_cast<const std::uint8_t*>(x);
  switch (type) {
    case dtype::int8: return dequantize_integer(static_cast<const std::int8_t*>(x), plan, y, target);
    case dtype::uint8: return dequantize_integer(xb, plan, y, target);
    case dtype::int16: return dequantize_integer(static_cast<const std::int16_t*>(x), plan, y, target);
    case dtype::uint16: return dequantize_integer(static_cast<const std::uint16_t*>(x), plan, y, target);
    case dtype::int32: return dequantize_integer(static_cast<const std::int32_t*>(x), plan, y, target);
    case dtype::int4: return dequantize_4bit(xb, plan, true, y, target);
    case dtype::uint4: return dequantize_4bit(xb, plan, false, y, target);
    case dtype::float8e4m3fn: return dequantize_float8<e4m3fn_format>(xb, plan, y, target);
    case dtype::float8e4m3fnuz: return dequantize_float8<e4m3fnuz_format>(xb, plan, y, target);
    case dtype::float8e5m2: return dequantize_float8<e5m2_format>(xb, plan, y, target);
    case dtype::float8e5m2fnuz: return dequantize_float8<e5m2fnuz_format>(xb, plan, y, target);
    default: QUENCH_ASSERT(false && "dequantize_kernel: type was not validated"); return;
  }
}

}  // namespace quench::detail
