#pragma once
// Element-wise operators: arithmetic and comparison with broadcasting, logical ops, variadic
// Min/Max/Sum/Mean, Where, and the unary math and activation functions.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/runtime/broadcast.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

namespace detail {

/// out[i] = op(a[i], b[i]) over the broadcast of a and b; Out is the output element type.
template <class T, class Out, class Op>
tensor binary_broadcast(const op_context& ctx, const tensor& a, const tensor& b, Op op) {
  const shape out_shape = broadcast_shapes({&a.shape(), &b.shape()}, ctx.node().context());
  const T* pa = a.view<T>().data();
  const T* pb = b.view<T>().data();
  const std::vector<std::size_t> strides[2] = {broadcast_strides(a.shape(), out_shape),
                                               broadcast_strides(b.shape(), out_shape)};
  // In place over an input of the output's shape (element j is read before it is written).
  tensor out = ctx.reuse_or_allocate(a.shape() == out_shape ? 0 : 1, dtype_of_v<Out>, out_shape);
  Out* po = out.view<Out>().data();
  for_each_broadcast_run(out_shape, strides, [&](std::size_t o, const std::size_t* in, std::size_t n, const std::size_t* st) {
    const T* x = pa + in[0];
    const T* y = pb + in[1];
    Out* z = po + o;
    if (st[0] == 1 && st[1] == 1) {
      for (std::size_t j = 0; j < n; ++j) z[j] = op(x[j], y[j]);
    } else if (st[0] == 1 && st[1] == 0) {
      const T c = *y;
      for (std::size_t j = 0; j < n; ++j) z[j] = op(x[j], c);
    } else if (st[0] == 0 && st[1] == 1) {
      const T c = *x;
      for (std::size_t j = 0; j < n; ++j) z[j] = op(c, y[j]);
    } else {
      for (std::size_t j = 0; j < n; ++j) z[j] = op(x[j * st[0]], y[j * st[1]]);
    }
  });
  return out;
}

inline void same_types(const op_context& ctx, const tensor& a, const tensor& b) {
  if (a.dtype() != b.dtype())
    ctx.fail(errc::dtype_mismatch, "inputs have different element types " + to_string(a.dtype()) + " and " + to_string(b.dtype()));
}

template <class T>
T int_div(const op_context& ctx, T x, T y) {
  if (y == 0) ctx.fail(errc::invalid_value, "integer division by zero");
  return static_cast<T>(x / y);  // C++ truncates toward zero, as ONNX Div on integers
}

template <class Kind>
void run_arith(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  same_types(ctx, a, b);
  ctx.set_output(0, visit_numeric(a.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    return binary_broadcast<T, T>(ctx, a, b, [&](T x, T y) { return Kind::template apply<T>(ctx, x, y); });
  }));
}

struct add_kind { template <class T> static T apply(const op_context&, T x, T y) { return static_cast<T>(x + y); } };
struct sub_kind { template <class T> static T apply(const op_context&, T x, T y) { return static_cast<T>(x - y); } };
struct mul_kind { template <class T> static T apply(const op_context&, T x, T y) { return static_cast<T>(x * y); } };
struct div_kind {
  template <class T>
  static T apply(const op_context& ctx, T x, T y) {
    if constexpr (std::is_floating_point_v<T>) return x / y;
    else return int_div(ctx, x, y);
  }
};

template <class Cmp>
void run_compare(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  same_types(ctx, a, b);
  if (a.dtype() == dtype::bool_) {
    ctx.set_output(0, binary_broadcast<bool, bool>(ctx, a, b, [](bool x, bool y) { return Cmp{}(x, y); }));
    return;
  }
  ctx.set_output(0, visit_numeric(a.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    return binary_broadcast<T, bool>(ctx, a, b, [](T x, T y) { return Cmp{}(x, y); });
  }));
}

template <class Op>
void run_logical(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  if (a.dtype() != dtype::bool_ || b.dtype() != dtype::bool_) ctx.fail(errc::dtype_mismatch, "expects bool inputs");
  ctx.set_output(0, binary_broadcast<bool, bool>(ctx, a, b, [](bool x, bool y) { return Op{}(x, y); }));
}

struct xor_op { bool operator()(bool x, bool y) const { return x != y; } };

inline void run_not(op_context& ctx) {
  const auto x = ctx.input_as<bool>(0);
  tensor out(dtype::bool_, x.shape());
  auto o = out.view<bool>();
  for (std::size_t i = 0; i < x.size(); ++i) o[i] = !x[i];
  ctx.set_output(0, std::move(out));
}

