#pragma once
// Calling a templated kernel with the C++ type of a runtime dtype.

#include <cstdint>
#include <string>

#include "quench/core/dtype.hpp"
#include "quench/runtime/op_context.hpp"

namespace quench::runtime {

/// Calls `f(T{})` with T the type of `t` among float, double and the integer types; fails with
/// unsupported_dtype naming the node otherwise.
template <class F>
decltype(auto) visit_numeric(dtype t, const op_context& ctx, F&& f) {
  switch (t) {
    case dtype::float32: return f(float{});
    case dtype::float64: return f(double{});
    case dtype::int8: return f(std::int8_t{});
    case dtype::uint8: return f(std::uint8_t{});
    case dtype::int16: return f(std::int16_t{});
    case dtype::uint16: return f(std::uint16_t{});
    case dtype::int32: return f(std::int32_t{});
    case dtype::uint32: return f(std::uint32_t{});
    case dtype::int64: return f(std::int64_t{});
    case dtype::uint64: return f(std::uint64_t{});
    default: ctx.fail(errc::unsupported_dtype, "element type " + to_string(t) + " is not supported by this kernel");
  }
}

/// As visit_numeric, for float and double only.
template <class F>
decltype(auto) visit_float(dtype t, const op_context& ctx, F&& f) {
  switch (t) {
    case dtype::float32: return f(float{});
    case dtype::float64: return f(double{});
    default: ctx.fail(errc::unsupported_dtype, "element type " + to_string(t) + " is not supported by this kernel");
  }
}

}  // namespace quench::runtime
