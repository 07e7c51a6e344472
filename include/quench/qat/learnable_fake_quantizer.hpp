#pragma once
// learnable_fake_quantizer: torch.ao.quantization._LearnableFakeQuantize (PyTorch 1.13): a
// moving-average observer plus a trained scale and zero point (LSQ / TQT), with torch's three
// switches and modes:
//
//   static_enabled    forward observes x and copies the observer's scale and zero point into the
//                     parameters (otherwise it clamps the scale to >= float32 eps)
//   fake_quant        forward fake-quantizes with the parameters (symmetric: zero point forced
//                     to 0), through fake_quantize_learnable; otherwise y = x and dx = dy
//   learning_enabled  backward adds dscale / dzero_point to the parameters' gradients
//
//   enable_param_learning()      learning on, fake quant on, observer off
//   enable_static_estimate()     learning off, fake quant on, observer on (the initial state)
//   enable_static_observation()  learning off, fake quant off, observer on
//
// grad_factor is 1, or LSQ's 1/sqrt(numel * quant_max) with use_grad_scaling. Gradients
// accumulate until zero_grad(), as torch's .grad; the optimizer step is the caller's (scale() and
// zero_point() are the parameters). backward uses the parameters as they are, so call it before
// changing them, as autograd would have captured them at forward.
//
// Thread safety: a learnable_fake_quantizer is a value; forward and backward mutate it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/qat/fake_quant_params.hpp"
#include "quench/qat/learnable_fake_quantize.hpp"
#include "quench/qat/observer.hpp"

namespace quench {

/// The arguments of torch's _LearnableFakeQuantize.
struct learnable_fake_quantizer_options {
  /// The observer's dtype, qscheme, averaging constant, eps, reduce_range and ch_axis. Its range is
  /// set from `range`, as torch passes quant_min/quant_max on to the observer.
  observer_options observer{};
  integer_range range{0, 255};  ///< quant_min, quant_max of the op (must contain 0)
  /// 0: per tensor; otherwise one scale and zero point per index of observer.ch_axis (channel_len).
  std::size_t channels = 0;
  float initial_scale = 1.f;
  float initial_zero_point = 0.f;
  bool use_grad_scaling = false;  ///< grad_factor = 1/sqrt(numel * quant_max) instead of 1
};

/// Observer + learnable fake quant with torch's modes.
///
///     quench::learnable_fake_quantizer_options o;
///     o.range = {-128, 127};
///     o.observer.type = quench::dtype::int8;
///     o.observer.symmetric = true;
///     quench::learnable_fake_quantizer lfq(o);
///     lfq.forward(x, y);                 // a few steps of static estimates, then
///     lfq.enable_param_learning();
///     lfq.forward(x, y);
///     lfq.backward(dy, x, dx);           // lfq.scale_grad() / zero_point_grad() filled
class learnable_fake_quantizer {
 public:
  explicit learnable_fake_quantizer(const learnable_fake_quantizer_options& opt)
      : options_(with_range(opt)),
        observer_(make_observer(options_)),
        scale_(count(), opt.initial_scale),
        zero_point_(count(), opt.initial_zero_point),
        scale_grad_(count(), 0.f),
        zero_point_grad_(count(), 0.f) {
    if (opt.range.min >= opt.range.max)
      throw_error(errc::invalid_argument, "quant_min", "expected quant_min < quant_max (torch asserts it), found [" +
                                                           std::to_string(opt.range.min) + ", " +
                                                           std::to_string(opt.range.max) + "]");
  }

  /// One forward step; `y` may be `x`.
  void forward(const_tensor_view<float> x, tensor_view<float> y, simd_target target = best_simd_target()) {
    detail::check_same_shape(x.shape(), y.shape(), "output");
    if (static_enabled_) {
      std::visit([&](auto& o) { o.observe(x, target); }, observer_);
      const fake_quant_params p = std::visit([](const auto& o) { return o.calculate_qparams(); }, observer_);
      if (p.scales.size() != scale_.size())
        throw_shape_mismatch("learnable_fake_quantizer", std::to_string(scale_.size()) + " observer channels",
                             std::to_string(p.scales.size()));
      for (std::size_t i = 0; i < scale_.size(); ++i) {
        scale_[i] = p.scales[i];
        zero_point_[i] = static_cast<float>(p.zero_point(i));
      }
    } else {
      clamp_scale();
    }
    if (!fake_quant_enabled_) {
      if (y.data() != x.data() && !x.empty()) std::memmove(y.data(), x.data(), x.size() * sizeof(float));
      return;
    }
    if (options_.observer.symmetric) std::fill(zero_point_.begin(), zero_point_.end(), 0.f);
    fake_quantize_learnable(x, scale_view(), zero_point_view(), op_options(x.size()), y, target);
  }

