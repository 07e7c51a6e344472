#pragma once
// Convolutions: Conv, ConvTranspose, ConvInteger and QLinearConv over 1-D, 2-D and 3-D inputs,
// with groups, strides, dilations, explicit pads and auto_pad.
//
// Conv runs as GEMMs: W_g [M/group x C/group * kernel] times the input unrolled into columns
// (im2col), one tile of output positions at a time so the unrolled block stays in cache. On an
// AVX2 or AVX-512 CPU a float 1-D or 2-D conv never materialises the columns: quench::gemm_packed
// unrolls the input straight into its packed panels (conv_b_packer). A 1x1
// conv with stride 1 and no padding multiplies the input directly; a depthwise conv (one input
// channel per group) is a direct loop, which does 9 multiply-adds per output where a GEMM would
// add packing for a K of 9. ConvTranspose is the GEMM W_g^T x X_g followed by a scatter-add
// (col2im). The integer ops subtract zero points into int32 and use the same paths; QLinearConv
// then requantizes as ONNX Runtime does.
//
// The window geometry here (window_geometry, make_window) is shared with the pooling ops.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/numeric/gemm.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/matmul.hpp"

namespace quench::runtime {

namespace detail {

/// Placement of a kernel window along each spatial axis.
struct window_geometry {
  std::vector<std::int64_t> in, kernel, stride, dilation, pad_begin, pad_end, out;

