#pragma once
// resize: cv2.resize(src, (dst_w, dst_h), interpolation=...) for interleaved uint8 and float32
// pixels, reproducing OpenCV's arithmetic so that calibration inputs are the pixels the deployed
// Python pipeline feeds the network, not merely close to them.
//
//     std::vector<std::uint8_t> out(224 * 224 * 3);
//     quench::data::resize(img.data(), 480, 640, 3, out.data(), 224, 224, quench::data::interpolation::linear);
//
// What is reproduced (OpenCV 4.6 imgproc/resize.cpp, the generic path; Debian's build has no IPP):
// * same size: a copy.
// * INTER_NEAREST: source index floor(dst_x * (src_w / dst_w)) computed in double, clamped.
// * INTER_LINEAR: half-pixel centres, coordinates computed in double then rounded to float;
//   uint8 uses 11-bit fixed-point weights (INTER_RESIZE_COEF_BITS, each weight rounded to even
//   on its own, so the pair may sum to 2047..2049), a 32-bit horizontal pass and the vertical
//   pass ((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2 that OpenCV's scalar and
//   SIMD code share; float32 uses float weights, h = s0 * a0 + s1 * a1, then v = h0 * b0 + h1 * b1,
//   every product rounded on its own (never fused into an FMA, whatever -march says).
//   A downscale by exactly 2 in both axes is INTER_AREA, as in OpenCV.
// * INTER_AREA, integer factors in both axes: block mean; uint8 2x2 with 1, 3 or 4 channels is
//   (sum + 2) >> 2, other blocks round(sum * (1.f / area)) half to even.
// * INTER_AREA, non-integer downscale (both factors >= 1): OpenCV's area-weight tables (cell
//   width, 1e-3 edge tolerance) accumulated in float, rounded half to even for uint8.
// * INTER_AREA with an upscale in either axis: OpenCV's "linear with area coefficients".
// float32 INTER_AREA blocks are summed left to right, top to bottom: exact for integer-valued
// input (pixels converted to float), which is how preprocess uses it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/error.hpp"

namespace quench::data {

/// cv2 interpolation flags: INTER_LINEAR, INTER_AREA, INTER_NEAREST.
enum class interpolation { linear, area, nearest };

namespace detail {

inline int cv_floor(double x) noexcept {
  const int i = static_cast<int>(x);
  return i - (static_cast<double>(i) > x);
}
inline int cv_ceil(double x) noexcept {
  const int i = static_cast<int>(x);
  return i + (static_cast<double>(i) < x);
}
/// cvRound / saturate_cast<int>(float): nearest, halves to even (the SSE conversion).
inline int cv_round(float x) noexcept { return static_cast<int>(std::lrint(x)); }
inline std::uint8_t saturate_u8(float x) noexcept {
  const int i = cv_round(x);
  return static_cast<std::uint8_t>(i < 0 ? 0 : i > 255 ? 255 : i);
}
/// `x`, but opaque to the optimizer: a product passed through it cannot be fused into an FMA
/// (GCC contracts a * b + c across statements with -march=native, which changes the last bit
/// and, through rounding, INTER_AREA uint8 pixels by 1). OpenCV's SSE2 code never fuses.
inline float unfused(float x) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#endif
  return x;
}
inline int unfused(int x) noexcept { return x; }

template <class T>
inline T store_area(float v) noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>) return saturate_u8(v);
  else return v;
}

template <class T>
void resize_nearest(const T* src, int sh, int sw, int cn, T* dst, int dh, int dw) noexcept {
  const double ifx = 1. / (static_cast<double>(dw) / sw), ify = 1. / (static_cast<double>(dh) / sh);
  std::vector<int> xofs(static_cast<std::size_t>(dw));
  for (int x = 0; x < dw; ++x) xofs[x] = std::min(cv_floor(x * ifx), sw - 1) * cn;
  for (int y = 0; y < dh; ++y) {
    const T* s = src + static_cast<std::size_t>(std::min(cv_floor(y * ify), sh - 1)) * sw * cn;
    T* d = dst + static_cast<std::size_t>(y) * dw * cn;
    for (int x = 0; x < dw; ++x)
      for (int c = 0; c < cn; ++c) d[x * cn + c] = s[xofs[x] + c];
  }
}

