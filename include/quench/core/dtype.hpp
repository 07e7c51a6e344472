#pragma once
// Element types, numbered exactly as ONNX TensorProto.DataType (onnx/onnx.proto), so a dtype
// converts to and from the protobuf integer with a cast. Types 17-22 postdate the protobuf headers
// of onnx 1.12; here they are plain numbers and work all the same.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "quench/core/error.hpp"

namespace quench {

enum class dtype : std::int32_t {
  undefined = 0,
  float32 = 1,
  uint8 = 2,
  int8 = 3,
  uint16 = 4,
  int16 = 5,
  int32 = 6,
  int64 = 7,
  string = 8,  ///< known so that models holding strings load; no kernel handles it
  bool_ = 9,
  float16 = 10,
  float64 = 11,
  uint32 = 12,
  uint64 = 13,
  bfloat16 = 16,
  float8e4m3fn = 17,
  float8e4m3fnuz = 18,
  float8e5m2 = 19,
  float8e5m2fnuz = 20,
  uint4 = 21,
  int4 = 22,
};

/// True for the numbers quench knows (complex64/128 = 14/15 and later types are not).
constexpr bool is_known_dtype(std::int32_t onnx_type) noexcept {
  return (onnx_type >= 1 && onnx_type <= 13) || (onnx_type >= 16 && onnx_type <= 22);
}

/// Bits per element: 4 for int4/uint4, 0 for undefined and string.
constexpr int bit_width(dtype t) noexcept {
  switch (t) {
    case dtype::bool_:
    case dtype::uint8:
    case dtype::int8:
    case dtype::float8e4m3fn:
    case dtype::float8e4m3fnuz:
    case dtype::float8e5m2:
    case dtype::float8e5m2fnuz: return 8;
    case dtype::uint16:
    case dtype::int16:
    case dtype::float16:
    case dtype::bfloat16: return 16;
    case dtype::float32:
    case dtype::int32:
    case dtype::uint32: return 32;
    case dtype::float64:
    case dtype::int64:
    case dtype::uint64: return 64;
    case dtype::uint4:
    case dtype::int4: return 4;
    case dtype::undefined:
    case dtype::string: return 0;
  }
  return 0;
}

/// Bytes needed to store `count` elements packed as ONNX stores them (two 4-bit values per byte).
constexpr std::size_t storage_bytes(dtype t, std::size_t count) noexcept {
  return (count * static_cast<std::size_t>(bit_width(t)) + 7) / 8;
}

constexpr bool is_sub_byte(dtype t) noexcept { return t == dtype::int4 || t == dtype::uint4; }

constexpr bool is_float8(dtype t) noexcept {
  return t == dtype::float8e4m3fn || t == dtype::float8e4m3fnuz || t == dtype::float8e5m2 ||
         t == dtype::float8e5m2fnuz;
}

constexpr bool is_floating(dtype t) noexcept {
  return t == dtype::float32 || t == dtype::float64 || t == dtype::float16 || t == dtype::bfloat16 ||
         is_float8(t);
}

constexpr bool is_integral(dtype t) noexcept {
  switch (t) {
    case dtype::uint8:
    case dtype::int8:
    case dtype::uint16:
    case dtype::int16:
    case dtype::int32:
    case dtype::int64:
    case dtype::uint32:
    case dtype::uint64:
    case dtype::uint4:
    case dtype::int4: return true;
    default: return false;
  }
}

constexpr bool is_signed(dtype t) noexcept {
  switch (t) {
    case dtype::int8:
    case dtype::int16:
    case dtype::int32:
    case dtype::int64:
    case dtype::int4: return true;
    default: return is_floating(t);
  }
}

/// Lower-case name as in ONNX's TensorProto.DataType, e.g. "float", "int4", "float8e4m3fn".
constexpr std::string_view dtype_name(dtype t) noexcept {
  switch (t) {
    case dtype::undefined: return "undefined";
    case dtype::float32: return "float";
    case dtype::uint8: return "uint8";
    case dtype::int8: return "int8";
    case dtype::uint16: return "uint16";
    case dtype::int16: return "int16";
    case dtype::int32: return "int32";
    case dtype::int64: return "int64";
    case dtype::string: return "string";
    case dtype::bool_: return "bool";
    case dtype::float16: return "float16";
    case dtype::float64: return "double";
    case dtype::uint32: return "uint32";
    case dtype::uint64: return "uint64";
    case dtype::bfloat16: return "bfloat16";
    case dtype::float8e4m3fn: return "float8e4m3fn";
    case dtype::float8e4m3fnuz: return "float8e4m3fnuz";
    case dtype::float8e5m2: return "float8e5m2";
    case dtype::float8e5m2fnuz: return "float8e5m2fnuz";
    case dtype::uint4: return "uint4";
    case dtype::int4: return "int4";
  }
  return "unknown";
}

inline std::string to_string(dtype t) { return std::string(dtype_name(t)); }

/// Converts an ONNX TensorProto.DataType number; throws unsupported_dtype for others.
inline dtype dtype_from_onnx(std::int32_t onnx_type, std::string_view context = {}) {
  if (!is_known_dtype(onnx_type))
    throw_error(errc::unsupported_dtype, std::string(context),
                "ONNX element type " + std::to_string(onnx_type) + " is not supported by quench");
  return static_cast<dtype>(onnx_type);
}

/// Parses a name from dtype_name(), also accepting "float32", "float64", "fp16", "bf16".
inline dtype dtype_from_name(std::string_view name) {
  for (int i = 1; i <= 22; ++i) {
    if (is_known_dtype(i) && dtype_name(static_cast<dtype>(i)) == name) return static_cast<dtype>(i);
  }
  if (name == "float32" || name == "fp32") return dtype::float32;
  if (name == "float64") return dtype::float64;
  if (name == "fp16" || name == "half") return dtype::float16;
  if (name == "bf16") return dtype::bfloat16;
  throw_error(errc::invalid_argument, {}, "unknown element type name '" + std::string(name) + "'");
}

/// Maps a C++ element type to its dtype: `dtype_of_v<float> == dtype::float32`.
/// numeric/ adds float16, bfloat16, the float8 types, int4 and uint4.
template <class T>
struct dtype_of {
  static_assert(sizeof(T) == 0,
                "quench::dtype_of<T>: T is not a quench element type; use float, double, "
                "std::(u)intN_t, bool, or a type from quench/numeric/");
};

template <class T>
inline constexpr dtype dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

#define QUENCH_DETAIL_DTYPE_OF(Type, Value) \
  template <>                               \
  struct dtype_of<Type> : std::integral_constant<dtype, dtype::Value> {}

QUENCH_DETAIL_DTYPE_OF(float, float32);
QUENCH_DETAIL_DTYPE_OF(double, float64);
QUENCH_DETAIL_DTYPE_OF(std::int8_t, int8);
QUENCH_DETAIL_DTYPE_OF(std::uint8_t, uint8);
QUENCH_DETAIL_DTYPE_OF(std::int16_t, int16);
QUENCH_DETAIL_DTYPE_OF(std::uint16_t, uint16);
QUENCH_DETAIL_DTYPE_OF(std::int32_t, int32);
QUENCH_DETAIL_DTYPE_OF(std::uint32_t, uint32);
QUENCH_DETAIL_DTYPE_OF(std::int64_t, int64);
QUENCH_DETAIL_DTYPE_OF(std::uint64_t, uint64);
QUENCH_DETAIL_DTYPE_OF(bool, bool_);

}  // namespace quench
