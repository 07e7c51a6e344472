#pragma once
// Reductions and their relatives: ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare
// (axes as an attribute before opset 18, ReduceSum before 13; as an input after, with
// noop_with_empty_axes), ArgMax/ArgMin, TopK, and Softmax/LogSoftmax/Hardmax with both axis
// semantics: before opset 13 the input is coerced to 2-D at `axis` (default 1) and the whole
// trailing block is normalised; from 13 one axis (default -1).
//
// Float reductions accumulate in double and round once at the end, which is at least as close to
// the ONNX reference (numpy, pairwise float sums) as ONNX Runtime's float accumulation.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/runtime/broadcast.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/shape_ops.hpp"

namespace quench::runtime {

namespace detail::reduce_ops {

using shape_ops::axes_of;
using shape_ops::axis_of;

/// Accumulator: double for floats, 64-bit integers of the same signedness otherwise.
template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_signed_v<T>, std::int64_t, std::uint64_t>>;

template <class T>
bool is_nan(T v) noexcept {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
}

// Each kind: init(), add(acc, x), finish(acc, count) -> T. Empty reductions give ONNX's identity
// values: 0 for sums, 1 for products, -inf / lowest for Max, +inf / max for Min, NaN for Mean.
struct sum_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a += static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct mean_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a += static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t n) {
    if constexpr (std::is_floating_point_v<T>)
      return static_cast<T>(a / static_cast<double>(n));
    else
      return n ? static_cast<T>(a / static_cast<acc_t<T>>(n)) : T(0);
  }
};
struct sum_square_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a += static_cast<acc_t<T>>(x) * static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct l1_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    if constexpr (std::is_unsigned_v<T>)
      a += x;
    else
      a += static_cast<acc_t<T>>(x < T(0) ? -static_cast<acc_t<T>>(x) : static_cast<acc_t<T>>(x));
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct l2_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a += static_cast<acc_t<T>>(x) * static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(std::sqrt(static_cast<double>(a)));
  }
};
struct log_sum_kind {
  static constexpr bool additive = true;
  template <class T>
  static acc_t<T> init() {
    return 0;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a += static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(std::log(static_cast<double>(a)));
  }
};
struct prod_kind {
  static constexpr bool additive = false;
  template <class T>
  static acc_t<T> init() {
    return 1;
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    a *= static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct max_kind {
  static constexpr bool additive = false;
  template <class T>
  static acc_t<T> init() {
    if constexpr (std::is_floating_point_v<T>)
      return -std::numeric_limits<double>::infinity();
    else
      return static_cast<acc_t<T>>(std::numeric_limits<T>::lowest());
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    if (is_nan(a)) return;  // NaN propagates, as numpy.max
    if (is_nan(x) || static_cast<acc_t<T>>(x) > a) a = static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct min_kind {
  static constexpr bool additive = false;
  template <class T>
  static acc_t<T> init() {
    if constexpr (std::is_floating_point_v<T>)
      return std::numeric_limits<double>::infinity();
    else
      return static_cast<acc_t<T>>(std::numeric_limits<T>::max());
  }
  template <class T>
  static void add(acc_t<T>& a, T x) {
    if (is_nan(a)) return;
    if (is_nan(x) || static_cast<acc_t<T>>(x) < a) a = static_cast<acc_t<T>>(x);
  }
  template <class T>
  static T finish(acc_t<T> a, std::size_t) {
    return static_cast<T>(a);
  }
};
struct log_sum_exp_kind {};  // two passes, see reduce_log_sum_exp

/// Which input axes a reduction folds, and the output layout.
struct reduce_plan {
  bool identity = false;                 ///< noop_with_empty_axes with no axes: output = input
  shape out_shape;                       ///< with keepdims applied
  std::vector<std::size_t> out_strides;  ///< per input axis; 0 along reduced axes
  std::size_t count = 1;                 ///< input elements folded into each output
};

inline reduce_plan plan_reduce(const op_context& ctx, const shape& in,
                               const std::vector<std::int64_t>& axes_list, bool keepdims,
                               bool noop_with_empty_axes) {
  reduce_plan p;
  const std::size_t r = in.rank();
  std::vector<bool> reduced(r, axes_list.empty());
  if (axes_list.empty() && noop_with_empty_axes) {
    p.identity = true;
    p.out_shape = in;
    return p;
  }
  for (std::size_t a : axes_of(ctx, axes_list, r)) reduced[a] = true;
  std::vector<std::int64_t> kept_dims(r);  // keepdims layout: reduced axes are 1
  for (std::size_t a = 0; a < r; ++a) {
    kept_dims[a] = reduced[a] ? 1 : in[a];
    if (reduced[a]) p.count *= static_cast<std::size_t>(in[a]);
  }
  p.out_strides.assign(r, 0);
  std::size_t stride = 1;
  for (std::size_t a = r; a-- > 0;) {
    if (!reduced[a]) p.out_strides[a] = stride;
    stride *= static_cast<std::size_t>(kept_dims[a]);
  }
  if (keepdims) {
    p.out_shape = shape(kept_dims);
  } else {
    std::vector<std::int64_t> dims;
    for (std::size_t a = 0; a < r; ++a)
      if (!reduced[a]) dims.push_back(in[a]);
    p.out_shape = shape(std::move(dims));
  }
  return p;
}

/// Folds every input element into its output slot: f(out_index, x).
template <class T, class F>
void for_each_reduced(const tensor& x, const reduce_plan& p, F&& f) {
  const T* in = x.view<T>().data();
  const std::vector<std::size_t> strides[1] = {p.out_strides};
  for_each_broadcast_run(
      x.shape(), strides,
      [&](std::size_t base, const std::size_t* offs, std::size_t n, const std::size_t* st) {
        if (st[0] == 0) {
          for (std::size_t j = 0; j < n; ++j) f(offs[0], in[base + j]);
        } else {
          for (std::size_t j = 0; j < n; ++j) f(offs[0] + j, in[base + j]);
        }
      });
}

template <class Kind, class T>
tensor reduce_typed(const tensor& x, const reduce_plan& p) {
  tensor y(x.dtype(), p.out_shape);
  const std::size_t n_out = p.out_shape.numel();
  std::vector<acc_t<T>> acc(n_out, Kind::template init<T>());
  const T* in = x.view<T>().data();
  const std::vector<std::size_t> strides[1] = {p.out_strides};
  for_each_broadcast_run(
      x.shape(), strides,
      [&](std::size_t base, const std::size_t* offs, std::size_t n, const std::size_t* st) {
        const T* v = in + base;
        if (st[0] != 0) {
          for (std::size_t j = 0; j < n; ++j) Kind::template add<T>(acc[offs[0] + j], v[j]);
        } else if constexpr (Kind::additive) {
          // A contiguous run into one output: four partial sums in a fixed order, so the adds
          // overlap instead of waiting on each other.
          acc_t<T> part[4] = {0, 0, 0, 0};
          std::size_t j = 0;
          for (; j + 4 <= n; j += 4)
            for (std::size_t u = 0; u < 4; ++u) Kind::template add<T>(part[u], v[j + u]);
          for (; j < n; ++j) Kind::template add<T>(part[0], v[j]);
          acc[offs[0]] += (part[0] + part[1]) + (part[2] + part[3]);
        } else {
          for (std::size_t j = 0; j < n; ++j) Kind::template add<T>(acc[offs[0]], v[j]);
        }
      });
  auto out = y.view<T>();
  for (std::size_t o = 0; o < n_out; ++o) out[o] = Kind::template finish<T>(acc[o], p.count);
  return y;
}

/// log(sum(exp(x))) with the maximum factored out, so large inputs do not overflow.
template <class T>
tensor reduce_log_sum_exp(const tensor& x, const reduce_plan& p) {
  tensor y(x.dtype(), p.out_shape);
  const std::size_t n_out = p.out_shape.numel();
  std::vector<double> mx(n_out, -std::numeric_limits<double>::infinity());
  for_each_reduced<T>(x, p, [&](std::size_t o, T v) { mx[o] = std::max(mx[o], static_cast<double>(v)); });
  std::vector<double> sum(n_out, 0.0);
  for_each_reduced<T>(x, p, [&](std::size_t o, T v) {
    if (std::isfinite(mx[o])) sum[o] += std::exp(static_cast<double>(v) - mx[o]);
  });
  auto out = y.view<T>();
  for (std::size_t o = 0; o < n_out; ++o)
    out[o] = static_cast<T>(std::isfinite(mx[o]) ? mx[o] + std::log(sum[o]) : mx[o]);
  return y;
}

/// AxesInput: axes come from input 1 (ReduceSum-13+, the others 18+) instead of the attribute.
template <class Kind, bool AxesInput>
void run_reduce(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const node& n = ctx.node();
  std::vector<std::int64_t> axes;
  if (AxesInput) {
    if (const tensor* t = ctx.input(1)) axes = shape_ops::ints_of(ctx, *t, "axes");
  } else {
    axes = n.attr_ints("axes", {});
  }
  const bool keepdims = n.attr_int("keepdims", 1) != 0;
  const bool noop = AxesInput && n.attr_int("noop_with_empty_axes", 0) != 0;
  const reduce_plan p = plan_reduce(ctx, x.shape(), axes, keepdims, noop);
  if (p.identity) return ctx.set_output(0, x.clone());
  ctx.set_output(0, visit_numeric(x.dtype(), ctx, [&](auto tag) {
                   using T = decltype(tag);
                   if constexpr (std::is_same_v<Kind, log_sum_exp_kind>)
                     return reduce_log_sum_exp<T>(x, p);
                   else
                     return reduce_typed<Kind, T>(x, p);
                 }));
}

inline void check_keepdims(const node& n, std::int64_t) {
  const std::int64_t k = n.attr_int("keepdims", 1);
  if (k != 0 && k != 1)
    throw_error(errc::invalid_model, n.context(), "keepdims must be 0 or 1, found " + std::to_string(k));
}

/// An `axes` attribute where the opset takes input 1 would be silently ignored: reject it.
inline void check_axes_input(const node& n, std::int64_t opset) {
  check_keepdims(n, opset);
  if (n.find_attribute("axes"))
    throw_error(errc::invalid_model, n.context(),
                "has an 'axes' attribute, but " + n.op_type() + " takes axes as input 1 from opset " +
                    std::to_string(n.op_type() == "ReduceSum" ? 13 : 18));
}

// ---- ArgMax / ArgMin ---------------------------------------------------------------------------------

/// Index of the max (Greater) or min along `axis`; the first on ties unless select_last_index.
/// A NaN wins over every number, as numpy.argmax/argmin return the first NaN.
template <bool Greater>
void run_arg(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const node& n = ctx.node();
  if (x.rank() == 0) ctx.fail(errc::shape_mismatch, "needs an input of rank >= 1");
  const std::size_t axis = axis_of(ctx, n.attr_int("axis", 0), x.rank());
  const bool keepdims = n.attr_int("keepdims", 1) != 0;
  const bool last = n.attr_int("select_last_index", 0) != 0;
  const std::size_t outer = x.shape().outer(axis), inner = x.shape().inner(axis);
  const auto d = static_cast<std::size_t>(x.shape()[axis]);
  if (d == 0)
    ctx.fail(errc::shape_mismatch,
             "cannot take the arg" + std::string(Greater ? "max" : "min") + " of an empty axis");
  std::vector<std::int64_t> dims = x.shape().dims();
  if (keepdims)
    dims[axis] = 1;
  else
    dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(axis));
  tensor y(dtype::int64, shape(dims));
  auto out = y.view<std::int64_t>();
  visit_numeric(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.view<T>().data();
    auto better = [](T a, T b) {  // a strictly better than b
      if (is_nan(b)) return false;
      if (is_nan(a)) return true;
      return Greater ? a > b : a < b;
    };
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        const T* p = in + o * d * inner + i;
        std::size_t best = 0;
        for (std::size_t k = 1; k < d; ++k) {
          const T v = p[k * inner], b = p[best * inner];
          if (better(v, b) || (last && !better(b, v) && (v == b || (is_nan(v) && is_nan(b))))) best = k;
        }
        out[o * inner + i] = static_cast<std::int64_t>(best);
      }
    return 0;
  });
  ctx.set_output(0, std::move(y));
}

// ---- TopK ---------------------------------------------------------------------------------------------

/// TopK: k from the attribute (before opset 10) or input 1; `largest` and `sorted` from opset 11.
/// Equal values keep the lower index first, as ONNX Runtime; results are always sorted. A NaN
/// counts as larger than every number.
template <bool KInput>
void run_topk(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const node& n = ctx.node();
  if (x.rank() == 0) ctx.fail(errc::shape_mismatch, "needs an input of rank >= 1");
  const std::size_t axis = axis_of(ctx, n.attr_int("axis", -1), x.rank());
  std::int64_t k;
  if (KInput) {
    const auto kv = shape_ops::ints_of(ctx, ctx.required_input(1), "K");
    if (kv.size() != 1) ctx.fail(errc::shape_mismatch, "K must hold one value");
    k = kv[0];
  } else {
    if (!n.find_attribute("k")) ctx.fail(errc::invalid_model, "requires the 'k' attribute before opset 10");
    k = n.attr_int("k", 0);
  }
  const bool largest = n.attr_int("largest", 1) != 0;
  const std::int64_t d = x.shape()[axis];
  if (k < 0 || k > d)
    ctx.fail(errc::out_of_range, "k = " + std::to_string(k) + " is outside [0, " + std::to_string(d) + "]");
  std::vector<std::int64_t> dims = x.shape().dims();
  dims[axis] = k;
  tensor values(x.dtype(), shape(dims));
  tensor indices(dtype::int64, shape(dims));
  const std::size_t outer = x.shape().outer(axis), inner = x.shape().inner(axis);
  const auto du = static_cast<std::size_t>(d), ku = static_cast<std::size_t>(k);
  visit_numeric(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.view<T>().data();
    T* vo = values.view<T>().data();
    std::int64_t* io = indices.view<std::int64_t>().data();
    std::vector<std::size_t> order(du);
    std::vector<T> line(du);
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        for (std::size_t j = 0; j < du; ++j) line[j] = in[(o * du + j) * inner + i];
        std::iota(order.begin(), order.end(), std::size_t{0});
        auto before = [&](std::size_t a, std::size_t b) {
          const T va = line[a], vb = line[b];
          const bool na = is_nan(va), nb = is_nan(vb);
          if (na || nb) {
            if (na && nb) return a < b;
            return largest ? na : nb;
          }
          if (va != vb) return largest ? va > vb : va < vb;
          return a < b;
        };
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(ku), order.end(),
                          before);
        for (std::size_t j = 0; j < ku; ++j) {
          vo[(o * ku + j) * inner + i] = line[order[j]];
          io[(o * ku + j) * inner + i] = static_cast<std::int64_t>(order[j]);
        }
      }
    return 0;
  });
  ctx.set_output(0, std::move(values));
  if (ctx.output_wanted(1)) ctx.set_output(1, std::move(indices));
}