inline void run_pow(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  // Pow-12+ allows an exponent type different from the base's: compute in the base type.
  auto exponent_as = [&](auto tag) {
    using T = decltype(tag);
    if (b.dtype() == a.dtype()) return b.clone();
    tensor e(a.dtype(), b.shape());
    auto ev = e.view<T>();
    visit_numeric(b.dtype(), ctx, [&](auto btag) {
      using B = decltype(btag);
      const auto bv = b.view<B>();
      for (std::size_t i = 0; i < bv.size(); ++i) ev[i] = static_cast<T>(bv[i]);
      return 0;
    });
    return e;
  };
  ctx.set_output(0, visit_numeric(a.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    const tensor e = exponent_as(tag);
    return binary_broadcast<T, T>(ctx, a, e, [](T x, T y) {
      if constexpr (std::is_floating_point_v<T>) return static_cast<T>(std::pow(x, y));
      else return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
    });
  }));
}

inline void run_prelu(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& slope = ctx.required_input(1);
  same_types(ctx, x, slope);
  ctx.set_output(0, visit_numeric(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    return binary_broadcast<T, T>(ctx, x, slope, [](T v, T s) { return v < T(0) ? static_cast<T>(v * s) : v; });
  }));
}

/// PRelu before opset 7: a 1-D slope of size C applies along axis 1 (per channel).
inline void run_prelu_legacy(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  const tensor& slope = ctx.required_input(1);
  same_types(ctx, x, slope);
  if (slope.rank() == 1 && slope.size() > 1 && x.rank() >= 2 && x.shape()[1] == slope.shape()[0]) {
    tensor s = slope.clone();
    std::vector<std::int64_t> dims(x.rank() - 1, 1);
    dims[0] = slope.shape()[0];
    s.reshape(shape(std::move(dims)));
    ctx.set_output(0, visit_float(x.dtype(), ctx, [&](auto tag) {
      using T = decltype(tag);
      return binary_broadcast<T, T>(ctx, x, s, [](T v, T k) { return v < T(0) ? static_cast<T>(v * k) : v; });
    }));
    return;
  }
  run_prelu(ctx);
}

/// Min, Max, Sum, Mean: folded pairwise over all inputs with broadcasting.
template <class Kind>
void run_variadic(op_context& ctx) {
  if (ctx.input_count() == 0) ctx.fail(errc::invalid_model, "needs at least one input");
  tensor acc = ctx.required_input(0).clone();
  for (std::size_t i = 1; i < ctx.input_count(); ++i) {
    const tensor& b = ctx.required_input(i);
    same_types(ctx, acc, b);
    acc = visit_numeric(acc.dtype(), ctx, [&](auto tag) {
      using T = decltype(tag);
      return binary_broadcast<T, T>(ctx, acc, b, [](T x, T y) { return Kind::template fold<T>(x, y); });
    });
  }
  if constexpr (Kind::is_mean) {
    visit_float(acc.dtype(), ctx, [&](auto tag) {
      using T = decltype(tag);
      auto v = acc.view<T>();
      const T n = static_cast<T>(ctx.input_count());
      for (auto& e : v) e /= n;
      return 0;
    });
  }
  ctx.set_output(0, std::move(acc));
}

struct min_kind {
  static constexpr bool is_mean = false;
  template <class T> static T fold(T x, T y) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<T>::quiet_NaN();
    }
    return std::min(x, y);
  }
};
struct max_kind {
  static constexpr bool is_mean = false;
  template <class T> static T fold(T x, T y) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<T>::quiet_NaN();
    }
    return std::max(x, y);
  }
};
struct sum_kind {
  static constexpr bool is_mean = false;
  template <class T> static T fold(T x, T y) { return static_cast<T>(x + y); }
};
struct mean_kind {
  static constexpr bool is_mean = true;
  template <class T> static T fold(T x, T y) { return static_cast<T>(x + y); }
};

