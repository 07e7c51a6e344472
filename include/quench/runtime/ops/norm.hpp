#pragma once
// Normalizations: BatchNormalization (inference form, opsets 1 to 15, spatial and per-activation
// parameters), InstanceNormalization, LayerNormalization (opset 17, with the optional Mean and
// InvStdDev outputs) and LRN. Statistics accumulate in double, then results are rounded once
// to the tensor's type.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/runtime/broadcast.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

namespace detail {

/// A float or double parameter tensor as doubles (BatchNormalization-15 lets scale, bias, mean
/// and variance each have their own float type).
inline std::vector<double> as_doubles(const op_context& ctx, const tensor& t, const char* what) {
  std::vector<double> out;
  out.reserve(t.size());
  if (t.dtype() == dtype::float32)
    for (float v : t.view<float>()) out.push_back(v);
  else if (t.dtype() == dtype::float64)
    for (double v : t.view<double>()) out.push_back(v);
  else
    ctx.fail(errc::unsupported_dtype, std::string(what) + ": element type " + to_string(t.dtype()) + " is not supported");
  return out;
}

inline void check_batch_norm(const node& n, std::int64_t opset) {
  if (opset >= 14 && n.attr_int("training_mode", 0) != 0)
    throw_error(errc::unsupported_op, n.context(),
                "training_mode=1 is not supported: the executor computes the inference form with the running mean and variance");
  for (std::size_t i = 1; i < n.outputs().size(); ++i)
    if (n.outputs()[i])
      throw_error(errc::unsupported_op, n.context(),
                  "output " + std::to_string(i) + " ('" + n.outputs()[i]->name() +
                      "') is a training-mode output (running or saved mean/variance), which the executor does not compute");
}

/// y = (x - mean) * scale / sqrt(var + epsilon) + B, per channel (axis 1), or per activation
/// (parameters shaped like x.shape[1:]) when a pre-9 node says spatial=0.
inline void run_batch_norm(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() < 2) ctx.fail(errc::shape_mismatch, "expects an input of rank >= 2 (N, C, ...), found " + to_string(x.shape()));
  const bool spatial = ctx.opset() >= 9 || ctx.node().attr_int("spatial", 1) != 0;
  const std::size_t channels = static_cast<std::size_t>(x.shape()[1]);
  const std::size_t inner = x.shape().inner(1);
  const std::size_t count = spatial ? channels : channels * inner;
  const char* names[4] = {"scale", "B", "input_mean", "input_var"};
  std::vector<double> p[4];
  for (std::size_t i = 0; i < 4; ++i) {
    const tensor& t = ctx.required_input(i + 1);
    if (t.size() != count)
      ctx.fail(errc::shape_mismatch, std::string(names[i]) + ": expected " + std::to_string(count) + " values (" +
                                         (spatial ? "one per channel" : "one per activation, spatial=0") + "), found shape " + to_string(t.shape()));
    p[i] = as_doubles(ctx, t, names[i]);
  }
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  std::vector<double> a(count);
  for (std::size_t i = 0; i < count; ++i) a[i] = p[0][i] / std::sqrt(p[3][i] + eps);
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y = tensor::uninitialized(x.dtype(), x.shape());
    const T* px = x.view<T>().data();
    T* py = y.view<T>().data();
    const std::size_t n = x.shape().outer(1);
    for (std::size_t b = 0; b < n; ++b)
      for (std::size_t c = 0; c < channels; ++c) {
        const std::size_t base = (b * channels + c) * inner;
        for (std::size_t j = 0; j < inner; ++j) {
          const std::size_t k = spatial ? c : c * inner + j;
          py[base + j] = static_cast<T>((static_cast<double>(px[base + j]) - p[2][k]) * a[k] + p[1][k]);
        }
      }
    return y;
  }));
}

/// Mean and 1 / sqrt(variance + epsilon) of n values (two passes, population variance).
template <class T>
std::pair<double, double> moments(const T* x, std::size_t n, double eps) {
  double mean = 0;
  for (std::size_t i = 0; i < n; ++i) mean += static_cast<double>(x[i]);
  mean /= static_cast<double>(n);
  double var = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    var += d * d;
  }
  var /= static_cast<double>(n);
  return {mean, 1.0 / std::sqrt(var + eps)};
}

