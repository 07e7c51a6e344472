#pragma once
// What the observers share around the kernels: the element types they accept (float16 and
// bfloat16 widened to float in blocks), the channel loop of a batch, NaN/Inf classification, the
// dispatch of a type-erased tensor, and the errors for bad batches.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "quench/calib/nonfinite.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/float16.hpp"

namespace quench::detail {

/// Element types an observer accepts; float16 and bfloat16 are widened to float (exactly).
template <class T>
inline constexpr bool is_observable_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                        std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

/// Elements per block of the observers' block loops: small enough that a block read by one kernel
/// is still in L1 for the next (8 KiB of float).
inline constexpr std::size_t observer_block = 2048;

/// Calls f(const float*, count) on consecutive blocks of at most observer_block floats holding
/// data[0, n) (float16 / bfloat16 converted into a stack buffer first).
template <class T, class F>
void for_float_blocks(const T* data, std::size_t n, F&& f) {
  static_assert(!std::is_same_v<T, double>, "float64 data has its own path");
  for (std::size_t at = 0; at < n; at += observer_block) {
    const std::size_t len = n - at < observer_block ? n - at : observer_block;
    if constexpr (std::is_same_v<T, float>) {
      f(data + at, len);
    } else {
      float buf[observer_block];
      convert(data + at, buf, len);
      f(static_cast<const float*>(buf), len);
    }
  }
}

/// Adds the NaN / +Inf / -Inf elements of x[0, n) to `c` (the rare path after a scan found some).
template <class T>
void classify_nonfinite(const T* x, std::size_t n, calib::nonfinite_counts& c) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = static_cast<double>(x[i]);
    if (std::isnan(v))
      ++c.nan;
    else if (v == HUGE_VAL)
      ++c.pos_inf;
    else if (v == -HUGE_VAL)
      ++c.neg_inf;
  }
}

[[noreturn]] inline void throw_no_finite_value(const std::string& name, const calib::nonfinite_counts& c) {
  throw_error(errc::not_finite, tensor_context(name),
              "expected at least one finite value in the batch, found only NaN/Inf (" + std::to_string(c.nan) +
                  " NaN, " + std::to_string(c.pos_inf) + " +Inf, " + std::to_string(c.neg_inf) + " -Inf)");
}

/// "tensor 'x' channel 3" or "tensor 'x'" for error contexts.
inline std::string channel_context(const std::string& name, std::size_t channel, bool per_channel) {
  std::string s = tensor_context(name);
  if (s.empty()) s = "tensor";
  if (per_channel) s += " channel " + std::to_string(channel);
  return s;
}

/// Frexp exponent e of a finite magnitude a > 0: a < 2^e, a >= 2^(e-1).
inline int exponent_above(double a) noexcept {
  int e = 0;
  std::frexp(a, &e);
  return e;
}

/// How a batch splits into channels: element k of channel c, outer index o is
/// data[(o * channels + c) * inner + k].
struct channel_layout {
  std::size_t channels = 1;
  std::size_t outer = 1;
  std::size_t inner = 0;
};

/// The layout of a batch of shape `s` for an observer with channel axis `axis` (unset: one
/// channel of every element), checked against the `expected` channel count of earlier batches
/// (0: none yet).
inline channel_layout batch_layout(const std::optional<std::int64_t>& axis, const shape& s, std::size_t expected,
                                   const std::string& name) {
  channel_layout l;
  l.inner = s.numel();
  if (axis) {
    const std::size_t a = normalize_axis(*axis, s.rank(), tensor_context(name));
    l.channels = static_cast<std::size_t>(s[a]);
    l.outer = s.outer(a);
    l.inner = s.inner(a);
  }
  if (expected && expected != l.channels)
    throw_shape_mismatch(tensor_context(name), std::to_string(expected) + " channels",
                         std::to_string(l.channels) + " in shape " + to_string(s));
  return l;
}

/// Calls f(tensor_view<const T>) for a float32, float64, float16 or bfloat16 tensor; throws
/// errc::unsupported_dtype naming the observer's tensor otherwise.
template <class F>
void visit_float_tensor(const tensor& t, const std::string& name, F&& f) {
  switch (t.dtype()) {
    case dtype::float32: f(t.view<float>()); return;
    case dtype::float64: f(t.view<double>()); return;
    case dtype::float16: f(t.view<float16>()); return;
    case dtype::bfloat16: f(t.view<bfloat16>()); return;
    default:
      throw_error(errc::unsupported_dtype, tensor_context(name),
                  "expected float32, float64, float16 or bfloat16 data, found " + to_string(t.dtype()));
  }
}

}  // namespace quench::detail