inline void run_where(op_context& ctx) {
  const tensor& c = ctx.required_input(0);
  const tensor& x = ctx.required_input(1);
  const tensor& y = ctx.required_input(2);
  if (c.dtype() != dtype::bool_) ctx.fail(errc::dtype_mismatch, "condition must be bool");
  same_types(ctx, x, y);
  const shape out_shape = broadcast_shapes({&c.shape(), &x.shape(), &y.shape()}, ctx.node().context());
  const std::vector<std::size_t> strides[3] = {broadcast_strides(c.shape(), out_shape), broadcast_strides(x.shape(), out_shape),
                                               broadcast_strides(y.shape(), out_shape)};
  auto body = [&](auto tag) {
    using T = decltype(tag);
    tensor out(x.dtype(), out_shape);
    const bool* pc = c.view<bool>().data();
    const T* px = x.view<T>().data();
    const T* py = y.view<T>().data();
    T* po = out.view<T>().data();
    for_each_broadcast_run(out_shape, strides, [&](std::size_t o, const std::size_t* in, std::size_t n, const std::size_t* st) {
      for (std::size_t j = 0; j < n; ++j) po[o + j] = pc[in[0] + j * st[0]] ? px[in[1] + j * st[1]] : py[in[2] + j * st[2]];
    });
    return out;
  };
  if (x.dtype() == dtype::bool_) ctx.set_output(0, body(bool{}));
  else ctx.set_output(0, visit_numeric(x.dtype(), ctx, body));
}

/// Applies `f` to every element of input 0 (float types, or all numeric types with `any_numeric`).
template <bool AnyNumeric, class F>
void unary(op_context& ctx, F f) {
  const tensor& x = ctx.required_input(0);
  auto body = [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.view<T>().data();
    const std::size_t n = x.size();
    tensor out = ctx.reuse_or_allocate(0, x.dtype(), x.shape());
    T* o = out.view<T>().data();
    for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(in[i]));
    return out;
  };
  if constexpr (AnyNumeric) ctx.set_output(0, visit_numeric(x.dtype(), ctx, body));
  else ctx.set_output(0, visit_float(x.dtype(), ctx, body));
}

inline float erf_f(float v) { return std::erf(v); }

inline void run_clip(op_context& ctx) {
  const tensor& x = ctx.required_input(0);
  ctx.set_output(0, visit_numeric(x.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
    if (ctx.opset() < 11) {
      lo = static_cast<T>(ctx.node().attr_float("min", -std::numeric_limits<float>::max()));
      hi = static_cast<T>(ctx.node().attr_float("max", std::numeric_limits<float>::max()));
    } else {
      if (const tensor* t = ctx.input(1); t && t->size()) lo = ctx.input_as<T>(1)[0];
      if (const tensor* t = ctx.input(2); t && t->size()) hi = ctx.input_as<T>(2)[0];
    }
    const T* in = x.view<T>().data();
    const std::size_t n = x.size();
    tensor out = ctx.reuse_or_allocate(0, x.dtype(), x.shape());
    T* o = out.view<T>().data();
    for (std::size_t i = 0; i < n; ++i) {
      const T v = in[i];
      o[i] = v < lo ? lo : (v > hi ? hi : v);  // NaN passes through, as in ONNX Runtime
    }
    return out;
  }));
}

}  // namespace detail

