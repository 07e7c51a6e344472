#pragma once
// Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9).
//
// Semantics are the ONNX operator's, checked against two references that agree almost
// everywhere: the ONNX reference implementation (onnx/reference/ops/op_resize.py, which produced
// the backend test data) and ONNX Runtime 1.30.
//
//   * output size: floor(input * scale) from scales, or `sizes` (with keep_aspect_ratio_policy
//     not_larger / not_smaller: one scale for all listed axes, sizes rounded half up);
//   * the coordinate transforms half_pixel, half_pixel_symmetric, pytorch_half_pixel,
//     align_corners, asymmetric, tf_half_pixel_for_nn (opset 11 only) and tf_crop_and_resize;
//   * nearest with round_prefer_floor / round_prefer_ceil / floor / ceil; linear and cubic
//     (cubic_coeff_a, exclude_outside) over any number of axes; antialias (18) widening the
//     linear/cubic kernels by 1/scale when downsampling; neighbours beyond the border repeat the
//     edge element; tf_crop_and_resize writes extrapolation_value outside the region of interest.
//
// Where the two references differ:
//   * scales, sizes and source coordinates are computed in float as ONNX Runtime does (the
//     reference uses double); this decides nearest rounding when a coordinate is within a float
//     rounding error of an integer, and the output size for scales such as 0.7f * 10;
//   * align_corners given scales divides by scale * input length, as the reference and its test
//     data do; ONNX Runtime divides by the integer output length (and fails those tests);
//   * pytorch_half_pixel maps a length-1 output to 0 as the operator text and ONNX Runtime say
//     (the reference uses -0.5);
//   * tf_crop_and_resize applies the roi on every axis, scale 1 included, as the operator text
//     and the reference do; ONNX Runtime leaves scale-1 axes alone.
//
// Before opset 11 (Resize-10, Upsample) coordinates are asymmetric and nearest rounds the way
// ONNX Runtime's "simple" mode does: down when upsampling, up when downsampling.
//
// The roi does not change the output size, as in both references, although the operator text
// multiplies it in. Linear and cubic modes take float and double inputs; nearest any numeric
// type. Separable: each resized axis is one pass, innermost first, accumulating in double.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/shape_ops.hpp"

