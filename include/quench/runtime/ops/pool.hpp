#pragma once
// Pooling: MaxPool (with the optional Indices output and storage_order), AveragePool
// (count_include_pad), LpPool, and GlobalAveragePool / GlobalMaxPool / GlobalLpPool, over 1-D,
// 2-D and 3-D inputs with strides, dilations, pads, auto_pad and ceil_mode. The window geometry
// is Conv's (conv.hpp), so both agree on auto_pad and output sizes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/conv.hpp"

namespace quench::runtime {

namespace detail {

enum class pool_kind { max, average, lp };

/// The geometry with leading axes of size 1 up to three spatial axes: one loop nest then serves
/// 1-D, 2-D and 3-D, and flat indices (row- or column-major) are unchanged by the extra axes.
inline window_geometry as_3d(window_geometry g) {
  while (g.rank() < 3) {
    g.in.insert(g.in.begin(), 1);
    g.kernel.insert(g.kernel.begin(), 1);
    g.stride.insert(g.stride.begin(), 1);
    g.dilation.insert(g.dilation.begin(), 1);
    g.pad_begin.insert(g.pad_begin.begin(), 0);
    g.pad_end.insert(g.pad_end.begin(), 0);
    g.out.insert(g.out.begin(), 1);
  }
  return g;
}

/// Per output coordinate along one axis: where its window starts, the range [lo, hi) of taps
/// that read the input, and how many taps fall inside input plus padding (count_include_pad).
struct axis_taps {
  std::vector<std::int64_t> start, lo, hi, padded;
};

inline axis_taps taps_for_axis(const window_geometry& g, std::size_t i) {
  axis_taps t;
  const std::int64_t in = g.in[i], k = g.kernel[i], d = g.dilation[i];
  for (std::int64_t o = 0; o < g.out[i]; ++o) {
    const std::int64_t s = o * g.stride[i] - g.pad_begin[i];
    const std::int64_t lo = s >= 0 ? 0 : std::min(k, (-s + d - 1) / d);
    const std::int64_t hi = in - 1 - s < 0 ? 0 : std::min(k, (in - 1 - s) / d + 1);
    const std::int64_t end = in + g.pad_end[i] - 1 - s;
    t.start.push_back(s);
    t.lo.push_back(lo);
    t.hi.push_back(std::max(lo, hi));
    t.padded.push_back(end < 0 ? 0 : std::min(k, end / d + 1));
  }
  return t;
}

struct pool_options {
  pool_kind kind = pool_kind::max;
  bool count_include_pad = false;
  std::int64_t p = 2;          ///< LpPool norm
  bool column_major = false;   ///< MaxPool storage_order = 1
};

/// 2-D max pooling of one plane in two passes per output row: the column maxima over the kernel
/// rows (contiguous, vectorizable), then the maxima over the kernel columns. Same values as the
/// direct loop (the largest non-NaN value of the window, lowest() if none), except that when +0
/// and -0 tie either may be returned.
template <class T>
void max_pool_plane_2d(const window_geometry& g, const axis_taps& th, const axis_taps& tw, const T* xp, T* yp, std::vector<T>& column) {
  const std::int64_t W = g.in[2], dh = g.dilation[1], dw = g.dilation[2];
  column.resize(static_cast<std::size_t>(W));
  T* col = column.data();
  for (std::int64_t oh = 0; oh < g.out[1]; ++oh) {
    const auto b = static_cast<std::size_t>(oh);
    std::fill(col, col + W, std::numeric_limits<T>::lowest());
    for (std::int64_t kh = th.lo[b]; kh < th.hi[b]; ++kh) {
      const T* row = xp + (th.start[b] + kh * dh) * W;
      for (std::int64_t iw = 0; iw < W; ++iw) col[iw] = row[iw] > col[iw] ? row[iw] : col[iw];
    }
    T* yr = yp + oh * g.out[2];
    for (std::int64_t ow = 0; ow < g.out[2]; ++ow) {
      const auto c = static_cast<std::size_t>(ow);
      T best = std::numeric_limits<T>::lowest();
      for (std::int64_t kw = tw.lo[c]; kw < tw.hi[c]; ++kw) {
        const T v = col[tw.start[c] + kw * dw];
        best = v > best ? v : best;
      }
      yr[ow] = best;
    }
  }
}

/// Pools `planes` planes of x into y (and the flat input index of each maximum into `indices`,
/// when not null). g must be as_3d.
template <class T>
void pool_planes(const window_geometry& g, const pool_options& opt, std::int64_t planes, const T* x, T* y, std::int64_t* indices,
                 int threads) {
  const axis_taps td = taps_for_axis(g, 0), th = taps_for_axis(g, 1), tw = taps_for_axis(g, 2);
  const std::int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  const std::int64_t plane_in = D * H * W, plane_out = g.out_size();
  const std::int64_t dd = g.dilation[0], dh = g.dilation[1], dw = g.dilation[2];
  if (opt.kind == pool_kind::max && !indices && g.in[0] == 1 && g.kernel[0] == 1 && g.out[0] == 1) {
    std::vector<std::vector<T>> columns(static_cast<std::size_t>(std::max(threads, 1)));
    parallel_tasks(static_cast<std::size_t>(planes), threads, [&](std::size_t pi, std::size_t worker) {
      const auto plane = static_cast<std::int64_t>(pi);
      max_pool_plane_2d(g, th, tw, x + plane * plane_in, y + plane * plane_out, columns[worker]);
    });
    return;
  }
  parallel_tasks(static_cast<std::size_t>(planes), threads, [&](std::size_t pi, std::size_t) {
    const std::int64_t plane = static_cast<std::int64_t>(pi);
    const T* xp = x + plane * plane_in;
    T* yp = y + plane * plane_out;
    std::int64_t* ip = indices ? indices + plane * plane_out : nullptr;
    std::int64_t o = 0;
    for (std::int64_t od = 0; od < g.out[0]; ++od)
      for (std::int64_t oh = 0; oh < g.out[1]; ++oh)
        for (std::int64_t ow = 0; ow < g.out[2]; ++ow, ++o) {
          const std::size_t a = static_cast<std::size_t>(od), b = static_cast<std::size_t>(oh), c = static_cast<std::size_t>(ow);
          if (opt.kind == pool_kind::max) {
            T best = std::numeric_limits<T>::lowest();
            std::int64_t at = -1;
            for (std::int64_t kd = td.lo[a]; kd < td.hi[a]; ++kd) {
              const std::int64_t id = td.start[a] + kd * dd;
              for (std::int64_t kh = th.lo[b]; kh < th.hi[b]; ++kh) {
                const std::int64_t ih = th.start[b] + kh * dh;
                const T* row = xp + (id * H + ih) * W;
                for (std::int64_t kw = tw.lo[c]; kw < tw.hi[c]; ++kw) {
                  const std::int64_t iw = tw.start[c] + kw * dw;
                  // Strictly greater: the first maximum wins and NaN never replaces a number.
                  const T v = row[iw];
                  if (v > best) {
                    best = v;
                    at = opt.column_major ? id + ih * D + iw * D * H : (id * H + ih) * W + iw;
                  } else if (at < 0) {
                    at = opt.column_major ? id + ih * D + iw * D * H : (id * H + ih) * W + iw;
                  }
                }
              }
            }
            yp[o] = best;
            if (ip) ip[o] = plane * plane_in + std::max<std::int64_t>(at, 0);
            continue;
          }
          double acc = 0;
          for (std::int64_t kd = td.lo[a]; kd < td.hi[a]; ++kd) {
            const std::int64_t id = td.start[a] + kd * dd;
            for (std::int64_t kh = th.lo[b]; kh < th.hi[b]; ++kh) {
              const T* row = xp + (id * H + th.start[b] + kh * dh) * W;
              for (std::int64_t kw = tw.lo[c]; kw < tw.hi[c]; ++kw) {
                const double v = static_cast<double>(row[tw.start[c] + kw * dw]);
                if (opt.kind == pool_kind::average) acc += v;
                else acc += opt.p == 2 ? v * v : (opt.p == 1 ? std::fabs(v) : std::pow(std::fabs(v), static_cast<double>(opt.p)));
              }
            }
          }
          if (opt.kind == pool_kind::average) {
            const std::int64_t n = opt.count_include_pad ? td.padded[a] * th.padded[b] * tw.padded[c]
                                                         : (td.hi[a] - td.lo[a]) * (th.hi[b] - th.lo[b]) * (tw.hi[c] - tw.lo[c]);
            yp[o] = static_cast<T>(acc / static_cast<double>(n));
          } else {
            yp[o] = static_cast<T>(opt.p == 2 ? std::sqrt(acc) : (opt.p == 1 ? acc : std::pow(acc, 1.0 / static_cast<double>(opt.p))));
          }
        }
  });
}

inline void check_pool(const node& n, std::int64_t) {
  check_auto_pad(n);
  if (n.attr_ints("kernel_shape", {}).empty())
    throw_error(errc::invalid_model, n.context(), "the kernel_shape attribute is required");
  const std::int64_t order = n.attr_int("storage_order", 0);
  if (order != 0 && order != 1)
    throw_error(errc::invalid_model, n.context(), "storage_order must be 0 or 1, found " + std::to_string(order));
}

inline std::vector<std::int64_t> pooled_shape(const shape& xs, const window_geometry& g) {
  std::vector<std::int64_t> d{xs[0], xs[1]};
  d.insert(d.end(), g.out.begin(), g.out.end());
  return d;
}

template <pool_kind Kind>
void run_pool(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const shape& xs = x.shape();
  if (xs.rank() < 3 || xs.rank() > 5)
    ctx.unsupported("input of shape " + to_string(xs) + ": only 1-D, 2-D and 3-D pooling (rank 3 to 5) is supported");
  const std::vector<std::int64_t> kernel = ctx.node().attr_ints("kernel_shape", {});
  if (kernel.size() != xs.rank() - 2)
    ctx.fail(errc::invalid_model, "kernel_shape " + join(kernel) + " does not have " + std::to_string(xs.rank() - 2) + " spatial values for input " + to_string(xs));
  const bool ceil_mode = ctx.node().attr_int("ceil_mode", 0) != 0;
  const window_geometry g = make_window(ctx, spatial_dims(xs), kernel, ceil_mode);
  pool_options opt;
  opt.kind = Kind;
  opt.count_include_pad = ctx.node().attr_int("count_include_pad", 0) != 0;
  opt.column_major = ctx.node().attr_int("storage_order", 0) != 0;
  opt.p = ctx.node().attr_int("p", 2);
  if (Kind == pool_kind::lp && opt.p < 1) ctx.fail(errc::invalid_model, "p must be >= 1, found " + std::to_string(opt.p));
  const shape ys(pooled_shape(xs, g));
  const bool want_indices = Kind == pool_kind::max && ctx.output_wanted(1);
  tensor indices = want_indices ? tensor(dtype::int64, ys) : tensor();
  auto body = [&](auto tag) {
    using T = decltype(tag);
    tensor y = tensor::uninitialized(x.dtype(), ys);
    pool_planes<T>(as_3d(g), opt, xs[0] * xs[1], x.view<T>().data(), y.view<T>().data(),
                   want_indices ? indices.view<std::int64_t>().data() : nullptr, ctx.threads());
    return y;
  };
  if constexpr (Kind == pool_kind::max) {
    switch (x.dtype()) {
      case dtype::int8: ctx.set_output(0, body(std::int8_t{})); break;
      case dtype::uint8: ctx.set_output(0, body(std::uint8_t{})); break;
      default: ctx.set_output(0, visit_float(x.dtype(), ctx, body));
    }
  } else {
    ctx.set_output(0, visit_float(x.dtype(), ctx, body));
  }
  if (want_indices) ctx.set_output(1, std::move(indices));
}

/// GlobalAveragePool, GlobalMaxPool, GlobalLpPool: one value per (n, c) plane.
template <pool_kind Kind>
void run_global_pool(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const shape& xs = x.shape();
  if (xs.rank() < 3) ctx.fail(errc::shape_mismatch, "expects an input of rank >= 3 (N, C, spatial...), found " + to_string(xs));
  std::vector<std::int64_t> d(xs.rank(), 1);
  d[0] = xs[0];
  d[1] = xs[1];
  const std::int64_t p = ctx.node().attr_int("p", 2);
  if (Kind == pool_kind::lp && p < 1) ctx.fail(errc::invalid_model, "p must be >= 1, found " + std::to_string(p));
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y(x.dtype(), shape(d));
    const std::size_t planes = static_cast<std::size_t>(xs[0] * xs[1]);
    const std::size_t n = planes ? x.size() / planes : 0;
    const T* px = x.view<T>().data();
    T* py = y.view<T>().data();
    for (std::size_t i = 0; i < planes; ++i) {
      const T* s = px + i * n;
      if constexpr (Kind == pool_kind::max) {
        T best = std::numeric_limits<T>::lowest();
        for (std::size_t j = 0; j < n; ++j) best = s[j] > best ? s[j] : best;
        py[i] = best;
      } else if constexpr (Kind == pool_kind::average) {
        double acc = 0;
        for (std::size_t j = 0; j < n; ++j) acc += static_cast<double>(s[j]);
        py[i] = static_cast<T>(acc / static_cast<double>(n));
      } else {
        double acc = 0;
        for (std::size_t j = 0; j < n; ++j) acc += std::pow(std::fabs(static_cast<double>(s[j])), static_cast<double>(p));
        py[i] = static_cast<T>(std::pow(acc, 1.0 / static_cast<double>(p)));
      }
    }
    return y;
  }));
}

}  // namespace detail

/// Registers MaxPool, AveragePool, LpPool and the global pools.
inline void register_pool_ops(op_registry& r) {
  using namespace detail;
  r.add("MaxPool", run_pool<pool_kind::max>, types::floats | types::bit(dtype::int8) | types::bit(dtype::uint8), check_pool);
  r.add("AveragePool", run_pool<pool_kind::average>, types::floats, check_pool);
  r.add("LpPool", run_pool<pool_kind::lp>, types::floats, check_pool);
  r.add("GlobalAveragePool", run_global_pool<pool_kind::average>, types::floats);
  r.add("GlobalMaxPool", run_global_pool<pool_kind::max>, types::floats);
  r.add("GlobalLpPool", run_global_pool<pool_kind::lp>, types::floats);
}

}  // namespace quench::runtime