  std::size_t rank() const noexcept { return in.size(); }
  static std::int64_t product(const std::vector<std::int64_t>& v) {
    std::int64_t p = 1;
    for (auto d : v) p *= d;
    return p;
  }
  std::int64_t in_size() const { return product(in); }
  std::int64_t out_size() const { return product(out); }
  std::int64_t kernel_size() const { return product(kernel); }
  /// Extent of the dilated kernel along axis i.
  std::int64_t extent(std::size_t i) const { return (kernel[i] - 1) * dilation[i] + 1; }
};

inline std::string join(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// auto_pad values every windowed op accepts ("" is how some exporters write NOTSET).
inline void check_auto_pad(const node& n) {
  const std::string p = n.attr_string("auto_pad", "NOTSET");
  if (p != "NOTSET" && p != "" && p != "SAME_UPPER" && p != "SAME_LOWER" && p != "VALID")
    throw_error(errc::unsupported_op, n.context(), "auto_pad='" + p + "' is not an ONNX value (NOTSET, SAME_UPPER, SAME_LOWER, VALID)");
}

/// An ints attribute of `count` values, `fallback` filling every entry when absent.
inline std::vector<std::int64_t> spatial_attr(const op_context& ctx, const char* name, std::size_t count, std::int64_t fallback,
                                              std::int64_t min_value) {
  std::vector<std::int64_t> v = ctx.node().attr_ints(name, {});
  if (v.empty()) return std::vector<std::int64_t>(count, fallback);
  if (v.size() != count)
    ctx.fail(errc::invalid_model, std::string("attribute ") + name + " has " + std::to_string(v.size()) + " values for " +
                                      std::to_string(count) + " spatial axes");
  for (auto x : v)
    if (x < min_value) ctx.fail(errc::invalid_model, std::string("attribute ") + name + " " + join(v) + " has a value below " + std::to_string(min_value));
  return v;
}

/// Conv and pooling geometry: strides, dilations, pads or auto_pad of the node over spatial
/// input `in` with window `kernel`. ceil_mode (pooling) rounds the output size up, except that a
/// window starting beyond the input and its begin padding is dropped (PyTorch, ONNX Runtime).
inline window_geometry make_window(const op_context& ctx, std::vector<std::int64_t> in, std::vector<std::int64_t> kernel,
                                   bool ceil_mode) {
  window_geometry g;
  const std::size_t r = in.size();
  g.in = std::move(in);
  g.kernel = std::move(kernel);
  for (auto k : g.kernel)
    if (k < 1) ctx.fail(errc::invalid_model, "kernel shape " + join(g.kernel) + " has a dimension below 1");
  g.stride = spatial_attr(ctx, "strides", r, 1, 1);
  g.dilation = spatial_attr(ctx, "dilations", r, 1, 1);
  const std::string auto_pad = ctx.node().attr_string("auto_pad", "NOTSET");
  g.pad_begin.assign(r, 0);
  g.pad_end.assign(r, 0);
  g.out.assign(r, 0);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (std::size_t i = 0; i < r; ++i) {
      g.out[i] = (g.in[i] + g.stride[i] - 1) / g.stride[i];
      const std::int64_t total = std::max<std::int64_t>(0, (g.out[i] - 1) * g.stride[i] + g.extent(i) - g.in[i]);
      g.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pad_end[i] = total - g.pad_begin[i];
    }
  } else {
    if (auto_pad == "NOTSET" || auto_pad.empty()) {
      const std::vector<std::int64_t> pads = ctx.node().attr_ints("pads", {});
      if (!pads.empty()) {
        if (pads.size() != 2 * r)
          ctx.fail(errc::invalid_model, "attribute pads has " + std::to_string(pads.size()) + " values for " + std::to_string(r) + " spatial axes");
        for (auto p : pads)
          if (p < 0) ctx.fail(errc::unsupported_op, "negative pads " + join(pads));
        std::copy(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(r), g.pad_begin.begin());
        std::copy(pads.begin() + static_cast<std::ptrdiff_t>(r), pads.end(), g.pad_end.begin());
      }
    } else if (auto_pad != "VALID") {
      ctx.unsupported("auto_pad='" + auto_pad + "'");
    }
    for (std::size_t i = 0; i < r; ++i) {
      const std::int64_t span = g.in[i] + g.pad_begin[i] + g.pad_end[i] - g.extent(i);
      if (span < 0) continue;  // reported below
      g.out[i] = (ceil_mode ? (span + g.stride[i] - 1) / g.stride[i] : span / g.stride[i]) + 1;
      if (ceil_mode && (g.out[i] - 1) * g.stride[i] >= g.in[i] + g.pad_begin[i]) --g.out[i];
    }
  }
  for (std::size_t i = 0; i < r; ++i)
    if (g.out[i] < 1)
      ctx.fail(errc::shape_mismatch, "spatial input " + join(g.in) + " with pads " + join(g.pad_begin) + " + " + join(g.pad_end) +
                                         " is smaller than the dilated kernel " + join(g.kernel) + " (dilations " + join(g.dilation) + ")");
  return g;
}

/// Spatial dims of x (rank >= 3: N, C, spatial...).
inline std::vector<std::int64_t> spatial_dims(const shape& s) { return std::vector<std::int64_t>(s.begin() + 2, s.end()); }

/// The problem a conv kernel solves; pointers are N x C x spatial, W is M x C/group x kernel.
struct conv_problem {
  std::int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  window_geometry win;
};

/// Unrolls output positions [j0, j0 + count) of one input group into col[K x count] (row
/// r = channel * kernel_size + kernel offset), zero where the window reads padding.
template <class T>
void im2col(const conv_problem& p, const T* x, std::int64_t channels, std::int64_t j0, std::int64_t count, T* col) {
  const window_geometry& g = p.win;
  const std::size_t r = g.rank();
  const std::int64_t in_w = g.in[r - 1], out_w = g.out[r - 1];
  const std::int64_t ks = g.kernel_size(), plane = g.in_size();
  // Runs of consecutive output positions along the last axis: (column, outer out index, ow0, length).
  struct run {
    std::int64_t col, ow0, len;
    std::int64_t outer[2];
  };
  std::vector<run> runs;
  for (std::int64_t j = j0; j < j0 + count;) {
    run u{};
    u.col = j - j0;
    u.ow0 = j % out_w;
    u.len = std::min(out_w - u.ow0, j0 + count - j);
    std::int64_t rest = j / out_w;
    for (std::size_t d = r - 1; d-- > 0;) {
      u.outer[d] = rest % g.out[d];
      rest /= g.out[d];
    }
    runs.push_back(u);
    j += u.len;
  }
  std::vector<std::int64_t> k(r, 0);
  for (std::int64_t row = 0; row < channels * ks; ++row) {
    const std::int64_t c = row / ks;
    std::int64_t rest = row % ks;
    for (std::size_t d = r; d-- > 0;) {
      k[d] = rest % g.kernel[d];
      rest /= g.kernel[d];
    }
    const T* xc = x + c * plane;
    T* dst = col + row * count;
    const std::int64_t off_w = k[r - 1] * g.dilation[r - 1] - g.pad_begin[r - 1], sw = g.stride[r - 1];
    // Output positions ow whose input column ow * sw + off_w lies inside [0, in_w).
    const std::int64_t lo = off_w >= 0 ? 0 : (-off_w + sw - 1) / sw;
    const std::int64_t hi = in_w - 1 - off_w < 0 ? 0 : std::min(out_w, (in_w - 1 - off_w) / sw + 1);
    for (const run& u : runs) {
      T* o = dst + u.col;
      std::int64_t base = 0;
      bool inside = true;
      for (std::size_t d = 0; d + 1 < r; ++d) {
        const std::int64_t pos = u.outer[d] * g.stride[d] - g.pad_begin[d] + k[d] * g.dilation[d];
        if (pos < 0 || pos >= g.in[d]) inside = false;
        base = base * g.in[d] + pos;
      }
      if (!inside) {
        std::fill(o, o + u.len, T(0));
        continue;
      }
      const T* src = xc + base * in_w;
      const std::int64_t a = std::clamp(lo, u.ow0, u.ow0 + u.len), b = std::clamp(hi, a, u.ow0 + u.len);
      std::fill(o, o + (a - u.ow0), T(0));
      if (sw == 1) std::copy(src + (a + off_w), src + (b + off_w), o + (a - u.ow0));
      else
        for (std::int64_t ow = a; ow < b; ++ow) o[ow - u.ow0] = src[ow * sw + off_w];
      std::fill(o + (b - u.ow0), o + u.len, T(0));
    }
  }
}

/// Elements per half of a row of `w` split into its even and odd elements.
inline std::int64_t half_width(std::int64_t w) { return (w + 1) / 2; }

/// `rows` rows of `w` elements as their even then odd elements into
/// out[rows x 2 * half_width(w)]: stride-2 taps then read contiguous memory (depthwise rows and
/// the GEMM packer of general convs both use it).
template <class T>
void split_even_odd_rows(const T* x, std::int64_t rows, std::int64_t w, T* out) {
  const std::int64_t half = half_width(w);
  for (std::int64_t r = 0; r < rows; ++r, x += w, out += 2 * half) {
    for (std::int64_t i = 0; i < w / 2; ++i) {
      out[i] = x[2 * i];
      out[half + i] = x[2 * i + 1];
    }
    if (w % 2) out[half - 1] = x[w - 1];
  }
}

/// Adds the taps of one kernel row to an output row: yr[ow] += sum_kw w[kw] * xr[ow * sw + kw * dw - pw]
/// for ow in [lo, hi), where every tap is inside the input row. With the kernel width known at
/// compile time the taps are unrolled and the ow loop vectorizes: one load and store of yr per
/// KW multiply-adds instead of per one.
///
/// Stride 2 reads the row's even and odd elements from separate copies (`even`, `odd`, made once
/// per plane) so those loads are contiguous too.
template <class T, int KW>
void depthwise_row_interior(T* yr, const T* xr, const T* even, const T* odd, const T* w, std::int64_t lo, std::int64_t hi,
                            std::int64_t sw, std::int64_t dw, std::int64_t pw) {
  if (even && sw == 2 && dw == 1) {
    // Tap k reads x[2 * ow + t], t = k - pw: even[ow + t / 2] or odd[ow + (t - 1) / 2] (floor).
    const T* src[KW];
    for (int k = 0; k < KW; ++k) {
      const std::int64_t t = k - pw;
      const std::int64_t u = t >= 0 ? t / 2 : -((-t + 1) / 2);
      src[k] = ((t % 2) == 0 ? even : odd) + (lo + u);
    }
    T* ys = yr + lo;
    const std::int64_t n = hi - lo;
    for (std::int64_t i = 0; i < n; ++i) {
      T acc = ys[i];
      for (int k = 0; k < KW; ++k) acc += w[k] * src[k][i];
      ys[i] = acc;
    }
    return;
  }
  if (sw == 1 && dw == 1) {
    const T* xs = xr + (lo - pw);  // in range: tap 0 of output lo is inside the row
    T* ys = yr + lo;
    const std::int64_t n = hi - lo;
    for (std::int64_t i = 0; i < n; ++i) {
      T acc = ys[i];
      for (int k = 0; k < KW; ++k) acc += w[k] * xs[i + k];
      ys[i] = acc;
    }
    return;
  }
  for (std::int64_t ow = lo; ow < hi; ++ow) {
    T acc = yr[ow];
    const std::int64_t base = ow * sw - pw;
    for (int k = 0; k < KW; ++k) acc += w[k] * xr[base + k * dw];
    yr[ow] = acc;
  }
}

/// Depthwise 2-D (or 1-D as 2-D with height 1) conv of one plane: y = bias + the taps of each
/// kernel row in turn; taps reading padding are skipped. The order of the additions depends on
/// the geometry only.
template <class T>
void depthwise_plane(const window_geometry& g, const T* x, const T* w, T bias, T* y, std::vector<T>& scratch) {
  const bool two_d = g.rank() == 2;
  const std::int64_t ih_n = two_d ? g.in[0] : 1, iw_n = g.in[g.rank() - 1];
  const std::int64_t oh_n = two_d ? g.out[0] : 1, ow_n = g.out[g.rank() - 1];
  const std::int64_t kh_n = two_d ? g.kernel[0] : 1, kw_n = g.kernel[g.rank() - 1];
  const std::int64_t sh = two_d ? g.stride[0] : 1, sw = g.stride[g.rank() - 1];
  const std::int64_t dh = two_d ? g.dilation[0] : 1, dw = g.dilation[g.rank() - 1];
  const std::int64_t ph = two_d ? g.pad_begin[0] : 0, pw = g.pad_begin[g.rank() - 1];
  // Output columns [lo, hi) whose tap at input offset `off` lies inside the row.
  auto lo_of = [&](std::int64_t off) { return off >= 0 ? std::int64_t{0} : std::min(ow_n, (-off + sw - 1) / sw); };
  auto hi_of = [&](std::int64_t off) { return iw_n - 1 - off < 0 ? std::int64_t{0} : std::min(ow_n, (iw_n - 1 - off) / sw + 1); };
  // Columns where every tap of a kernel row is inside: first tap's lo, last tap's hi.
  const std::int64_t in_lo = lo_of(-pw), in_hi = std::max(in_lo, hi_of((kw_n - 1) * dw - pw));
  const bool fused = kw_n == 3 || kw_n == 5 || kw_n == 7;
  // Stride 2: every input row as its even then its odd columns (split_even_odd_rows).
  const std::int64_t half_w = half_width(iw_n);
  const bool split = fused && sw == 2 && dw == 1 && in_lo < in_hi;
  if (split) {
    scratch.resize(static_cast<std::size_t>(2 * ih_n * half_w));
    split_even_odd_rows(x, ih_n, iw_n, scratch.data());
  }
  for (std::int64_t oh = 0; oh < oh_n; ++oh) {
    T* yr = y + oh * ow_n;
    std::fill(yr, yr + ow_n, bias);
    for (std::int64_t kh = 0; kh < kh_n; ++kh) {
      const std::int64_t ih = oh * sh - ph + kh * dh;
      if (ih < 0 || ih >= ih_n) continue;
      const T* xr = x + ih * iw_n;
      const T* wr = w + kh * kw_n;
      const T* even = split ? scratch.data() + ih * 2 * half_w : nullptr;
      const T* odd = split ? even + half_w : nullptr;
      if (kw_n == 3) depthwise_row_interior<T, 3>(yr, xr, even, odd, wr, in_lo, in_hi, sw, dw, pw);
      else if (kw_n == 5) depthwise_row_interior<T, 5>(yr, xr, even, odd, wr, in_lo, in_hi, sw, dw, pw);
      else if (kw_n == 7) depthwise_row_interior<T, 7>(yr, xr, even, odd, wr, in_lo, in_hi, sw, dw, pw);
      // Every other width, and the border columns of these, one tap at a time.
      for (std::int64_t kw = 0; kw < kw_n; ++kw) {
        const T wv = wr[kw];
        const std::int64_t off = kw * dw - pw;
        const std::int64_t lo = lo_of(off), hi = std::max(lo, hi_of(off));
        auto tap = [&](std::int64_t a, std::int64_t b) {
          for (std::int64_t ow = a; ow < b; ++ow) yr[ow] += wv * xr[ow * sw + off];
        };
        if (!fused) {
          tap(lo, hi);
          continue;
        }
        tap(lo, std::min(hi, in_lo));
        tap(std::max(lo, in_hi), hi);
      }
    }
  }
}

/// Packs B of a 1-D or 2-D conv straight from the input (the implicit im2col of quench::gemm_packed):
/// row (c, kh, kw), column = output position j of the tile starting at `j_begin`. Columns of one
/// panel that share an output row form a segment whose taps, at stride 1, are one contiguous run
/// of an input row: a copy with zeros where the window reads padding.
///
/// Stride 2 reads `split`: every input row as its even then its odd elements (split_even_odd_rows), so
/// that those taps are contiguous too.
struct conv_b_packer {
  const float* x;      ///< the group's first input channel
  const float* split;  ///< with stride_w == 2: the same channels as split_even_odd_rows made them, else null
  std::int64_t in_h, in_w, out_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
  std::int64_t j_begin;