// ---- Softmax, LogSoftmax, Hardmax -----------------------------------------------------------------------

enum class softmax_kind { softmax, log_softmax, hardmax };

inline std::int32_t float_bits(float f) noexcept {
  std::int32_t i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float bits_float(std::int32_t i) noexcept {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
/// An integer ordered like the float it encodes (NaN aside); its own inverse. Selecting on
/// integer comparisons keeps loops vectorizable, where float selects are not (a float compare may
/// trap on NaN, so the compiler keeps the branch).
inline std::int32_t order_key(std::int32_t b) noexcept { return b ^ ((b >> 31) & 0x7fffffff); }

/// exp for float in straight-line code the compiler vectorizes: 2^n * e^r with n = round(x /
/// ln 2), r reduced in two parts (Cody-Waite), e^r by the degree-6 polynomial of Cephes' expf.
/// At most 1.4 ulp from the correctly rounded result on [-87.3, 88.4]; below, 0 (where expf
/// returns subnormals under 1.2e-38); above, +inf; NaN stays NaN. About twice as fast as libm's
/// expf with SSE2, more with wider vectors.
inline float vector_exp(float x) noexcept {
  const std::int32_t b = float_bits(x), k = order_key(b);
  const std::int32_t k_hi = order_key(float_bits(88.3762626647949f));   // exp overflows above
  const std::int32_t k_lo = order_key(float_bits(-87.3365447505531f));  // smallest normal result below
  const std::int32_t over = -static_cast<std::int32_t>(k > k_hi),
                     under = -static_cast<std::int32_t>(k < k_lo);
  const float xc = bits_float(order_key((k & ~(over | under)) | (k_hi & over) | (k_lo & under)));
  const float t = xc * 1.44269504088896341f + 12582912.f;  // + 1.5 * 2^23 rounds to an integer
  const float n = t - 12582912.f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const float scale = bits_float((float_bits(t) - 0x4b400000 + 127) << 23);
  std::int32_t y = float_bits(p * scale);
  y = (y & ~(over | under)) | (0x7f800000 & over);
  const std::int32_t nan = -static_cast<std::int32_t>((b & 0x7fffffff) > 0x7f800000);
  return bits_float((y & ~nan) | (b & nan));
}

template <class T>
T softmax_exp(T x) noexcept {
  if constexpr (std::is_same_v<T, float>)
    return vector_exp(x);
  else
    return std::exp(x);
}

/// The largest of `d` values `stride` apart: an integer max over order keys for float, which
/// vectorizes. A NaN in the group makes every softmax output NaN whichever value this returns.
template <class T, std::size_t Stride>
T group_max(const T* p, std::size_t d, std::size_t stride_in) noexcept {
  const std::size_t stride = Stride ? Stride : stride_in;
  if constexpr (std::is_same_v<T, float>) {
    std::int32_t km = order_key(float_bits(p[0]));
    for (std::size_t k = 1; k < d; ++k) {
      const std::int32_t kk = order_key(float_bits(p[k * stride]));
      km = kk > km ? kk : km;
    }
    return bits_float(order_key(km));
  } else {
    T m = p[0];
    for (std::size_t k = 1; k < d; ++k)
      m = p[k * stride] > m || std::isnan(p[k * stride]) ? p[k * stride] : m;
    return m;
  }
}

/// Normalises `d` values of one softmax group, `stride` apart (1: contiguous). The sum is in
/// double; softmax divides by it rounded to T, LogSoftmax subtracts its log in double.
template <softmax_kind Kind, class T, bool Contiguous>
void softmax_group_impl(const T* p, T* q, std::size_t d, std::size_t stride_in) {
  // A compile-time stride of 1 lets the compiler vectorize the loops of contiguous groups.
  const std::size_t stride = Contiguous ? 1 : stride_in;
  if constexpr (Kind == softmax_kind::hardmax) {
    std::size_t arg = 0;
    for (std::size_t k = 1; k < d; ++k)
      if (p[k * stride] > p[arg * stride]) arg = k;  // first of equal maxima, as ONNX
    for (std::size_t k = 0; k < d; ++k) q[k * stride] = T(k == arg ? 1 : 0);
  } else {
    const T mx = group_max < T, Contiguous ? 1 : 0 > (p, d, stride);
    for (std::size_t k = 0; k < d; ++k) q[k * stride] = softmax_exp<T>(p[k * stride] - mx);
    double sum[4] = {0, 0, 0, 0};  // four chains: fixed order, no serial add latency
    std::size_t k = 0;
    for (; k + 4 <= d; k += 4)
      for (std::size_t j = 0; j < 4; ++j) sum[j] += static_cast<double>(q[(k + j) * stride]);
    for (; k < d; ++k) sum[0] += static_cast<double>(q[k * stride]);
    const double total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    if constexpr (Kind == softmax_kind::softmax) {
      const T s = static_cast<T>(total);
      for (std::size_t j = 0; j < d; ++j) q[j * stride] = q[j * stride] / s;
    } else {
      const double lse = std::log(total);
      for (std::size_t j = 0; j < d; ++j)
        q[j * stride] = static_cast<T>(static_cast<double>(p[j * stride] - mx) - lse);
    }
  }
}

template <softmax_kind Kind, class T>
void softmax_group(const T* p, T* q, std::size_t d, std::size_t stride) {
  if (stride == 1)
    softmax_group_impl<Kind, T, true>(p, q, d, 1);
  else
    softmax_group_impl<Kind, T, false>(p, q, d, stride);
}

/// Coerced2d (opset < 13): normalise over everything from `axis` on (default 1); otherwise over
/// the single `axis` (default -1).
template <softmax_kind Kind, bool Coerced2d>
void run_softmax(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const std::int64_t r = static_cast<std::int64_t>(x.rank());
  std::size_t outer, d, inner;
  if (Coerced2d) {
    std::int64_t axis = ctx.node().attr_int("axis", 1);
    if (axis < -r || axis > r)
      ctx.fail(errc::out_of_range, "axis " + std::to_string(axis) + " is outside [" + std::to_string(-r) +
                                       ", " + std::to_string(r) + "]");
    if (axis < 0) axis += r;
    outer = x.shape().outer(static_cast<std::size_t>(axis));
    d = outer == 0 ? 0 : x.shape().numel() / outer;
    inner = 1;
  } else {
    if (r == 0) ctx.fail(errc::shape_mismatch, "needs an input of rank >= 1");
    const std::size_t axis = axis_of(ctx, ctx.node().attr_int("axis", -1), x.rank());
    outer = x.shape().outer(axis);
    d = static_cast<std::size_t>(x.shape()[axis]);
    inner = x.shape().inner(axis);
  }
  ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
                   using T = decltype(tag);
                   tensor y(x.dtype(), x.shape());
                   const T* in = x.view<T>().data();
                   T* out = y.view<T>().data();
                   if (d == 0) return y;
                   for (std::size_t o = 0; o < outer; ++o)
                     for (std::size_t i = 0; i < inner; ++i)
                       softmax_group<Kind>(in + o * d * inner + i, out + o * d * inner + i, d, inner);
                   return y;
                 }));
}

}  // namespace detail::reduce_ops