inline void run_instance_norm(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() < 3) ctx.fail(errc::shape_mismatch, "expects an input of rank >= 3 (N, C, spatial...), found " + to_string(x.shape()));
  const std::size_t channels = static_cast<std::size_t>(x.shape()[1]);
  const std::vector<double> scale = as_doubles(ctx, ctx.required_input(1), "scale");
  const std::vector<double> bias = as_doubles(ctx, ctx.required_input(2), "B");
  if (scale.size() != channels || bias.size() != channels)
    ctx.fail(errc::shape_mismatch, "scale and B: expected " + std::to_string(channels) + " values each, found " +
                                       std::to_string(scale.size()) + " and " + std::to_string(bias.size()));
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y(x.dtype(), x.shape());
    const T* px = x.view<T>().data();
    T* py = y.view<T>().data();
    const std::size_t inner = x.shape().inner(1), planes = x.shape().outer(2);
    if (inner == 0) return y;
    for (std::size_t i = 0; i < planes; ++i) {
      const std::size_t c = i % channels;
      const auto [mean, inv] = moments(px + i * inner, inner, eps);
      const double a = scale[c] * inv;
      for (std::size_t j = 0; j < inner; ++j)
        py[i * inner + j] = static_cast<T>((static_cast<double>(px[i * inner + j]) - mean) * a + bias[c]);
    }
    return y;
  }));
}

inline void check_layer_norm(const node& n, std::int64_t) {
  const std::int64_t stash = n.attr_int("stash_type", 1);
  if (stash != 1)
    throw_error(errc::unsupported_op, n.context(), "stash_type=" + std::to_string(stash) + " is not supported (only 1, float)");
}

/// Normalizes over axes [axis, rank): Y = (X - mean) / sqrt(var + epsilon) * Scale + B, with
/// Scale and B broadcast to X.shape[axis:]; Mean and InvStdDev keep X's leading axes and have
/// size 1 along the normalized ones.
inline void run_layer_norm(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& scale_t = ctx.required_input(1);
  const tensor* bias_t = ctx.input(2);
  if (x.rank() == 0) ctx.fail(errc::shape_mismatch, "expects an input of rank >= 1");
  const std::size_t axis = normalize_axis(ctx.node().attr_int("axis", -1), x.rank(), ctx.node().context());
  const shape norm_shape(x.shape().begin() + static_cast<std::ptrdiff_t>(axis), x.shape().end());
  auto fits = [&](const tensor& t) {
    if (t.rank() > norm_shape.rank()) return false;
    for (std::size_t i = 0; i < t.rank(); ++i) {
      const std::int64_t d = t.shape()[i], want = norm_shape[norm_shape.rank() - t.rank() + i];
      if (d != want && d != 1) return false;
    }
    return true;
  };
  if (!fits(scale_t) || (bias_t && !fits(*bias_t)))
    throw_shape_mismatch(ctx.node().context(), "Scale and B broadcastable to the normalized shape " + to_string(norm_shape),
                         to_string(scale_t.shape()) + (bias_t ? " and " + to_string(bias_t->shape()) : std::string()));
  const std::vector<double> scale = as_doubles(ctx, scale_t, "Scale");
  const std::vector<double> bias = bias_t ? as_doubles(ctx, *bias_t, "B") : std::vector<double>{0.0};
  const auto ss = broadcast_strides(scale_t.shape(), norm_shape);
  const auto bs = bias_t ? broadcast_strides(bias_t->shape(), norm_shape) : std::vector<std::size_t>(norm_shape.rank(), 0);
  // Offsets of Scale and B for each normalized position.
  const std::size_t inner = norm_shape.numel();
  std::vector<std::size_t> s_off(inner), b_off(inner);
  for (std::size_t j = 0; j < inner; ++j) {
    std::size_t rest = j, so = 0, bo = 0;
    for (std::size_t d = norm_shape.rank(); d-- > 0;) {
      const std::size_t i = rest % static_cast<std::size_t>(norm_shape[d]);
      rest /= static_cast<std::size_t>(norm_shape[d]);
      so += i * ss[d];
      bo += i * bs[d];
    }
    s_off[j] = so;
    b_off[j] = bo;
  }
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  const std::size_t rows = x.shape().outer(axis);
  std::vector<std::int64_t> stat_dims(x.shape().begin(), x.shape().end());
  for (std::size_t i = axis; i < stat_dims.size(); ++i) stat_dims[i] = 1;
  tensor mean_t(dtype::float32, shape(stat_dims)), inv_t(dtype::float32, shape(stat_dims));
  float* pm = mean_t.view<float>().data();
  float* pi = inv_t.view<float>().data();
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y(x.dtype(), x.shape());
    const T* px = x.view<T>().data();
    T* py = y.view<T>().data();
    if (inner == 0) return y;
    for (std::size_t r = 0; r < rows; ++r) {
      const T* xr = px + r * inner;
      const auto [mean, inv] = moments(xr, inner, eps);
      pm[r] = static_cast<float>(mean);
      pi[r] = static_cast<float>(inv);
      for (std::size_t j = 0; j < inner; ++j)
        py[r * inner + j] = static_cast<T>((static_cast<double>(xr[j]) - mean) * inv * scale[s_off[j]] + bias[b_off[j]]);
    }
    return y;
  }));
  if (ctx.output_wanted(1)) ctx.set_output(1, std::move(mean_t));
  if (ctx.output_wanted(2)) ctx.set_output(2, std::move(inv_t));
}