  static conv_b_packer make(const window_geometry& g, const float* x, const float* split, std::int64_t j_begin) {
    const bool two_d = g.rank() == 2;
    const std::size_t w = g.rank() - 1;
    return {x,
            split,
            two_d ? g.in[0] : 1,
            g.in[w],
            g.out[w],
            two_d ? g.kernel[0] : 1,
            g.kernel[w],
            two_d ? g.stride[0] : 1,
            g.stride[w],
            two_d ? g.dilation[0] : 1,
            g.dilation[w],
            two_d ? g.pad_begin[0] : 0,
            g.pad_begin[w],
            j_begin};
  }

  void operator()(std::int64_t j0, std::int64_t cols, std::int64_t p0, std::int64_t kc, int nr, float* out) const {
    struct segment {
      std::int64_t first, len, oh, ow;
    };
    std::vector<segment> segs;
    const std::int64_t ks = kernel_h * kernel_w, plane = in_h * in_w;
    for (std::int64_t jp = 0; jp < cols; jp += nr, out += kc * nr) {
      const std::int64_t width = std::min<std::int64_t>(nr, cols - jp);
      segs.clear();
      for (std::int64_t t = 0; t < width;) {
        const std::int64_t j = j_begin + j0 + jp + t;
        const std::int64_t ow = j % out_w, len = std::min(width - t, out_w - ow);
        segs.push_back({t, len, j / out_w, ow});
        t += len;
      }
      // Row p0 + p of B is tap (c, kh, kw); step through them without dividing per row.
      std::int64_t c = p0 / ks, kh = p0 % ks / kernel_w, kw = p0 % kernel_w;
      for (std::int64_t p = 0; p < kc; ++p) {
        float* dst = out + p * nr;
        const float* xc = x + c * plane;
        for (const segment& sg : segs) {
          float* d = dst + sg.first;
          const std::int64_t ih = sg.oh * stride_h - pad_h + kh * dilation_h;
          if (ih < 0 || ih >= in_h) {
            for (std::int64_t t = 0; t < sg.len; ++t) d[t] = 0.0f;
            continue;
          }
          const std::int64_t iw0 = sg.ow * stride_w - pad_w + kw * dilation_w;
          // Taps t of the segment with 0 <= iw0 + t * stride_w < in_w.
          const std::int64_t lo = iw0 >= 0 ? 0 : std::min(sg.len, (-iw0 + stride_w - 1) / stride_w);
          const std::int64_t hi = iw0 >= in_w ? lo : std::max(lo, std::min(sg.len, (in_w - 1 - iw0) / stride_w + 1));
          // Plain loops, not std::copy / std::fill: segments are at most NR long and the calls cost
          // more than the copies.
          for (std::int64_t t = 0; t < lo; ++t) d[t] = 0.0f;
          if (stride_w == 1) {
            const float* src = xc + ih * in_w + iw0;
            for (std::int64_t t = lo; t < hi; ++t) d[t] = src[t];
          } else if (split) {
            // x[iw0 + 2t] is element (iw0 + 2t) / 2 of the row's even or odd half.
            const std::int64_t half = half_width(in_w), parity = iw0 & 1, base = (iw0 - parity) / 2;
            const float* src = split + (c * in_h + ih) * 2 * half + parity * half + base;
            for (std::int64_t t = lo; t < hi; ++t) d[t] = src[t];
          } else {
            const float* src = xc + ih * in_w + iw0;
            for (std::int64_t t = lo; t < hi; ++t) d[t] = src[t * stride_w];
          }
          for (std::int64_t t = hi; t < sg.len; ++t) d[t] = 0.0f;
        }
        for (std::int64_t t = width; t < nr; ++t) dst[t] = 0.0f;
        if (++kw == kernel_w) {
          kw = 0;
          if (++kh == kernel_h) {
            kh = 0;
            ++c;
          }
        }
      }
    }
  }
};

/// Output positions per im2col tile: about 2^17 elements of unrolled input (512 KiB of float),
/// at least 64 columns; a function of the shape only, so the tiling never depends on threads.
inline std::int64_t conv_tile_width(std::int64_t k, std::int64_t positions) {
  std::int64_t w = std::max<std::int64_t>(64, ((std::int64_t{1} << 17) / std::max<std::int64_t>(k, 1)) / 16 * 16);
  return std::min(w, std::max<std::int64_t>(positions, 1));
}

/// y = conv(x, w) + bias (bias may be null). Work is split into (batch, group, tile) tasks.
template <class T>
void conv_forward(const conv_problem& p, const T* x, const T* w, const T* bias, T* y, int threads) {
  const window_geometry& g = p.win;
  const std::int64_t cg = p.in_channels / p.group, mg = p.out_channels / p.group;
  const std::int64_t ks = g.kernel_size(), k = cg * ks;
  const std::int64_t pin = g.in_size(), pout = g.out_size();
  const std::size_t groups = static_cast<std::size_t>(p.batch * p.group);

  if (cg == 1 && g.rank() <= 2) {
    // Depthwise: one task per output plane.
    std::vector<std::vector<T>> scratch(static_cast<std::size_t>(std::max(threads, 1)));
    parallel_tasks(groups * static_cast<std::size_t>(mg), threads, [&](std::size_t t, std::size_t worker) {
      const auto plane = static_cast<std::int64_t>(t);  // = n * M + m
      const std::int64_t m = plane % p.out_channels, n = plane / p.out_channels;
      const std::int64_t c = m / mg;
      depthwise_plane(g, x + (n * p.in_channels + c) * pin, w + m * ks, bias ? bias[m] : T(0), y + plane * pout, scratch[worker]);
    });
    return;
  }

  bool pointwise = true;
  for (std::size_t i = 0; i < g.rank(); ++i)
    pointwise = pointwise && g.kernel[i] == 1 && g.stride[i] == 1 && g.pad_begin[i] == 0 && g.pad_end[i] == 0;
  // float 1-D/2-D convs on an AVX2+ CPU pack the input inside quench::gemm_packed (no im2col
  // buffer), so their tiles only need to give threads work: up to one NC block of columns.
  bool implicit = false;
  if constexpr (std::is_same_v<T, float>) implicit = !pointwise && g.rank() <= 2 && best_simd_target() != simd_target::scalar;
  const std::int64_t tile = implicit ? std::min<std::int64_t>(std::max<std::int64_t>(pout, 1), quench::detail::gemm_nc)
                                     : conv_tile_width(k, pout);
  const std::int64_t tiles = (pout + tile - 1) / tile;
  std::vector<gemm_scratch<T>> scratch(static_cast<std::size_t>(std::max(threads, 1)));
  // Stride 2 along the rows: every input row split into even and odd elements, once per call.
  tensor split;
  if (implicit && g.stride[g.rank() - 1] == 2) {
    const std::int64_t w = g.in[g.rank() - 1], rows = p.batch * p.in_channels * (pin / w);
    split = tensor::uninitialized(dtype::float32, {rows * 2 * half_width(w)});
    split_even_odd_rows(reinterpret_cast<const float*>(x), rows, w, split.view<float>().data());
  }
  parallel_tasks(groups * static_cast<std::size_t>(tiles), threads, [&](std::size_t t, std::size_t worker) {
    const std::int64_t ng = static_cast<std::int64_t>(t) / tiles, j0 = static_cast<std::int64_t>(t) % tiles * tile;
    const std::int64_t n = ng / p.group, gi = ng % p.group;
    const std::int64_t cols = std::min(tile, pout - j0);
    const T* xg = x + (n * p.in_channels + gi * cg) * pin;
    const T* wg = w + gi * mg * k;
    T* yg = y + (n * p.out_channels + gi * mg) * pout + j0;
    auto add_bias = [&](T* out, std::int64_t count) {
      if (!bias) return;
      for (std::int64_t m = 0; m < mg; ++m) {
        const T b = bias[gi * mg + m];
        T* row = out + m * pout;
        for (std::int64_t j = 0; j < count; ++j) row[j] += b;
      }
    };
    matrix_operand<T> rhs{xg + j0, pin, false};
    if constexpr (std::is_same_v<T, float>) {
      if (implicit) {
        const float* sg = split.size() ? split.view<float>().data() +
                                             (n * p.in_channels + gi * cg) * (pin / g.in[g.rank() - 1]) * 2 *
                                                 half_width(g.in[g.rank() - 1])
                                       : nullptr;
        quench::gemm_packed(mg, cols, k, 1.0f, {wg, k}, conv_b_packer::make(g, xg, sg, j0), yg, pout, false);
        add_bias(yg, cols);
        return;
      }
    }
    if (!pointwise) {
      gemm_scratch<T>& col = scratch[worker];
      col.resize(static_cast<std::size_t>(k * tile));
      im2col(p, xg, cg, j0, cols, col.data());
      rhs = {col.data(), cols, false};
    }
    gemm<T>(mg, cols, k, T(1), {wg, k, false}, rhs, yg, pout, false);
    add_bias(yg, cols);
  });
}

/// Validated shapes of a Conv-family node: X [N, C, spatial...], W [M, C/group, kernel...].
inline conv_problem plan_conv(const op_context& ctx, const shape& xs, const shape& ws) {
  if (xs.rank() < 3 || xs.rank() > 5)
    ctx.unsupported("input X of shape " + to_string(xs) + ": only 1-D, 2-D and 3-D convolutions (rank 3 to 5) are supported");
  if (ws.rank() != xs.rank())
    throw_shape_mismatch(ctx.node().context(), "W of rank " + std::to_string(xs.rank()), to_string(ws));
  conv_problem p;
  p.batch = xs[0];
  p.in_channels = xs[1];
  p.out_channels = ws[0];
  p.group = ctx.node().attr_int("group", 1);
  if (p.group < 1) ctx.fail(errc::invalid_model, "group " + std::to_string(p.group) + " must be >= 1");
  if (p.in_channels != ws[1] * p.group || p.out_channels % p.group != 0)
    throw_shape_mismatch(ctx.node().context(),
                         "X channels = W.shape[1] * group and W.shape[0] divisible by group (group " + std::to_string(p.group) + ")",
                         "X " + to_string(xs) + ", W " + to_string(ws));
  std::vector<std::int64_t> kernel = spatial_dims(ws);
  const std::vector<std::int64_t> ks = ctx.node().attr_ints("kernel_shape", {});
  if (!ks.empty() && ks != kernel) throw_shape_mismatch(ctx.node().context(), "kernel_shape " + join(ks) + " to match W", to_string(ws));
  p.win = make_window(ctx, spatial_dims(xs), std::move(kernel), false);
  return p;
}

inline shape conv_output_shape(const conv_problem& p) {
  std::vector<std::int64_t> d{p.batch, p.out_channels};
  d.insert(d.end(), p.win.out.begin(), p.win.out.end());
  return shape(std::move(d));
}

inline void check_conv(const node& n, std::int64_t) { check_auto_pad(n); }

inline void run_conv(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& w = ctx.required_input(1);
  const tensor* b = ctx.input(2);
  if (w.dtype() != x.dtype() || (b && b->dtype() != x.dtype()))
    ctx.fail(errc::dtype_mismatch, "X, W and B must share one element type, found " + to_string(x.dtype()) + ", " + to_string(w.dtype()) +
                                       (b ? ", " + to_string(b->dtype()) : std::string()));
  const conv_problem p = plan_conv(ctx, x.shape(), w.shape());
  if (b && (b->rank() != 1 || b->shape()[0] != p.out_channels))
    throw_shape_mismatch(ctx.node().context(), "B of shape [" + std::to_string(p.out_channels) + "]", to_string(b->shape()));
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y = tensor::uninitialized(x.dtype(), conv_output_shape(p));  // every element is written
    conv_forward<T>(p, x.view<T>().data(), w.view<T>().data(), b ? b->view<T>().data() : nullptr, y.view<T>().data(), ctx.threads());
    return y;
  }));
}