/// Registers the element-wise kernels.
inline void register_elementwise_ops(op_registry& r) {
  using namespace detail;
  r.add("Add", run_arith<add_kind>, types::numeric);
  r.add("Sub", run_arith<sub_kind>, types::numeric);
  r.add("Mul", run_arith<mul_kind>, types::numeric);
  r.add("Div", run_arith<div_kind>, types::numeric);
  r.add("Pow", run_pow, types::numeric);
  r.add("PRelu", run_prelu_legacy, types::floats, nullptr, 1, 6);
  r.add("PRelu", run_prelu, types::numeric, nullptr, 7);
  r.add("Equal", run_compare<std::equal_to<>>, types::numeric | types::boolean);
  r.add("Less", run_compare<std::less<>>, types::numeric | types::boolean);
  r.add("Greater", run_compare<std::greater<>>, types::numeric | types::boolean);
  r.add("LessOrEqual", run_compare<std::less_equal<>>, types::numeric | types::boolean);
  r.add("GreaterOrEqual", run_compare<std::greater_equal<>>, types::numeric | types::boolean);
  r.add("And", run_logical<std::logical_and<>>, types::boolean);
  r.add("Or", run_logical<std::logical_or<>>, types::boolean);
  r.add("Xor", run_logical<xor_op>, types::boolean);
  r.add("Not", run_not, types::boolean);
  r.add("Min", run_variadic<min_kind>, types::numeric);
  r.add("Max", run_variadic<max_kind>, types::numeric);
  r.add("Sum", run_variadic<sum_kind>, types::numeric);
  r.add("Mean", run_variadic<mean_kind>, types::floats);
  r.add("Where", run_where, types::boolean);
  r.add("Clip", run_clip, types::numeric);

  r.add("Relu", [](op_context& c) { unary<true>(c, [](auto v) { return v > decltype(v)(0) ? v : decltype(v)(0); }); }, types::numeric);
  r.add("Neg", [](op_context& c) { unary<true>(c, [](auto v) { return -v; }); }, types::numeric);
  r.add("Abs", [](op_context& c) {
    unary<true>(c, [](auto v) {
      if constexpr (std::is_unsigned_v<decltype(v)>) return v;
      else return v < decltype(v)(0) ? -v : v;
    });
  }, types::numeric);
  r.add("Sign", [](op_context& c) { unary<true>(c, [](auto v) { return (decltype(v)(0) < v) - (v < decltype(v)(0)); }); }, types::numeric);
  r.add("LeakyRelu", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 0.01f);
    unary<false>(c, [a](auto v) { return v < 0 ? v * a : v; });
  }, types::floats);
  r.add("Sigmoid", [](op_context& c) { unary<false>(c, [](auto v) { return 1 / (1 + std::exp(-v)); }); }, types::floats);
  r.add("HardSigmoid", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 0.2f), b = c.node().attr_float("beta", 0.5f);
    unary<false>(c, [a, b](auto v) { return std::max(decltype(v)(0), std::min(decltype(v)(1), a * v + b)); });
  }, types::floats);
  r.add("HardSwish", [](op_context& c) {
    unary<false>(c, [](auto v) { return v * std::max(decltype(v)(0), std::min(decltype(v)(1), v / 6 + decltype(v)(0.5))); });
  }, types::floats);
  r.add("Tanh", [](op_context& c) { unary<false>(c, [](auto v) { return std::tanh(v); }); }, types::floats);
  r.add("Elu", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 1.f);
    unary<false>(c, [a](auto v) { return v < 0 ? a * (std::exp(v) - 1) : v; });
  }, types::floats);
  r.add("Celu", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 1.f);
    unary<false>(c, [a](auto v) { return std::max(decltype(v)(0), v) + std::min(decltype(v)(0), a * (std::exp(v / a) - 1)); });
  }, types::floats);
  r.add("Selu", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 1.67326319217681884765625f);
    const float g = c.node().attr_float("gamma", 1.05070102214813232421875f);
    unary<false>(c, [a, g](auto v) { return v <= 0 ? g * (a * std::exp(v) - a) : g * v; });
  }, types::floats);
  r.add("ThresholdedRelu", [](op_context& c) {
    const float a = c.node().attr_float("alpha", 1.f);
    unary<false>(c, [a](auto v) { return v > a ? v : decltype(v)(0); });
  }, types::floats);
  r.add("Softplus", [](op_context& c) {
    unary<false>(c, [](auto v) { return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); });
  }, types::floats);
  r.add("Softsign", [](op_context& c) { unary<false>(c, [](auto v) { return v / (1 + std::fabs(v)); }); }, types::floats);
  r.add("Erf", [](op_context& c) { unary<false>(c, [](auto v) { return std::erf(v); }); }, types::floats);
  r.add("Gelu", [](op_context& c) {
    const std::string approx = c.node().attr_string("approximate", "none");
    if (approx == "tanh")
      unary<false>(c, [](auto v) {
        using T = decltype(v);
        return T(0.5) * v * (1 + std::tanh(T(0.7978845608028654) * (v + T(0.044715) * v * v * v)));
      });
    else if (approx == "none")
      unary<false>(c, [](auto v) { return decltype(v)(0.5) * v * (1 + std::erf(v * decltype(v)(0.7071067811865476))); });
    else
      c.unsupported("approximate='" + approx + "'");
  }, types::floats);
  r.add("Sqrt", [](op_context& c) { unary<false>(c, [](auto v) { return std::sqrt(v); }); }, types::floats);
  r.add("Exp", [](op_context& c) { unary<false>(c, [](auto v) { return std::exp(v); }); }, types::floats);
  r.add("Log", [](op_context& c) { unary<false>(c, [](auto v) { return std::log(v); }); }, types::floats);
  r.add("Reciprocal", [](op_context& c) { unary<false>(c, [](auto v) { return 1 / v; }); }, types::floats);
  r.add("Floor", [](op_context& c) { unary<false>(c, [](auto v) { return std::floor(v); }); }, types::floats);
  r.add("Ceil", [](op_context& c) { unary<false>(c, [](auto v) { return std::ceil(v); }); }, types::floats);
  r.add("Round", [](op_context& c) { unary<false>(c, [](auto v) { return std::nearbyint(v); }); }, types::floats);  // half to even
  r.add("Sin", [](op_context& c) { unary<false>(c, [](auto v) { return std::sin(v); }); }, types::floats);
  r.add("Cos", [](op_context& c) { unary<false>(c, [](auto v) { return std::cos(v); }); }, types::floats);
}

}  // namespace quench::runtime
