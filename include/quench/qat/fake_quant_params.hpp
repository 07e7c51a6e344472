#pragma once
// fake_quant_params: the scale, zero point and integer range of a fake-quant op, per tensor or per
// channel, as torch.fake_quantize_per_tensor_affine and torch.fake_quantize_per_channel_affine take
// them.
//
// Unlike qparams (quench/quant/qparams.hpp, the parameters of the ONNX operators), the range is any
// [quant_min, quant_max] and not a dtype's: QAT trains int4 in an int8 container, narrow [-127, 127]
// weights, 7-bit reduce_range activations. Exporting to QDQ picks the storage type afterwards.
//
// The bounds are limited to [-2^24, 2^24], where every integer is a float32: the fake-quant
// arithmetic then stays in float32 and exact. (torch accepts wider int64 bounds; its float32 kernel
// rounds them, so they have no exact meaning there either.)

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/quant/qparams.hpp"

namespace quench {

/// The largest |quant_min| and |quant_max| fake-quant ops accept (2^24).
inline constexpr std::int32_t max_fake_quant_bound = 1 << 24;

/// Parameters of fake_quantize (quench/qat/fake_quantize.hpp). Plain data: build one with the
/// factories, or fill the fields; every function that takes one validates it first.
///
///     auto w = quench::fake_quant_params::per_channel(0, {0.02f, 0.01f}, {0, 0}, {-127, 127});
///     auto a = quench::fake_quant_params::per_tensor(0.05f, 128, {0, 255});
struct fake_quant_params {
  integer_range range{0, 255};  ///< [quant_min, quant_max], inclusive
  /// per_tensor or per_axis (torch's per-channel); blocked is not a fake-quant layout.
  quant_granularity granularity = quant_granularity::per_tensor;
  std::int64_t axis = 0;          ///< per_axis: the channel axis; negative counts from the back
  std::vector<float> scales{1.f};  ///< one (per tensor) or one per channel
  /// One per scale; empty means all zero.
  std::vector<std::int32_t> zero_points{};

  /// One scale and zero point for the whole tensor.
  static fake_quant_params per_tensor(float scale, std::int32_t zero_point, integer_range range) {
    fake_quant_params p;
    p.range = range;
    p.scales = {scale};
    p.zero_points = {zero_point};
    return p;
  }

  /// One scale and zero point per index of `axis`.
  static fake_quant_params per_channel(std::int64_t axis, std::vector<float> scales,
                                       std::vector<std::int32_t> zero_points, integer_range range) {
    fake_quant_params p;
    p.range = range;
    p.granularity = quant_granularity::per_axis;
    p.axis = axis;
    p.scales = std::move(scales);
    p.zero_points = std::move(zero_points);
    return p;
  }

  std::size_t count() const noexcept { return scales.size(); }
  std::int32_t zero_point(std::size_t i) const noexcept { return zero_points.empty() ? 0 : zero_points[i]; }
};

namespace detail {

inline void check_fake_quant_range(integer_range r, std::string_view context) {
  if (r.min > r.max)
    throw_error(errc::invalid_argument, in_context(context, "quant_min"),
                "expected quant_min <= quant_max, found [" + std::to_string(r.min) + ", " + std::to_string(r.max) +
                    "]");
  if (r.min < -max_fake_quant_bound || r.max > max_fake_quant_bound)
    throw_error(errc::out_of_range, in_context(context, "quant_min"),
                "expected a range inside [-16777216, 16777216] (integers exact in float32), found [" +
                    std::to_string(r.min) + ", " + std::to_string(r.max) + "]");
}

/// A scale fake quant can divide by: finite and > 0 (NaN fails the comparison).
inline void check_scale(float s, std::size_t i, std::string_view context) {
  if (!(s > 0.f) || !(s <= 3.40282347e38f))
    throw_error(errc::invalid_value, in_context(context, "scale[" + std::to_string(i) + "]"),
                "expected a finite value > 0, found " + float_repr(s));
}

}  // namespace detail

/// Checks `p` on its own: quant_min <= quant_max inside [-2^24, 2^24], a per-tensor or per-axis
/// layout, finite scales > 0, one zero point per scale (or none), each in [quant_min, quant_max].
/// Throws quench::error naming the entry, e.g.
/// `[quench.invalid_value] scale[2]: expected a finite value > 0, found NaN`.
inline void validate(const fake_quant_params& p, std::string_view context = {}) {
  using detail::in_context;
  detail::check_fake_quant_range(p.range, context);
  if (p.granularity == quant_granularity::blocked)
    throw_error(errc::invalid_argument, in_context(context, "granularity"),
                "expected per_tensor or per_axis for fake quantization, found blocked");
  if (p.scales.empty()) throw_shape_mismatch(in_context(context, "scale"), "at least one value", "none");
  if (p.granularity == quant_granularity::per_tensor && p.scales.size() != 1)
    throw_shape_mismatch(in_context(context, "scale"), "1 value for per-tensor fake quantization",
                         std::to_string(p.scales.size()));
  if (!p.zero_points.empty() && p.zero_points.size() != p.scales.size())
    throw_shape_mismatch(in_context(context, "zero_point"), std::to_string(p.scales.size()) + " values (one per scale)",
                         std::to_string(p.zero_points.size()));
  for (std::size_t i = 0; i < p.scales.size(); ++i) detail::check_scale(p.scales[i], i, context);
  for (std::size_t i = 0; i < p.zero_points.size(); ++i) {
    const std::int32_t z = p.zero_points[i];
    if (z < p.range.min || z > p.range.max)
      throw_error(errc::invalid_value, in_context(context, "zero_point[" + std::to_string(i) + "]"),
                  "expected a value in [quant_min, quant_max] = [" + std::to_string(p.range.min) + ", " +
                      std::to_string(p.range.max) + "], found " + std::to_string(z));
  }
}

/// Checks `p` and that it fits an input of shape `input`: per-axis axis in [-rank, rank-1] and one
/// scale per index of it.
inline void validate(const fake_quant_params& p, const shape& input, std::string_view context = {}) {
  validate(p, context);
  if (p.granularity != quant_granularity::per_axis) return;
  const std::size_t axis = normalize_axis(p.axis, input.rank(), detail::in_context(context, "axis"));
  if (static_cast<std::int64_t>(p.scales.size()) != input[axis])
    throw_shape_mismatch(detail::in_context(context, "scale"),
                         std::to_string(input[axis]) + " values (dim " + std::to_string(axis) + " of input " +
                             to_string(input) + ")",
                         std::to_string(p.scales.size()));
}

}  // namespace quench