/// int32(x) - zero point (one value, or one per output channel for the weights).
inline std::vector<std::int32_t> shifted_int32(const op_context& ctx, const tensor& x, const tensor* zp, std::int64_t channels,
                                               const char* what) {
  if (x.dtype() != dtype::uint8 && x.dtype() != dtype::int8)
    ctx.fail(errc::unsupported_dtype, std::string(what) + ": expected uint8 or int8, found " + to_string(x.dtype()));
  if (zp && zp->dtype() != x.dtype())
    ctx.fail(errc::dtype_mismatch, std::string(what) + " zero point: expected " + to_string(x.dtype()) + ", found " + to_string(zp->dtype()));
  const std::vector<std::int32_t> z = read_zero_points(ctx, zp, 1, what);
  if (z.size() != 1 && static_cast<std::int64_t>(z.size()) != channels)
    ctx.fail(errc::shape_mismatch, std::string(what) + " zero point: expected 1 or " + std::to_string(channels) + " values, found " + std::to_string(z.size()));
  std::vector<std::int32_t> out(x.size());
  const std::size_t per = x.size() / static_cast<std::size_t>(std::max<std::int64_t>(channels, 1));
  auto fill = [&](auto tag) {
    using Q = decltype(tag);
    const Q* px = x.view<Q>().data();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::int32_t>(px[i]) - z[z.size() == 1 ? 0 : i / per];
  };
  if (x.dtype() == dtype::uint8) fill(std::uint8_t{});
  else fill(std::int8_t{});
  return out;
}