namespace quench::runtime {

namespace detail::resize_ops {

enum class interp { nearest, linear, cubic };
enum class coord {
  half_pixel,
  half_pixel_symmetric,
  pytorch_half_pixel,
  align_corners,
  asymmetric,
  tf_half_pixel_for_nn,
  tf_crop_and_resize,
};
enum class rounding { round_prefer_floor, round_prefer_ceil, floor, ceil, legacy };
enum class aspect { stretch, not_larger, not_smaller };

struct resize_attrs {
  interp mode = interp::nearest;
  coord transform = coord::half_pixel;
  rounding nearest = rounding::round_prefer_floor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool antialias = false;
  aspect policy = aspect::stretch;
  std::vector<std::int64_t> axes;  ///< opset 18; empty = all
};

/// Reads and validates the attributes for `opset`; `upsample` for the Upsample operator.
inline resize_attrs parse_attrs(const node& n, std::int64_t opset, bool upsample) {
  resize_attrs a;
  auto bad = [&](const std::string& what) { throw_error(errc::unsupported_op, n.context(), what); };
  const std::string mode = n.attr_string("mode", "nearest");
  if (mode == "nearest")
    a.mode = interp::nearest;
  else if (mode == "linear" || (upsample && mode == "bilinear"))
    a.mode = interp::linear;
  else if (mode == "cubic" && !upsample && opset >= 11)
    a.mode = interp::cubic;
  else
    bad("mode '" + mode + "' is not supported at opset " + std::to_string(opset));
  if (upsample || opset < 11) {
    a.transform = coord::asymmetric;
    a.nearest = rounding::legacy;
    return a;
  }
  const std::string ct = n.attr_string("coordinate_transformation_mode", "half_pixel");
  if (ct == "half_pixel")
    a.transform = coord::half_pixel;
  else if (ct == "half_pixel_symmetric" && opset >= 19)
    a.transform = coord::half_pixel_symmetric;
  else if (ct == "pytorch_half_pixel")
    a.transform = coord::pytorch_half_pixel;
  else if (ct == "align_corners")
    a.transform = coord::align_corners;
  else if (ct == "asymmetric")
    a.transform = coord::asymmetric;
  else if (ct == "tf_half_pixel_for_nn" && opset < 13)
    a.transform = coord::tf_half_pixel_for_nn;
  else if (ct == "tf_crop_and_resize")
    a.transform = coord::tf_crop_and_resize;
  else
    bad("coordinate_transformation_mode '" + ct + "' is not supported at opset " + std::to_string(opset));
  const std::string nm = n.attr_string("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor")
    a.nearest = rounding::round_prefer_floor;
  else if (nm == "round_prefer_ceil")
    a.nearest = rounding::round_prefer_ceil;
  else if (nm == "floor")
    a.nearest = rounding::floor;
  else if (nm == "ceil")
    a.nearest = rounding::ceil;
  else
    bad("nearest_mode '" + nm + "' is not supported");
  a.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = n.attr_float("extrapolation_value", 0.f);
  if (opset >= 18) {
    a.antialias = n.attr_int("antialias", 0) != 0;
    if (a.antialias && a.mode == interp::nearest) bad("antialias applies to linear and cubic modes only");
    const std::string kp = n.attr_string("keep_aspect_ratio_policy", "stretch");
    if (kp == "stretch")
      a.policy = aspect::stretch;
    else if (kp == "not_larger")
      a.policy = aspect::not_larger;
    else if (kp == "not_smaller")
      a.policy = aspect::not_smaller;
    else
      bad("keep_aspect_ratio_policy '" + kp + "' is not supported");
    a.axes = n.attr_ints("axes", {});
  }
  return a;
}

template <bool Upsample>
void check_resize(const node& n, std::int64_t opset) {
  const resize_attrs a = parse_attrs(n, opset, Upsample);
  if (a.mode != interp::nearest)
    if (const value* x = n.input(0);
        x && x->elem_type() != 0 && x->dtype() != dtype::float32 && x->dtype() != dtype::float64)
      throw_error(errc::unsupported_op, n.context(),
                  "linear and cubic modes need a float or double input, found element type " +
                      std::to_string(x->elem_type()));
  if (Upsample && opset < 9 && !n.find_attribute("scales"))
    throw_error(errc::invalid_model, n.context(), "requires the 'scales' attribute");
}

/// Values of a float32/float64/float16 input as doubles.
inline std::vector<double> doubles_of(const op_context& ctx, const tensor& t, const std::string& what) {
  if (t.rank() > 1)
    ctx.fail(errc::shape_mismatch, what + ": expected a 1-D tensor, found shape " + to_string(t.shape()));
  std::vector<double> v(t.size());
  switch (t.dtype()) {
    case dtype::float32:
      std::copy(t.view<float>().begin(), t.view<float>().end(), v.begin());
      break;
    case dtype::float64:
      std::copy(t.view<double>().begin(), t.view<double>().end(), v.begin());
      break;
    case dtype::float16:
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<double>(static_cast<float>(t.view<float16>()[i]));
      break;
    default:
      ctx.fail(errc::dtype_mismatch,
               what + ": expected float, double or float16, found " + to_string(t.dtype()));
  }
  return v;
}

/// Where each output index of one axis reads: `taps` (index, weight) pairs, or the
/// extrapolation value (tf_crop_and_resize outside the region of interest).
struct axis_map {
  std::size_t in = 0, out = 0, taps = 1;
  std::vector<std::int64_t> index;  ///< out * taps, clamped into [0, in)
  std::vector<double> weight;       ///< out * taps
  std::vector<char> outside;        ///< out