  /// The backward of the last forward on `x`: dx, and when learning is enabled the parameter
  /// gradients added to scale_grad() / zero_point_grad(). `dx` may be `dy`.
  void backward(const_tensor_view<float> dy, const_tensor_view<float> x, tensor_view<float> dx,
                simd_target target = best_simd_target()) {
    if (!fake_quant_enabled_) {
      detail::check_same_shape(x.shape(), dy.shape(), "dy");
      detail::check_same_shape(x.shape(), dx.shape(), "dx");
      if (dx.data() != dy.data() && !dy.empty()) std::memmove(dx.data(), dy.data(), dy.size() * sizeof(float));
      return;
    }
    std::vector<float> ds(scale_.size()), dz(scale_.size());
    const shape ps = param_shape();
    fake_quantize_learnable_backward(dy, x, scale_view(), zero_point_view(), op_options(x.size()),
                                     {dx, {ds.data(), ps}, {dz.data(), ps}}, target);
    if (!learning_enabled_) return;
    for (std::size_t i = 0; i < ds.size(); ++i) {
      scale_grad_[i] += ds[i];
      zero_point_grad_[i] += dz[i];
    }
  }

  void enable_param_learning() noexcept {
    learning_enabled_ = true;
    fake_quant_enabled_ = true;
    static_enabled_ = false;
  }
  void enable_static_estimate() noexcept {
    learning_enabled_ = false;
    fake_quant_enabled_ = true;
    static_enabled_ = true;
  }
  void enable_static_observation() noexcept {
    learning_enabled_ = false;
    fake_quant_enabled_ = false;
    static_enabled_ = true;
  }
  void toggle_qparam_learning(bool on = true) noexcept { learning_enabled_ = on; }
  void toggle_fake_quant(bool on = true) noexcept { fake_quant_enabled_ = on; }
  void toggle_observer_update(bool on = true) noexcept { static_enabled_ = on; }
  bool learning_enabled() const noexcept { return learning_enabled_; }
  bool fake_quant_enabled() const noexcept { return fake_quant_enabled_; }
  bool static_enabled() const noexcept { return static_enabled_; }

  /// The parameters, for the optimizer step.
  std::vector<float>& scale() noexcept { return scale_; }
  std::vector<float>& zero_point() noexcept { return zero_point_; }
  const std::vector<float>& scale() const noexcept { return scale_; }
  const std::vector<float>& zero_point() const noexcept { return zero_point_; }
  const std::vector<float>& scale_grad() const noexcept { return scale_grad_; }
  const std::vector<float>& zero_point_grad() const noexcept { return zero_point_grad_; }
  void zero_grad() noexcept {
    std::fill(scale_grad_.begin(), scale_grad_.end(), 0.f);
    std::fill(zero_point_grad_.begin(), zero_point_grad_.end(), 0.f);
  }

  integer_range range() const noexcept { return options_.range; }
  const learnable_fake_quantizer_options& options() const noexcept { return options_; }

  /// torch's calculate_qparams: clamps the scale parameter to >= eps (in place, as torch does) and
  /// returns it with the zero point rounded half to even and clamped: what export writes.
  fake_quant_params calculate_qparams() {
    clamp_scale();
    fake_quant_params p;
    p.range = options_.range;
    p.granularity = options_.channels ? quant_granularity::per_axis : quant_granularity::per_tensor;
    p.axis = options_.observer.ch_axis;
    p.scales = scale_;
    p.zero_points.resize(zero_point_.size());
    for (std::size_t i = 0; i < zero_point_.size(); ++i)
      p.zero_points[i] = static_cast<std::int32_t>(detail::rounded_zero_point(zero_point_[i], options_.range));
    return p;
  }

 private:
  using observer_type = std::variant<moving_average_minmax_observer, moving_average_per_channel_minmax_observer>;

  static learnable_fake_quantizer_options with_range(learnable_fake_quantizer_options o) {
    o.observer.range = o.range;
    return o;
  }
  static observer_type make_observer(const learnable_fake_quantizer_options& o) {
    if (o.channels) return moving_average_per_channel_minmax_observer(o.observer);
    return moving_average_minmax_observer(o.observer);
  }
  std::size_t count() const noexcept { return options_.channels ? options_.channels : 1; }
  shape param_shape() const { return shape{static_cast<std::int64_t>(scale_.size())}; }
  const_tensor_view<float> scale_view() const { return {scale_.data(), param_shape()}; }
  const_tensor_view<float> zero_point_view() const { return {zero_point_.data(), param_shape()}; }

  /// torch clamps with the float32 eps of its own buffer (not the observer's eps).
  void clamp_scale() noexcept {
    constexpr float eps = 1.1920929e-07f;
    for (float& s : scale_)
      if (s < eps) s = eps;
  }

  learnable_fake_quant_options op_options(std::size_t numel) const {
    learnable_fake_quant_options o;
    o.range = options_.range;
    o.granularity = options_.channels ? quant_granularity::per_axis : quant_granularity::per_tensor;
    o.axis = options_.observer.ch_axis;
    o.grad_factor = options_.use_grad_scaling && numel > 0 ? lsq_grad_factor(numel, options_.range.max) : 1.f;
    return o;
  }

  learnable_fake_quantizer_options options_;
  observer_type observer_;
  std::vector<float> scale_, zero_point_, scale_grad_, zero_point_grad_;
  bool fake_quant_enabled_ = true;
  bool static_enabled_ = true;
  bool learning_enabled_ = false;
};

}  // namespace quench