/// The exact int32 convolution of (x - x_zp) and (w - w_zp), plus an int32 bias. Padding reads
/// the zero point, i.e. contributes 0.
inline tensor conv_integer(const op_context& ctx, const conv_problem& p, const tensor& x, const tensor* x_zp, const tensor& w,
                           const tensor* w_zp, const tensor* bias) {
  if (x_zp && x_zp->size() != 1) ctx.unsupported("x zero point must be a single value (per-tensor), found shape " + to_string(x_zp->shape()));
  const std::vector<std::int32_t> xi = shifted_int32(ctx, x, x_zp, 1, "x");
  const std::vector<std::int32_t> wi = shifted_int32(ctx, w, w_zp, p.out_channels, "w");
  const std::int32_t* pb = nullptr;
  if (bias) {
    if (bias->dtype() != dtype::int32 || bias->rank() != 1 || bias->shape()[0] != p.out_channels)
      ctx.fail(errc::shape_mismatch, "B: expected int32 of shape [" + std::to_string(p.out_channels) + "], found " +
                                         to_string(bias->dtype()) + " " + to_string(bias->shape()));
    pb = bias->view<std::int32_t>().data();
  }
  tensor y(dtype::int32, conv_output_shape(p));
  conv_forward<std::int32_t>(p, xi.data(), wi.data(), pb, y.view<std::int32_t>().data(), ctx.threads());
  return y;
}

