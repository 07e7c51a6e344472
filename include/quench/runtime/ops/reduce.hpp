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
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  else return false;
}

// Each kind: init(), add(acc, x), finish(acc, count) -> T. Empty reductions give ONNX's identity
// values: 0 for sums, 1 for products, -inf / lowest for Max, +inf / max for Min, NaN for Mean.
struct sum_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) { a += static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct mean_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) { a += static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t n) {
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(a / static_cast<double>(n));
    else return n ? static_cast<T>(a / static_cast<acc_t<T>>(n)) : T(0);
  }
};
struct sum_square_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) { a += static_cast<acc_t<T>>(x) * static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct l1_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) {
    if constexpr (std::is_unsigned_v<T>) a += x;
    else a += static_cast<acc_t<T>>(x < T(0) ? -static_cast<acc_t<T>>(x) : static_cast<acc_t<T>>(x));
  }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct l2_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) { a += static_cast<acc_t<T>>(x) * static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(std::sqrt(static_cast<double>(a))); }
};
struct log_sum_kind {
  template <class T> static acc_t<T> init() { return 0; }
  template <class T> static void add(acc_t<T>& a, T x) { a += static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(std::log(static_cast<double>(a))); }
};
struct prod_kind {
  template <class T> static acc_t<T> init() { return 1; }
  template <class T> static void add(acc_t<T>& a, T x) { a *= static_cast<acc_t<T>>(x); }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct max_kind {
  template <class T> static acc_t<T> init() {
    if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<double>::infinity();
    else return static_cast<acc_t<T>>(std::numeric_limits<T>::lowest());
  }
  template <class T> static void add(acc_t<T>& a, T x) {
    if (is_nan(a)) return;  // NaN propagates, as numpy.max
    if (is_nan(x) || static_cast<acc_t<T>>(x) > a) a = static_cast<acc_t<T>>(x);
  }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct min_kind {
  template <class T> static acc_t<T> init() {
    if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<double>::infinity();
    else return static_cast<acc_t<T>>(std::numeric_limits<T>::max());
  }
  template <class T> static void add(acc_t<T>& a, T x) {
    if (is_nan(a)) return;
    if (is_nan(x) || static_cast<acc_t<T>>(x) < a) a = static_cast<acc_t<T>>(x);
  }
  template <class T> static T finish(acc_t<T> a, std::size_t) { return static_cast<T>(a); }
};
struct log_sum_exp_kind {};  // two passes, see reduce_log_sum_exp

/// Which input axes a reduction folds, and the output layout.
struct reduce_plan {
  bool identity = false;               ///< noop_with_empty_axes with no axes: output = input
  shape out_shape;                     ///< with keepdims applied
  std::vector<std::size_t> out_strides;  ///< per input axis; 0 along reduced axes
  std::size_t count = 1;               ///< input elements folded into each output
};

inline reduce_plan plan_reduce(const op_context& ctx, const shape& in, const std::vector<std::int64_t>& axes_list, bool keepdims,
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
  for_each_broadcast_run(x.shape(), strides, [&](std::size_t base, const std::size_t* offs, std::size_t n, const std::size_t* st) {
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
  for_each_reduced<T>(x, p, [&](std::size_t o, T v) { Kind::template add<T>(acc[o], v); });
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
    if constexpr (std::is_same_v<Kind, log_sum_exp_kind>) return reduce_log_sum_exp<T>(x, p);
    else return reduce_typed<Kind, T>(x, p);
  }));
}

inline void check_keepdims(const node& n, std::int64_t) {
  const std::int64_t k = n.attr_int("keepdims", 1);
  if (k != 0 && k != 1) throw_error(errc::invalid_model, n.context(), "keepdims must be 0 or 1, found " + std::to_string(k));
}

/// An `axes` attribute where the opset takes input 1 would be silently ignored: reject it.
inline void check_axes_input(const node& n, std::int64_t opset) {
  check_keepdims(n, opset);
  if (n.find_attribute("axes"))
    throw_error(errc::invalid_model, n.context(), "has an 'axes' attribute, but " + n.op_type() + " takes axes as input 1 from opset " +
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
  if (d == 0) ctx.fail(errc::shape_mismatch, "cannot take the arg" + std::string(Greater ? "max" : "min") + " of an empty axis");
  std::vector<std::int64_t> dims = x.shape().dims();
  if (keepdims) dims[axis] = 1;
  else dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(axis));
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
  if (k < 0 || k > d) ctx.fail(errc::out_of_range, "k = " + std::to_string(k) + " is outside [0, " + std::to_string(d) + "]");
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
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(ku), order.end(), before);
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

/// Coerced2d (opset < 13): normalise over everything from `axis` on (default 1); otherwise over
/// the single `axis` (default -1).
template <softmax_kind Kind, bool Coerced2d>
void run_softmax(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const std::int64_t r = static_cast<std::int64_t>(x.rank());
  std::size_t outer, d, inner;
  if (Coerced2d) {
    std::int64_t axis = ctx.node().attr_int("axis", 1);
    if (axis < -r || axis > r) ctx.fail(errc::out_of_range, "axis " + std::to_string(axis) + " is outside [" + std::to_string(-r) + ", " + std::to_string(r) + "]");
    if (axis < 0) axis += r;
    outer = x.shape().outer(static_cast<std::size_t>(axis));
    d = x.shape().numel() / std::max<std::size_t>(outer, 1);
    if (outer == 0) d = 0;
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
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        const T* p = in + o * d * inner + i;
        T* q = out + o * d * inner + i;
        if (d == 0) continue;
        std::size_t arg = 0;
        T mx = p[0];
        for (std::size_t k = 1; k < d; ++k)
          if (p[k * inner] > mx) {
            mx = p[k * inner];
            arg = k;
          }
        if constexpr (Kind == softmax_kind::hardmax) {
          for (std::size_t k = 0; k < d; ++k) q[k * inner] = T(k == arg ? 1 : 0);
        } else {
          double sum = 0;
          for (std::size_t k = 0; k < d; ++k) {
            const T e = std::exp(p[k * inner] - mx);
            if constexpr (Kind == softmax_kind::softmax) q[k * inner] = e;
            sum += static_cast<double>(e);
          }
          if constexpr (Kind == softmax_kind::softmax) {
            for (std::size_t k = 0; k < d; ++k) q[k * inner] = static_cast<T>(static_cast<double>(q[k * inner]) / sum);
          } else {
            const double lse = std::log(sum);
            for (std::size_t k = 0; k < d; ++k) q[k * inner] = static_cast<T>(static_cast<double>(p[k * inner] - mx) - lse);
          }
        }
      }
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
  r.add("TopK", run_topk<true>, types::numeric, [](const node& n, std::int64_t) { detail::shape_ops::reject_moved_attributes(n, {"k"}, 10); }, 10);
  r.add("Softmax", run_softmax<softmax_kind::softmax, true>, types::floats, nullptr, 1, 12);
  r.add("Softmax", run_softmax<softmax_kind::softmax, false>, types::floats, nullptr, 13);
  r.add("LogSoftmax", run_softmax<softmax_kind::log_softmax, true>, types::floats, nullptr, 1, 12);
  r.add("LogSoftmax", run_softmax<softmax_kind::log_softmax, false>, types::floats, nullptr, 13);
  r.add("Hardmax", run_softmax<softmax_kind::hardmax, true>, types::floats, nullptr, 1, 12);
  r.add("Hardmax", run_softmax<softmax_kind::hardmax, false>, types::floats, nullptr, 13);
}

}  // namespace quench::runtime
