#pragma once
// fake_quantizer: torch.ao.quantization.FakeQuantize (PyTorch 1.13) with a moving-average min-max
// observer: the stateful piece a training loop puts after a layer's weights or activations.
//
//   forward(x)  if the observer is on: observe x, recompute scale and zero point from it;
//               if fake quant is on: y = fake_quantize(x) with those, mask as torch's;
//               otherwise y = x and the mask is all ones (the gradient passes unchanged)
//   backward    dx = dy * mask
//
// Both switches start on, as torch's buffers do. The scale and zero point start at 1 and 0 and
// keep their last values while the observer is off (torch's "freeze observer" step of QAT).
//
// Thread safety: a fake_quantizer is a value; forward mutates it.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <variant>

#include "quench/core/tensor_view.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/qat/fake_quant_params.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/qat/observer.hpp"

namespace quench {

/// The observer and layout of a fake_quantizer. The presets are torch.ao.quantization's.
struct fake_quantizer_options {
  observer_options observer{};
  /// Per-channel along observer.ch_axis (MovingAveragePerChannelMinMaxObserver) instead of per
  /// tensor (MovingAverageMinMaxObserver).
  bool per_channel = false;

  /// default_fake_quant: activations, uint8 affine, [0, 255] with reduce_range (so [0, 127]).
  static fake_quantizer_options torch_default_activation() {
    fake_quantizer_options o;
    o.observer.type = dtype::uint8;
    o.observer.range = integer_range{0, 255};
    o.observer.reduce_range = true;
    return o;
  }
  /// default_weight_fake_quant: weights, int8 per-tensor symmetric [-128, 127].
  static fake_quantizer_options torch_default_weight() {
    fake_quantizer_options o;
    o.observer.type = dtype::int8;
    o.observer.symmetric = true;
    o.observer.range = integer_range{-128, 127};
    return o;
  }
  /// default_per_channel_weight_fake_quant: weights, int8 per-channel symmetric on axis 0.
  static fake_quantizer_options torch_default_per_channel_weight() {
    fake_quantizer_options o = torch_default_weight();
    o.per_channel = true;
    o.observer.ch_axis = 0;
    return o;
  }
};

/// Observer + fake quant with torch's enable switches.
///
///     quench::fake_quantizer fq(quench::fake_quantizer_options::torch_default_activation());
///     fq.forward(x, y, mask);        // training step: observe, then fake-quantize
///     fq.backward(dy, mask, dx);
///     fq.disable_observer();         // later in training: freeze the ranges
class fake_quantizer {
 public:
  explicit fake_quantizer(const fake_quantizer_options& opt = {})
      : per_channel_(opt.per_channel),
        observer_(make_observer(opt)),
        params_(opt.per_channel ? fake_quant_params::per_channel(opt.observer.ch_axis, {1.f}, {0},
                                                                 observer_quant_range(opt.observer))
                                : fake_quant_params::per_tensor(1.f, 0, observer_quant_range(opt.observer))) {}

  /// One training step forward; `y` may be `x`. `mask` receives 1 where the gradient passes.
  template <class T>
  void forward(const_tensor_view<detail::type_identity_t<T>> x, tensor_view<T> y, tensor_view<std::uint8_t> mask,
               simd_target target = best_simd_target()) {
    detail::check_fake_quant_type<T>();
    detail::check_same_shape(x.shape(), y.shape(), "output");
    detail::check_same_shape(x.shape(), mask.shape(), "mask");
    if (observer_enabled_) {
      std::visit([&](auto& o) { o.observe(x, target); }, observer_);
      params_ = calculate_qparams();
    }
    if (fake_quant_enabled_) {
      fake_quantize(x, params_, y, mask, target);
      return;
    }
    if (y.data() != x.data() && !x.empty()) std::memmove(y.data(), x.data(), x.size() * sizeof(T));
    if (!mask.empty()) std::memset(mask.data(), 1, mask.size());
  }

  /// dx = dy * mask (`dx` may be `dy`).
  template <class T>
  void backward(const_tensor_view<detail::type_identity_t<T>> dy, const_tensor_view<std::uint8_t> mask,
                tensor_view<T> dx, simd_target target = best_simd_target()) const {
    fake_quantize_backward(dy, mask, dx, target);
  }

  void enable_observer(bool on = true) noexcept { observer_enabled_ = on; }
  void disable_observer() noexcept { observer_enabled_ = false; }
  void enable_fake_quant(bool on = true) noexcept { fake_quant_enabled_ = on; }
  void disable_fake_quant() noexcept { fake_quant_enabled_ = false; }
  bool observer_enabled() const noexcept { return observer_enabled_; }
  bool fake_quant_enabled() const noexcept { return fake_quant_enabled_; }
  bool per_channel() const noexcept { return per_channel_; }

  /// The scale and zero point forward uses (torch's `scale` / `zero_point` buffers).
  const fake_quant_params& params() const noexcept { return params_; }
  /// Sets them, e.g. from a checkpoint; validated on the next forward.
  void set_params(fake_quant_params p) { params_ = std::move(p); }

  /// The observer's current scale and zero point (not stored until the next observed forward).
  fake_quant_params calculate_qparams() const {
    return std::visit([](const auto& o) { return o.calculate_qparams(); }, observer_);
  }

  /// The observer, for its running min/max.
  const moving_average_minmax_observer* per_tensor_observer() const noexcept {
    return std::get_if<moving_average_minmax_observer>(&observer_);
  }
  const moving_average_per_channel_minmax_observer* per_channel_observer() const noexcept {
    return std::get_if<moving_average_per_channel_minmax_observer>(&observer_);
  }

 private:
  using observer_type = std::variant<moving_average_minmax_observer, moving_average_per_channel_minmax_observer>;

  static observer_type make_observer(const fake_quantizer_options& opt) {
    if (opt.per_channel) return moving_average_per_channel_minmax_observer(opt.observer);
    return moving_average_minmax_observer(opt.observer);
  }

  bool per_channel_;
  observer_type observer_;
  fake_quant_params params_;
  bool observer_enabled_ = true;
  bool fake_quant_enabled_ = true;
};

}  // namespace quench