inline void run_conv_integer(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& w = ctx.required_input(1);
  const conv_problem p = plan_conv(ctx, x.shape(), w.shape());
  ctx.set_output(0, conv_integer(ctx, p, x, ctx.input(2), w, ctx.input(3), nullptr));
}

inline void run_qlinear_conv(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& w = ctx.required_input(3);
  const tensor* y_zp = ctx.input(7);
  const conv_problem p = plan_conv(ctx, x.shape(), w.shape());
  const tensor acc = conv_integer(ctx, p, x, ctx.input(2), w, ctx.input(5), ctx.input(8));
  const auto x_scale = read_scales(ctx, ctx.required_input(1), "x_scale");
  const auto w_scale = read_scales(ctx, ctx.required_input(4), "w_scale");
  const auto y_scale = read_scales(ctx, ctx.required_input(6), "y_scale");
  if (x_scale.size() != 1 || y_scale.size() != 1) ctx.unsupported("x_scale and y_scale must be single values (per-tensor)");
  if (w_scale.size() != 1 && static_cast<std::int64_t>(w_scale.size()) != p.out_channels)
    ctx.fail(errc::shape_mismatch, "w_scale: expected 1 or " + std::to_string(p.out_channels) + " values, found " + std::to_string(w_scale.size()));
  const auto zps = read_zero_points(ctx, y_zp, 1, "y_zero_point");
  if (zps.size() != 1) ctx.unsupported("y_zero_point must be a single value (per-tensor)");
  const dtype yt = y_zp ? y_zp->dtype() : x.dtype();
  tensor y(yt, acc.shape());
  const std::int32_t* pa = acc.view<std::int32_t>().data();
  const std::int64_t plane = p.win.out_size();
  auto body = [&](auto tag) {
    using Q = decltype(tag);
    Q* py = y.view<Q>().data();
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(acc.size()); ++i) {
      const std::int64_t m = i / plane % p.out_channels;
      // ONNX Runtime's order: (x_scale * w_scale) / y_scale, in float.
      const float scale = x_scale[0] * w_scale[w_scale.size() == 1 ? 0 : static_cast<std::size_t>(m)] / y_scale[0];
      py[i] = requantize<Q>(pa[i], scale, zps[0]);
    }
  };
  if (yt == dtype::uint8) body(std::uint8_t{});
  else if (yt == dtype::int8) body(std::int8_t{});
  else ctx.fail(errc::unsupported_dtype, "output element type " + to_string(yt) + " is not supported");
  ctx.set_output(0, std::move(y));
}