/// INTER_LINEAR, and INTER_AREA where it is emulated by linear weights (`area_mode`).
template <class T>
void resize_linear(const T* src, int sh, int sw, int cn, T* dst, int dh, int dw, bool area_mode) noexcept {
  constexpr bool fixpt = std::is_same_v<T, std::uint8_t>;
  using W = std::conditional_t<fixpt, int, float>;  // horizontal-pass buffer
  using A = std::conditional_t<fixpt, short, float>;  // weights
  constexpr float one = fixpt ? 2048.f : 1.f;        // INTER_RESIZE_COEF_SCALE
  const double inv_sx = static_cast<double>(dw) / sw, inv_sy = static_cast<double>(dh) / sh;
  const double scale_x = 1. / inv_sx, scale_y = 1. / inv_sy;

  auto weight = [](float w) -> A {
    if constexpr (fixpt) {
      const int r = cv_round(w * 2048.f);
      return static_cast<short>(std::clamp(r, -32768, 32767));
    } else {
      return w;
    }
  };
  // Source position and fraction of destination index `d` along an axis of `n` source samples.
  auto coord = [&](int d, double scale, double inv_scale, int n, int& s, float& f) {
    if (!area_mode) {
      f = static_cast<float>((d + 0.5) * scale - 0.5);
      s = static_cast<int>(std::floor(f));
      f -= static_cast<float>(s);
    } else {
      s = cv_floor(d * scale);
      f = static_cast<float>((d + 1) - (s + 1) * inv_scale);
      f = f <= 0 ? 0.f : f - static_cast<float>(std::floor(f));
    }
    (void)n;
  };

  int xmax = dw;
  std::vector<int> xofs(static_cast<std::size_t>(dw));
  std::vector<A> alpha(static_cast<std::size_t>(dw) * 2);
  for (int dx = 0; dx < dw; ++dx) {
    int sx;
    float fx;
    coord(dx, scale_x, inv_sx, sw, sx, fx);
    if (sx < 0) fx = 0, sx = 0;
    if (sx + 1 >= sw) {
      xmax = std::min(xmax, dx);
      if (sx >= sw - 1) fx = 0, sx = sw - 1;
    }
    xofs[dx] = sx * cn;
    alpha[2 * dx] = weight(1.f - fx);
    alpha[2 * dx + 1] = weight(fx);
  }

  const int row = dw * cn;
  std::vector<W> h0(static_cast<std::size_t>(row)), h1(static_cast<std::size_t>(row));
  // The channel count as a constant where it is 1, 3 or 4, so the inner loops unroll.
  auto hpass_cn = [&](auto cn_const, const T* s, W* h) {
    const int n = decltype(cn_const)::value > 0 ? decltype(cn_const)::value : cn;
    for (int dx = 0; dx < xmax; ++dx) {
      const int sx = xofs[dx];
      const W a0 = alpha[2 * dx], a1 = alpha[2 * dx + 1];
      for (int c = 0; c < n; ++c)
        h[dx * n + c] = unfused(static_cast<W>(s[sx + c]) * a0) + unfused(static_cast<W>(s[sx + c + n]) * a1);
    }
    for (int dx = xmax; dx < dw; ++dx)
      for (int c = 0; c < n; ++c) h[dx * n + c] = static_cast<W>(static_cast<W>(s[xofs[dx] + c]) * static_cast<W>(one));
  };
  auto hpass = [&](const T* s, W* h) {
    switch (cn) {
      case 1: return hpass_cn(std::integral_constant<int, 1>(), s, h);
      case 3: return hpass_cn(std::integral_constant<int, 3>(), s, h);
      case 4: return hpass_cn(std::integral_constant<int, 4>(), s, h);
      default: return hpass_cn(std::integral_constant<int, 0>(), s, h);
    }
  };
  int have0 = -1, have1 = -1;  // source rows currently in h0 / h1
  for (int dy = 0; dy < dh; ++dy) {
    int sy;
    float fy;
    coord(dy, scale_y, inv_sy, sh, sy, fy);
    const A b0 = weight(1.f - fy), b1 = weight(fy);
    // The two rows, clamped to the image (the weights stay as computed, like OpenCV's clip()).
    const int r0 = std::clamp(sy, 0, sh - 1), r1 = std::clamp(sy + 1, 0, sh - 1);
    if (r0 == have1 && r0 != have0) {
      std::swap(h0, h1);
      std::swap(have0, have1);
    }
    if (r0 != have0) hpass(src + static_cast<std::size_t>(r0) * sw * cn, h0.data()), have0 = r0;
    if (r1 != have1) hpass(src + static_cast<std::size_t>(r1) * sw * cn, h1.data()), have1 = r1;
    T* __restrict d = dst + static_cast<std::size_t>(dy) * row;
    const W* __restrict p0 = h0.data();
    const W* __restrict p1 = h1.data();
    const W c0 = b0, c1 = b1;
    for (int x = 0; x < row; ++x) {
      if constexpr (fixpt)
        d[x] = static_cast<std::uint8_t>((((c0 * (p0[x] >> 4)) >> 16) + ((c1 * (p1[x] >> 4)) >> 16) + 2) >> 2);
      else
        d[x] = unfused(p0[x] * c0) + unfused(p1[x] * c1);
    }
  }
}