inline void check_lrn(const node& n, std::int64_t) {
  if (n.attr_int("size", 0) < 1) throw_error(errc::invalid_model, n.context(), "LRN requires a 'size' attribute >= 1");
}

/// y = x / (bias + alpha / size * sum of x^2 over the channels [c - (size-1)/2, c + ceil((size-1)/2)])^beta.
inline void run_lrn(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  if (x.rank() < 3) ctx.fail(errc::shape_mismatch, "expects an input of rank >= 3 (N, C, spatial...), found " + to_string(x.shape()));
  const std::int64_t size = ctx.node().attr_int("size", 0);
  const double alpha = ctx.node().attr_float("alpha", 1e-4f), beta = ctx.node().attr_float("beta", 0.75f);
  const double bias = ctx.node().attr_float("bias", 1.f);
  const std::int64_t channels = x.shape()[1];
  const std::int64_t before = (size - 1) / 2, after = size - 1 - before;
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y(x.dtype(), x.shape());
    const T* px = x.view<T>().data();
    T* py = y.view<T>().data();
    const std::size_t inner = x.shape().inner(1), n = x.shape().outer(1);
    for (std::size_t b = 0; b < n; ++b)
      for (std::int64_t c = 0; c < channels; ++c)
        for (std::size_t j = 0; j < inner; ++j) {
          double sq = 0;
          for (std::int64_t k = std::max<std::int64_t>(0, c - before); k <= std::min(channels - 1, c + after); ++k) {
            const double v = static_cast<double>(px[(b * static_cast<std::size_t>(channels) + static_cast<std::size_t>(k)) * inner + j]);
            sq += v * v;
          }
          const std::size_t i = (b * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)) * inner + j;
          py[i] = static_cast<T>(static_cast<double>(px[i]) / std::pow(bias + alpha / static_cast<double>(size) * sq, beta));
        }
    return y;
  }));
}

}  // namespace detail

/// Registers BatchNormalization, InstanceNormalization, LayerNormalization and LRN.
inline void register_norm_ops(op_registry& r) {
  using namespace detail;
  r.add("BatchNormalization", run_batch_norm, types::floats, check_batch_norm);
  r.add("InstanceNormalization", run_instance_norm, types::floats);
  r.add("LayerNormalization", run_layer_norm, types::floats, check_layer_norm, 17);
  r.add("LRN", run_lrn, types::floats, check_lrn);
}

}  // namespace quench::runtime