// ---- ConvTranspose -----------------------------------------------------------------------

/// ConvTranspose geometry (ONNX operator spec): `in` is the input, `out` the output, and
/// pad_begin/pad_end crop the full result s * (in - 1) + output_padding + extent. pad_end may
/// be negative when output_shape asks for more than the full result: those positions get only
/// the bias.
inline window_geometry make_transpose_window(const op_context& ctx, std::vector<std::int64_t> in, std::vector<std::int64_t> kernel) {
  window_geometry g;
  const std::size_t r = in.size();
  g.in = std::move(in);
  g.kernel = std::move(kernel);
  g.stride = spatial_attr(ctx, "strides", r, 1, 1);
  g.dilation = spatial_attr(ctx, "dilations", r, 1, 1);
  const std::vector<std::int64_t> out_pad = spatial_attr(ctx, "output_padding", r, 0, 0);
  for (std::size_t i = 0; i < r; ++i)
    if (out_pad[i] >= std::max(g.stride[i], g.dilation[i]))
      ctx.fail(errc::invalid_model, "output_padding " + join(out_pad) + " must be smaller than the stride or the dilation");
  const std::string auto_pad = ctx.node().attr_string("auto_pad", "NOTSET");
  std::vector<std::int64_t> out_shape = ctx.node().attr_ints("output_shape", {});
  if (out_shape.size() == r + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);  // written with N and C
  if (!out_shape.empty() && out_shape.size() != r)
    ctx.fail(errc::invalid_model, "attribute output_shape " + join(out_shape) + " does not have " + std::to_string(r) + " spatial values");
  g.pad_begin.assign(r, 0);
  g.pad_end.assign(r, 0);
  g.out.assign(r, 0);
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  const std::vector<std::int64_t> pads = (auto_pad == "NOTSET" || auto_pad.empty()) ? ctx.node().attr_ints("pads", {}) : std::vector<std::int64_t>{};
  if (!pads.empty() && pads.size() != 2 * r)
    ctx.fail(errc::invalid_model, "attribute pads has " + std::to_string(pads.size()) + " values for " + std::to_string(r) + " spatial axes");
  for (std::size_t i = 0; i < r; ++i) {
    const std::int64_t full = g.stride[i] * (g.in[i] - 1) + out_pad[i] + g.extent(i);
    if (!out_shape.empty() || same) {
      g.out[i] = out_shape.empty() ? g.in[i] * g.stride[i] : out_shape[i];
      const std::int64_t total = full - g.out[i];
      // Floor division: a negative total (output_shape beyond the full result) extends the end.
      const std::int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      if (auto_pad == "SAME_UPPER") {
        g.pad_begin[i] = half;
        g.pad_end[i] = total - half;
      } else {
        g.pad_begin[i] = total - half;
        g.pad_end[i] = half;
      }
    } else {
      if (!pads.empty()) {
        g.pad_begin[i] = pads[i];
        g.pad_end[i] = pads[i + r];
        if (pads[i] < 0 || pads[i + r] < 0) ctx.unsupported("negative pads " + join(pads));
      }
      g.out[i] = full - g.pad_begin[i] - g.pad_end[i];
    }
    if (g.out[i] < 1)
      ctx.fail(errc::shape_mismatch, "the output would have size " + std::to_string(g.out[i]) + " along spatial axis " + std::to_string(i));
  }
  return g;
}

/// Adds col[(m, kernel offset) x input position] into y (one output plane per m), skipping
/// positions cropped by the pads.
template <class T>
void col2im(const window_geometry& g, const T* col, std::int64_t channels, T* y) {
  const std::size_t r = g.rank();
  const std::int64_t ks = g.kernel_size(), pin = g.in_size(), pout = g.out_size();
  const std::int64_t in_w = g.in[r - 1], out_w = g.out[r - 1], sw = g.stride[r - 1];
  std::vector<std::int64_t> k(r, 0), idx(r, 0);
  for (std::int64_t row = 0; row < channels * ks; ++row) {
    const std::int64_t m = row / ks;
    std::int64_t rest = row % ks;
    for (std::size_t d = r; d-- > 0;) {
      k[d] = rest % g.kernel[d];
      rest /= g.kernel[d];
    }
    const T* src = col + row * pin;
    T* ym = y + m * pout;
    const std::int64_t off = k[r - 1] * g.dilation[r - 1] - g.pad_begin[r - 1];
    // Input columns iw with 0 <= iw * sw + off < out_w.
    const std::int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    const std::int64_t hi = out_w - 1 - off < 0 ? 0 : std::min(in_w, (out_w - 1 - off) / sw + 1);
    const std::int64_t outer_count = pin / in_w;
    for (std::int64_t o = 0; o < outer_count; ++o) {
      std::int64_t rem = o, base = 0, scale = 1;
      bool inside = true;
      for (std::size_t d = r - 1; d-- > 0;) {
        const std::int64_t i = rem % g.in[d];
        rem /= g.in[d];
        const std::int64_t pos = i * g.stride[d] + k[d] * g.dilation[d] - g.pad_begin[d];
        if (pos < 0 || pos >= g.out[d]) inside = false;
        base += pos * scale;
        scale *= g.out[d];
      }
      if (!inside || lo >= hi) continue;
      const T* s = src + o * in_w;
      T* dst = ym + base * out_w;
      for (std::int64_t iw = lo; iw < hi; ++iw) dst[iw * sw + off] += s[iw];
    }
  }
}