/// INTER_AREA by integer factors in both axes (OpenCV's resizeAreaFast).
template <class T>
void resize_area_fast(const T* src, int sh, int sw, int cn, T* dst, int dh, int dw, int fx, int fy) noexcept {
  using W = std::conditional_t<std::is_same_v<T, std::uint8_t>, int, float>;
  const std::size_t sstep = static_cast<std::size_t>(sw) * cn;
  const bool two = fx == 2 && fy == 2 && (cn == 1 || cn == 3 || cn == 4) && std::is_same_v<T, std::uint8_t>;
  const float scale = 1.f / static_cast<float>(fx * fy);
  (void)sh;
  // OpenCV's float 2x2 SIMD loop (1 or 4 channels, 4 lanes, the SSE2 baseline) adds the two
  // pairs first; its scalar tail adds left to right. Only non-integer input can tell them apart.
  const bool pairs = std::is_same_v<T, float> && fx == 2 && fy == 2 && (cn == 1 || cn == 4);
  const int row = dw * cn, vec_end = pairs ? row / 4 * 4 : 0;
  for (int dy = 0; dy < dh; ++dy) {
    const T* s = src + static_cast<std::size_t>(dy) * fy * sstep;
    T* d = dst + static_cast<std::size_t>(dy) * dw * cn;
    for (int i = 0; i < vec_end; ++i) {
      const int dx = i / cn, c = i % cn;
      const T* p = s + static_cast<std::size_t>(dx) * 2 * cn + c;
      d[i] = static_cast<T>(((p[0] + p[cn]) + (p[sstep] + p[sstep + cn])) * 0.25f);
    }
    for (int dx = vec_end / cn; dx < dw; ++dx)
      for (int c = 0; c < cn; ++c) {
        const T* p = s + static_cast<std::size_t>(dx) * fx * cn + c;
        if constexpr (std::is_same_v<T, std::uint8_t>) {
          if (two) {
            d[dx * cn + c] = static_cast<T>((p[0] + p[cn] + p[sstep] + p[sstep + cn] + 2) >> 2);
            continue;
          }
        }
        // Row-major over the block, in groups of four as OpenCV's unrolled loop adds them
        // (sum + (((a + b) + c) + d)); the order only matters for fractional float input.
        auto at = [&](int k) { return static_cast<W>(p[(k / fx) * sstep + static_cast<std::size_t>(k % fx) * cn]); };
        const int area = fx * fy;
        W sum = 0;
        int k = 0;
        for (; k <= area - 4; k += 4) sum += at(k) + at(k + 1) + at(k + 2) + at(k + 3);
        for (; k < area; ++k) sum += at(k);
        d[dx * cn + c] = store_area<T>(static_cast<float>(sum) * scale);
      }
  }
}

struct area_weight {
  int di, si;
  float alpha;
};

/// OpenCV's computeResizeAreaTab: which source samples cover destination cell `di`, and how much.
inline std::vector<area_weight> area_table(int ssize, int dsize, int cn, double scale) {
  std::vector<area_weight> tab;
  tab.reserve(static_cast<std::size_t>(ssize) * 2);
  for (int dx = 0; dx < dsize; ++dx) {
    const double fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const double cell = std::min(scale, ssize - fsx1);
    int sx1 = cv_ceil(fsx1), sx2 = cv_floor(fsx2);
    sx2 = std::min(sx2, ssize - 1);
    sx1 = std::min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push_back({dx * cn, (sx1 - 1) * cn, static_cast<float>((sx1 - fsx1) / cell)});
    for (int sx = sx1; sx < sx2; ++sx) tab.push_back({dx * cn, sx * cn, static_cast<float>(1.0 / cell)});
    if (fsx2 - sx2 > 1e-3)
      tab.push_back({dx * cn, sx2 * cn, static_cast<float>(std::min(std::min(fsx2 - sx2, 1.), cell) / cell)});
  }
  return tab;
}