/// Registers the reduction, arg, TopK and softmax kernels.
inline void register_reduce_ops(op_registry& r) {
  using namespace detail::reduce_ops;
  // ReduceSum moved its axes to an input at opset 13, the other reductions at 18.
  r.add("ReduceSum", run_reduce<sum_kind, false>, types::numeric, check_keepdims, 1, 12);
  r.add("ReduceSum", run_reduce<sum_kind, true>, types::numeric, check_axes_input, 13);
  auto add_reduce = [&r](const char* name, run_fn attr, run_fn input) {
    r.add(name, attr, types::numeric, check_keepdims, 1, 17);
    r.add(name, input, types::numeric, check_axes_input, 18);
  };
  add_reduce("ReduceMean", run_reduce<mean_kind, false>, run_reduce<mean_kind, true>);
  add_reduce("ReduceMax", run_reduce<max_kind, false>, run_reduce<max_kind, true>);
  add_reduce("ReduceMin", run_reduce<min_kind, false>, run_reduce<min_kind, true>);
  add_reduce("ReduceProd", run_reduce<prod_kind, false>, run_reduce<prod_kind, true>);
  add_reduce("ReduceL1", run_reduce<l1_kind, false>, run_reduce<l1_kind, true>);
  add_reduce("ReduceL2", run_reduce<l2_kind, false>, run_reduce<l2_kind, true>);
  add_reduce("ReduceLogSum", run_reduce<log_sum_kind, false>, run_reduce<log_sum_kind, true>);
  add_reduce("ReduceLogSumExp", run_reduce<log_sum_exp_kind, false>, run_reduce<log_sum_exp_kind, true>);
  add_reduce("ReduceSumSquare", run_reduce<sum_square_kind, false>, run_reduce<sum_square_kind, true>);
  r.add("ArgMax", run_arg<true>, types::numeric, check_keepdims);
  r.add("ArgMin", run_arg<false>, types::numeric, check_keepdims);
  r.add("TopK", run_topk<false>, types::numeric, nullptr, 1, 9);
  r.add(
      "TopK", run_topk<true>, types::numeric,
      [](const node& n, std::int64_t) { detail::shape_ops::reject_moved_attributes(n, {"k"}, 10); }, 10);
  r.add("Softmax", run_softmax<softmax_kind::softmax, true>, types::floats, nullptr, 1, 12);
  r.add("Softmax", run_softmax<softmax_kind::softmax, false>, types::floats, nullptr, 13);
  r.add("LogSoftmax", run_softmax<softmax_kind::log_softmax, true>, types::floats, nullptr, 1, 12);
  r.add("LogSoftmax", run_softmax<softmax_kind::log_softmax, false>, types::floats, nullptr, 13);
  r.add("Hardmax", run_softmax<softmax_kind::hardmax, true>, types::floats, nullptr, 1, 12);
  r.add("Hardmax", run_softmax<softmax_kind::hardmax, false>, types::floats, nullptr, 13);
}

}  // namespace quench::runtime