inline void run_conv_transpose(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& w = ctx.required_input(1);
  const tensor* b = ctx.input(2);
  if (w.dtype() != x.dtype() || (b && b->dtype() != x.dtype()))
    ctx.fail(errc::dtype_mismatch, "X, W and B must share one element type");
  const shape& xs = x.shape();
  const shape& ws = w.shape();
  if (xs.rank() < 3 || xs.rank() > 5) ctx.unsupported("input X of shape " + to_string(xs) + ": only 1-D, 2-D and 3-D transposed convolutions are supported");
  if (ws.rank() != xs.rank()) throw_shape_mismatch(ctx.node().context(), "W of rank " + std::to_string(xs.rank()), to_string(ws));
  const std::int64_t group = ctx.node().attr_int("group", 1);
  if (group < 1 || xs[1] != ws[0] || ws[0] % group != 0)
    throw_shape_mismatch(ctx.node().context(), "W.shape[0] = X channels, divisible by group " + std::to_string(group),
                         "X " + to_string(xs) + ", W " + to_string(ws));
  std::vector<std::int64_t> kernel = spatial_dims(ws);
  const std::vector<std::int64_t> kattr = ctx.node().attr_ints("kernel_shape", {});
  if (!kattr.empty() && kattr != kernel) throw_shape_mismatch(ctx.node().context(), "kernel_shape " + join(kattr) + " to match W", to_string(ws));
  const window_geometry g = make_transpose_window(ctx, spatial_dims(xs), std::move(kernel));
  const std::int64_t n_batch = xs[0], c = xs[1], cg = c / group, mg = ws[1], m_total = mg * group;
  if (b && (b->rank() != 1 || b->shape()[0] != m_total))
    throw_shape_mismatch(ctx.node().context(), "B of shape [" + std::to_string(m_total) + "]", to_string(b->shape()));
  std::vector<std::int64_t> od{n_batch, m_total};
  od.insert(od.end(), g.out.begin(), g.out.end());
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y = tensor::uninitialized(x.dtype(), shape(od));  // bias-filled per plane below
    const T* px = x.view<T>().data();
    const T* pw = w.view<T>().data();
    const T* pb = b ? b->view<T>().data() : nullptr;
    T* py = y.view<T>().data();
    const std::int64_t ks = g.kernel_size(), pin = g.in_size(), pout = g.out_size();
    // Output channels per task: the col block stays near 2^20 elements.
    const std::int64_t per_task = std::clamp<std::int64_t>((std::int64_t{1} << 20) / std::max<std::int64_t>(ks * pin, 1), 1, mg);
    const std::int64_t tiles = (mg + per_task - 1) / per_task;
    std::vector<gemm_scratch<T>> scratch(static_cast<std::size_t>(std::max(ctx.threads(), 1)));
    parallel_tasks(static_cast<std::size_t>(n_batch * group * tiles), ctx.threads(), [&](std::size_t t, std::size_t worker) {
      const std::int64_t ti = static_cast<std::int64_t>(t);
      const std::int64_t m0 = ti % tiles * per_task, ng = ti / tiles;
      const std::int64_t n = ng / group, gi = ng % group;
      const std::int64_t count = std::min(per_task, mg - m0);
      gemm_scratch<T>& col = scratch[worker];
      col.resize(static_cast<std::size_t>(per_task * ks * pin));
      // col[(m, k) x p] = sum_c W[c, m, k] * X[c, p] over this group's input channels.
      const T* wg = pw + gi * cg * mg * ks + m0 * ks;
      const T* xg = px + (n * c + gi * cg) * pin;
      gemm<T>(count * ks, pin, cg, T(1), {wg, mg * ks, true}, {xg, pin, false}, col.data(), pin, false);
      T* yg = py + (n * m_total + gi * mg + m0) * pout;
      for (std::int64_t m = 0; m < count; ++m) std::fill(yg + m * pout, yg + (m + 1) * pout, pb ? pb[gi * mg + m0 + m] : T(0));
      col2im(g, col.data(), count, yg);
    });
    return y;
  }));
}

}  // namespace detail

/// Registers Conv, ConvTranspose, ConvInteger and QLinearConv.
inline void register_conv_ops(op_registry& r) {
  using namespace detail;
  r.add("Conv", run_conv, types::floats, check_conv);
  r.add("ConvTranspose", run_conv_transpose, types::floats, check_conv);
  r.add("ConvInteger", run_conv_integer, types::bit(dtype::uint8) | types::bit(dtype::int8), check_conv, 10);
  r.add("QLinearConv", run_qlinear_conv, types::bit(dtype::uint8) | types::bit(dtype::int8), check_conv, 10);
}

}  // namespace quench::runtime