/// INTER_AREA for a non-integer downscale (OpenCV's resizeArea_ with float accumulators).
template <class T>
void resize_area(const T* src, int sh, int sw, int cn, T* dst, int dh, int dw, double scale_x, double scale_y) {
  const std::vector<area_weight> xtab = area_table(sw, dw, cn, scale_x), ytab = area_table(sh, dh, 1, scale_y);
  const int row = dw * cn;
  std::vector<float> buf(static_cast<std::size_t>(row)), sum(static_cast<std::size_t>(row), 0.f);
  int prev_dy = ytab.empty() ? 0 : ytab[0].di;
  for (const area_weight& yw : ytab) {
    const T* s = src + static_cast<std::size_t>(yw.si) * sw * cn;
    std::fill(buf.begin(), buf.end(), 0.f);
    for (const area_weight& xw : xtab)
      for (int c = 0; c < cn; ++c) buf[xw.di + c] = buf[xw.di + c] + unfused(static_cast<float>(s[xw.si + c]) * xw.alpha);
    if (yw.di != prev_dy) {
      T* d = dst + static_cast<std::size_t>(prev_dy) * row;
      for (int x = 0; x < row; ++x) {
        d[x] = store_area<T>(sum[x]);
        sum[x] = unfused(yw.alpha * buf[x]);
      }
      prev_dy = yw.di;
    } else {
      for (int x = 0; x < row; ++x) sum[x] = sum[x] + unfused(yw.alpha * buf[x]);
    }
  }
  T* d = dst + static_cast<std::size_t>(prev_dy) * row;
  for (int x = 0; x < row; ++x) d[x] = store_area<T>(sum[x]);
}

}  // namespace detail

/// Resizes `src` (`src_h` x `src_w` pixels of `channels` interleaved samples) into `dst`
/// (`dst_h * dst_w * channels` samples, caller-provided) exactly as cv2.resize does with
/// `dsize=(dst_w, dst_h)`. T is std::uint8_t or float.
template <class T>
void resize(const T* src, std::int64_t src_h, std::int64_t src_w, std::int64_t channels, T* dst, std::int64_t dst_h,
            std::int64_t dst_w, interpolation interp) {
  static_assert(std::is_same_v<T, std::uint8_t> || std::is_same_v<T, float>,
                "quench::data::resize takes std::uint8_t or float pixels; convert other types to float first");
  constexpr std::int64_t max_side = 1 << 24;  // OpenCV indexes with int; keep offsets far from overflow
  if (src_h <= 0 || src_w <= 0 || dst_h <= 0 || dst_w <= 0 || src_h > max_side || src_w > max_side ||
      dst_h > max_side || dst_w > max_side)
    throw_error(errc::invalid_argument, "resize",
                "expected sizes in [1, 2^24], found " + std::to_string(src_h) + "x" + std::to_string(src_w) + " -> " +
                    std::to_string(dst_h) + "x" + std::to_string(dst_w));
  if (channels < 1 || channels > 4) throw_invalid_argument("resize", "1 to 4 channels", std::to_string(channels));
  const int sh = static_cast<int>(src_h), sw = static_cast<int>(src_w), cn = static_cast<int>(channels);
  const int dh = static_cast<int>(dst_h), dw = static_cast<int>(dst_w);
  if (sh == dh && sw == dw) {
    std::memcpy(dst, src, static_cast<std::size_t>(sh) * sw * cn * sizeof(T));
    return;
  }
  if (interp == interpolation::nearest) return detail::resize_nearest(src, sh, sw, cn, dst, dh, dw);
  const double scale_x = 1. / (static_cast<double>(dw) / sw), scale_y = 1. / (static_cast<double>(dh) / sh);
  const int iscale_x = static_cast<int>(std::lrint(scale_x)), iscale_y = static_cast<int>(std::lrint(scale_y));
  const bool area_fast = std::abs(scale_x - iscale_x) < 2.220446049250313e-16 &&
                         std::abs(scale_y - iscale_y) < 2.220446049250313e-16;
  if (interp == interpolation::linear && area_fast && iscale_x == 2 && iscale_y == 2) interp = interpolation::area;
  if (interp == interpolation::area && scale_x >= 1 && scale_y >= 1) {
    if (area_fast) return detail::resize_area_fast(src, sh, sw, cn, dst, dh, dw, iscale_x, iscale_y);
    return detail::resize_area(src, sh, sw, cn, dst, dh, dw, scale_x, scale_y);
  }
  detail::resize_linear(src, sh, sw, cn, dst, dh, dw, interp == interpolation::area);
}

}  // namespace quench::data