  bool identity() const noexcept {
    if (in != out) return false;
    for (std::size_t o = 0; o < out; ++o) {
      if (outside[o]) return false;
      for (std::size_t t = 0; t < taps; ++t) {
        const double w = weight[o * taps + t];
        if (w != 0.0 && (w != 1.0 || index[o * taps + t] != static_cast<std::int64_t>(o))) return false;
      }
    }
    return true;
  }
};

/// Kernel weights for fractional position `ratio` in (0, 1] after `base`, with the offset of the
/// first tap relative to base.
inline int tap_weights(const resize_attrs& a, double ratio, double scale, std::vector<double>& w) {
  w.clear();
  if (a.mode == interp::linear && !a.antialias) {
    w = {1 - ratio, ratio};
    return 0;
  }
  if (a.mode == interp::cubic && !a.antialias) {
    const double A = a.cubic_a, r1 = ratio + 1, r0 = 1 - ratio, r2 = r0 + 1;
    w = {((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A, ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1,
         ((A + 2) * r0 - (A + 3)) * r0 * r0 + 1, ((A * r2 - 5 * A) * r2 + 8 * A) * r2 - 4 * A};
    return -1;
  }
  // Antialiasing stretches the kernel by 1/scale when downsampling and renormalises it.
  const double s = std::min(scale, 1.0);
  double sum = 0;
  int start;
  if (a.mode == interp::linear) {
    start = static_cast<int>(std::floor(-1 / s) + 1);
    const int n = 2 - 2 * start;
    for (int i = start; i < start + n; ++i) w.push_back(std::clamp(1 - std::fabs((i - ratio) * s), 0.0, 1.0));
  } else {
    const double A = a.cubic_a;
    start = static_cast<int>(std::floor(-2 / s) + 1);
    for (int i = start; i < 2 - start; ++i) {
      const double x = std::fabs(s * (i - ratio)), x2 = x * x, x3 = x2 * x;
      w.push_back(x <= 1  ? (A + 2) * x3 - (A + 3) * x2 + 1
                  : x < 2 ? A * x3 - 5 * A * x2 + 8 * A * x - 4 * A
                          : 0.0);
    }
  }
  for (double v : w) sum += v;
  for (double& v : w) v /= sum;
  return start;
}

/// The input coordinate of output index x. Computed in float with ONNX Runtime's operation
/// order, so that nearest rounding agrees with it where a coordinate lands on a tie. `length` is
/// the resized length: the integer output size, except for align_corners given scales, where the
/// reference divides by scale * input length (the backend test data depend on it; ONNX Runtime
/// uses the integer size and fails those two tests).
inline float source_coordinate(const resize_attrs& a, float x, std::size_t in, std::size_t out, float scale,
                               float align_length, float roi_start, float roi_end) {
  const auto in_f = static_cast<float>(in);
  const auto length = static_cast<float>(out);
  switch (a.transform) {
    case coord::half_pixel:
      return (x + 0.5f) / scale - 0.5f;
    case coord::half_pixel_symmetric: {
      const float adjustment = length / (scale * in_f);
      const float offset = in_f / 2 * (1 - adjustment);
      return static_cast<float>(offset + (x + 0.5) / scale - 0.5);
    }
    case coord::pytorch_half_pixel:
      return length > 1 ? (x + 0.5f) / scale - 0.5f : 0.f;
    case coord::align_corners:
      return align_length == 1 ? 0.f : x * (in_f - 1) / (align_length - 1);
    case coord::asymmetric:
      return x / scale;
    case coord::tf_half_pixel_for_nn:
      return (x + 0.5f) / scale;
    case coord::tf_crop_and_resize:
      return length > 1 ? roi_start * (in_f - 1) + (x * (roi_end - roi_start) * (in_f - 1)) / (length - 1)
                        : static_cast<float>(0.5 * (roi_start + roi_end) * (in_f - 1));
  }
  return 0.f;
}

inline axis_map make_axis_map(const resize_attrs& a, std::size_t in, std::size_t out, float scale,
                              float align_length, float roi_start, float roi_end) {
  axis_map m;
  m.in = in;
  m.out = out;
  m.outside.assign(out, 0);
  std::vector<double> w;
  // The kernel width depends on the mode and (with antialias) the scale only: fixed per axis.
  m.taps = a.mode == interp::nearest ? 1 : (tap_weights(a, 0.5, scale, w), w.size());
  m.index.reserve(out * m.taps);
  m.weight.reserve(out * m.taps);
  const auto last = static_cast<std::int64_t>(in) - 1;
  for (std::size_t o = 0; o < out; ++o) {
    const double x =
        source_coordinate(a, static_cast<float>(o), in, out, scale, align_length, roi_start, roi_end);
    if (a.transform == coord::tf_crop_and_resize && (x < 0 || x > static_cast<double>(last))) {
      m.outside[o] = 1;
      m.index.insert(m.index.end(), m.taps, 0);
      m.weight.insert(m.weight.end(), m.taps, 0.0);
      continue;
    }
    if (a.mode == interp::nearest) {
      std::int64_t i;
      if (a.nearest == rounding::legacy) {
        i = scale < 1 ? static_cast<std::int64_t>(std::ceil(x)) : static_cast<std::int64_t>(x);
      } else if (x == std::floor(x)) {
        i = static_cast<std::int64_t>(x);
      } else {
        const double base = std::floor(x), ratio = x - base;
        bool up = false;
        switch (a.nearest) {
          case rounding::round_prefer_floor:
            up = ratio > 0.5;
            break;
          case rounding::round_prefer_ceil:
            up = ratio >= 0.5;
            break;
          case rounding::floor:
            up = false;
            break;
          case rounding::ceil:
            up = true;
            break;
          case rounding::legacy:
            break;
        }
        i = static_cast<std::int64_t>(base) + (up ? 1 : 0);
      }
      m.index.push_back(std::clamp<std::int64_t>(i, 0, last));
      m.weight.push_back(1.0);
      continue;
    }
    // The reference takes the neighbours left of x: an integer x is the right end of its
    // interval (base = x - 1, ratio = 1), so the ratio is in (0, 1].
    const double fl = std::floor(x);
    const double base = x == fl ? fl - 1 : fl;
    const int start = tap_weights(a, x - base, scale, w);
    if (a.exclude_outside) {
      double sum = 0;
      for (std::size_t t = 0; t < w.size(); ++t) {
        const double idx = base + start + static_cast<double>(t);
        if (idx < 0 || idx > static_cast<double>(last)) w[t] = 0;
        sum += w[t];
      }
      for (double& v : w) v /= sum;
    }
    for (std::size_t t = 0; t < w.size(); ++t) {
      const auto idx = static_cast<std::int64_t>(base) + start + static_cast<std::int64_t>(t);
      m.index.push_back(std::clamp<std::int64_t>(idx, 0, last));
      m.weight.push_back(w[t]);
    }
  }
  return m;
}

/// Nearest: a pure gather (any numeric type), with extrapolation_value outside the roi.
template <class T>
tensor resize_nearest(const tensor& x, const std::vector<axis_map>& maps, double extrapolation) {
  const std::size_t r = x.rank();
  std::vector<std::int64_t> dims(r);
  for (std::size_t a = 0; a < r; ++a) dims[a] = static_cast<std::int64_t>(maps[a].out);
  tensor y(x.dtype(), shape(dims));
  if (y.size() == 0) return y;
  const T* in = x.view<T>().data();
  T* out = y.view<T>().data();
  if (r == 0) {
    out[0] = in[0];
    return y;
  }
  const auto xs = shape_ops::strides_of(x.shape());
  const T fill = static_cast<T>(extrapolation);
  const axis_map& last = maps[r - 1];
  std::vector<std::size_t> pos(r, 0);
  for (;;) {
    std::int64_t base = 0;
    bool outside = false;
    for (std::size_t a = 0; a + 1 < r; ++a) {
      outside = outside || maps[a].outside[pos[a]];
      base += maps[a].index[pos[a]] * xs[a];
    }
    for (std::size_t o = 0; o < last.out; ++o)
      out[o] = outside || last.outside[o] ? fill : in[base + last.index[o]];
    out += last.out;
    std::size_t a = r - 1;
    for (;;) {
      if (a == 0) return y;
      --a;
      if (++pos[a] < maps[a].out) break;
      pos[a] = 0;
    }
  }
}

/// Linear and cubic: one weighted pass per resized axis, innermost first.
template <class T>
tensor resize_weighted(const tensor& x, const std::vector<axis_map>& maps, double extrapolation) {
  std::vector<std::int64_t> dims = x.shape().dims();
  tensor cur;
  const T* src = x.view<T>().data();
  std::vector<double> row;
  for (std::size_t a = dims.size(); a-- > 0;) {
    const axis_map& m = maps[a];
    if (m.identity()) continue;
    const shape in_shape(dims);
    const std::size_t outer = in_shape.outer(a), inner = in_shape.inner(a);
    dims[a] = static_cast<std::int64_t>(m.out);
    tensor next(x.dtype(), shape(dims));
    T* dst = next.view<T>().data();
    if (inner == 1) {
      // The innermost axis: one dot product of `taps` per output element.
      for (std::size_t o = 0; o < outer; ++o) {
        const T* s = src + o * m.in;
        T* d = dst + o * m.out;
        for (std::size_t j = 0; j < m.out; ++j) {
          double acc = 0;
          for (std::size_t t = 0; t < m.taps; ++t)
            acc += m.weight[j * m.taps + t] * static_cast<double>(s[m.index[j * m.taps + t]]);
          d[j] = m.outside[j] ? static_cast<T>(extrapolation) : static_cast<T>(acc);
        }
      }
      cur = std::move(next);
      src = cur.view<T>().data();
      continue;
    }
    row.assign(inner, 0.0);
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t j = 0; j < m.out; ++j) {
        T* d = dst + (o * m.out + j) * inner;
        if (m.outside[j]) {
          std::fill(d, d + inner, static_cast<T>(extrapolation));
          continue;
        }
        std::fill(row.begin(), row.end(), 0.0);
        for (std::size_t t = 0; t < m.taps; ++t) {
          const double w = m.weight[j * m.taps + t];
          if (w == 0.0) continue;
          const T* s = src + (o * m.in + static_cast<std::size_t>(m.index[j * m.taps + t])) * inner;
          for (std::size_t i = 0; i < inner; ++i) row[i] += w * static_cast<double>(s[i]);
        }
        for (std::size_t i = 0; i < inner; ++i) d[i] = static_cast<T>(row[i]);
      }
    cur = std::move(next);
    src = cur.view<T>().data();
  }
  if (cur.dtype() == dtype::undefined) return x.clone();
  return cur;
}

template <bool Upsample>
void run_resize(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const resize_attrs a = parse_attrs(ctx.node(), ctx.opset(), Upsample);
  const std::size_t r = x.rank();

  // Scales or sizes per listed axis, and the roi, by signature.
  std::vector<double> scales, roi;
  std::vector<std::int64_t> sizes;
  if (Upsample && ctx.opset() < 9) {
    for (float s : ctx.node().find_attribute("scales") ? ctx.node().find_attribute("scales")->floats
                                                       : std::vector<float>{})
      scales.push_back(s);
  } else if (Upsample || ctx.opset() < 11) {
    scales = doubles_of(ctx, ctx.required_input(1), "scales");
  } else {
    if (const tensor* t = ctx.input(1); t && t->size()) roi = doubles_of(ctx, *t, "roi");
    if (const tensor* t = ctx.input(2); t && t->size()) scales = doubles_of(ctx, *t, "scales");
    if (const tensor* t = ctx.input(3); t && t->size()) sizes = shape_ops::ints_of(ctx, *t, "sizes");
  }
  if (scales.empty() == sizes.empty())
    ctx.fail(errc::invalid_model, "needs exactly one of scales and sizes" +
                                      std::string(scales.empty() ? " (neither given)" : " (both given)"));
  std::vector<std::size_t> axes;
  if (a.axes.empty()) {
    for (std::size_t i = 0; i < r; ++i) axes.push_back(i);
  } else {
    axes = shape_ops::axes_of(ctx, a.axes, r);
  }
  const std::size_t given = scales.empty() ? sizes.size() : scales.size();
  if (given != axes.size())
    ctx.fail(errc::shape_mismatch, std::string(scales.empty() ? "sizes" : "scales") + " has " +
                                       std::to_string(given) + " entries for " + std::to_string(axes.size()) +
                                       " axes of input " + to_string(x.shape()));
  if (a.transform == coord::tf_crop_and_resize && roi.size() != 2 * axes.size())
    ctx.fail(errc::shape_mismatch, "tf_crop_and_resize needs a roi of " + std::to_string(2 * axes.size()) +
                                       " values, found " + std::to_string(roi.size()));

  // Scales and output sizes in float, as ONNX Runtime computes them: floor(scale * input)
  // rounds the same way for scales such as 0.7f * 10.
  std::vector<float> scale(r, 1.f), align_length(r), roi_s(r, 0.f), roi_e(r, 1.f);
  std::vector<std::size_t> out(r);
  for (std::size_t ax = 0; ax < r; ++ax) {
    out[ax] = static_cast<std::size_t>(x.shape()[ax]);
    align_length[ax] = static_cast<float>(out[ax]);
  }
  if (!scales.empty()) {
    for (std::size_t i = 0; i < axes.size(); ++i) {
      const std::size_t ax = axes[i];
      const auto s = static_cast<float>(scales[i]);
      if (!(s > 0) || !std::isfinite(s))
        ctx.fail(errc::invalid_value, "scale " + std::to_string(scales[i]) + " on axis " +
                                          std::to_string(ax) + " is not positive");
      if (Upsample && s < 1)
        ctx.fail(errc::invalid_value, "Upsample scale " + std::to_string(scales[i]) + " on axis " +
                                          std::to_string(ax) + " is below 1");
      scale[ax] = s;
      align_length[ax] = s * static_cast<float>(x.shape()[ax]);
      out[ax] = static_cast<std::size_t>(align_length[ax]);
    }
  } else {
    for (std::size_t i = 0; i < axes.size(); ++i)
      if (sizes[i] < 0 || (sizes[i] > 0 && x.shape()[axes[i]] == 0))
        ctx.fail(errc::invalid_value, "size " + std::to_string(sizes[i]) + " on axis " +
                                          std::to_string(axes[i]) + " is not reachable from " +
                                          to_string(x.shape()));
    if (a.policy == aspect::stretch) {
      for (std::size_t i = 0; i < axes.size(); ++i) {
        const std::size_t ax = axes[i];
        out[ax] = static_cast<std::size_t>(sizes[i]);
        align_length[ax] = static_cast<float>(sizes[i]);
        scale[ax] = x.shape()[ax] ? static_cast<float>(sizes[i]) / static_cast<float>(x.shape()[ax]) : 1.f;
      }
    } else {
      // One scale for every listed axis, the smallest (not_larger) or largest (not_smaller) of
      // the ratios; the sizes become scale * input rounded half up.
      float s = a.policy == aspect::not_larger ? HUGE_VALF : 0.f;
      for (std::size_t i = 0; i < axes.size(); ++i) {
        const float f = static_cast<float>(sizes[i]) / static_cast<float>(x.shape()[axes[i]]);
        s = a.policy == aspect::not_larger ? std::min(s, f) : std::max(s, f);
      }
      for (std::size_t ax : axes) {
        scale[ax] = s;
        align_length[ax] = s * static_cast<float>(x.shape()[ax]);
        out[ax] = static_cast<std::size_t>(align_length[ax] + 0.5f);
      }
    }
  }
  if (a.transform == coord::tf_crop_and_resize)
    for (std::size_t i = 0; i < axes.size(); ++i) {
      roi_s[axes[i]] = static_cast<float>(roi[i]);
      roi_e[axes[i]] = static_cast<float>(roi[i + axes.size()]);
    }

  std::vector<axis_map> maps(r);
  for (std::size_t ax = 0; ax < r; ++ax) {
    if (out[ax] > 0 && x.shape()[ax] == 0)
      ctx.fail(errc::shape_mismatch, "cannot resize the empty axis " + std::to_string(ax));
    maps[ax] = make_axis_map(a, static_cast<std::size_t>(x.shape()[ax]), out[ax], scale[ax], align_length[ax],
                             roi_s[ax], roi_e[ax]);
  }
  if (a.mode == interp::nearest) {
    ctx.set_output(0, visit_numeric(x.dtype(), ctx, [&](auto tag) {
                     return resize_nearest<decltype(tag)>(x, maps, a.extrapolation);
                   }));
  } else {
    ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
                     return resize_weighted<decltype(tag)>(x, maps, a.extrapolation);
                   }));
  }
}

}  // namespace detail::resize_ops

/// Registers Resize and Upsample.
inline void register_resize_ops(op_registry& r) {
  using namespace detail::resize_ops;
  r.add("Upsample", run_resize<true>, types::numeric, check_resize<true>, 7, 8);
  r.add("Upsample", run_resize<true>, types::numeric, check_resize<true>, 9, 9);
  r.add("Resize", run_resize<false>, types::numeric, check_resize<false>, 10, 10);
  r.add("Resize", run_resize<false>, types::numeric, check_resize<false>, 11, 12);
  r.add("Resize", run_resize<false>, types::numeric, check_resize<false>, 13, 17);
  r.add("Resize", run_resize<false>, types::numeric, check_resize<false>, 18, 18);
  r.add("Resize", run_resize<false>, types::numeric, check_resize<false>, 19);
}

}  // namespace quench::runtime
