#pragma once
// Conversion between ONNX TensorProto messages and quench::tensor.
//
// Element types 17-22 (float8, uint4, int4) postdate the onnx 1.12 protobuf headers; data_type is
// a plain int32 in the message, so they convert like any other. Data may live in raw_data
// (little-endian, 4-bit types packed low nibble first) or in the typed fields, whose encoding
// onnx.proto defines per type:
//   int32_data   int8/uint8/int16/uint16/int32/bool, float16/bfloat16/float8 as bit patterns,
//                int4/uint4 as one packed byte (two elements) per entry
//   int64_data   int64;  uint64_data  uint32/uint64;  float_data  float;  double_data  double

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/value.hpp"

namespace quench::onnx {

namespace detail {

inline std::string proto_context(const ::ONNX_NAMESPACE::TensorProto& p) {
  return p.name().empty() ? std::string("unnamed TensorProto") : tensor_context(p.name());
}

/// Element count of `dims`, refusing negative dimensions and products that overflow: a corrupt
/// file must not turn into a huge allocation.
inline std::size_t checked_numel(const ::ONNX_NAMESPACE::TensorProto& p) {
  std::size_t n = 1;
  for (auto d : p.dims()) {
    if (d < 0) throw_error(errc::parse_error, proto_context(p), "negative dimension " + std::to_string(d));
    if (d != 0 && n > (std::size_t{1} << 56) / static_cast<std::size_t>(d))
      throw_error(errc::parse_error, proto_context(p), "dimensions overflow the element count");
    n *= static_cast<std::size_t>(d);
  }
  return n;
}

/// The number of entries the typed field holding `type` must have for `n` elements.
inline std::size_t typed_field_count(const ::ONNX_NAMESPACE::TensorProto& p, dtype type) {
  switch (type) {
    case dtype::float32: return static_cast<std::size_t>(p.float_data_size());
    case dtype::float64: return static_cast<std::size_t>(p.double_data_size());
    case dtype::int64: return static_cast<std::size_t>(p.int64_data_size());
    case dtype::uint32:
    case dtype::uint64: return static_cast<std::size_t>(p.uint64_data_size());
    default: return static_cast<std::size_t>(p.int32_data_size());
  }
}

template <class Out, class Field>
inline void copy_field(const Field& field, std::byte* dst) {
  Out* out = reinterpret_cast<Out*>(dst);
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<Out>(field.Get(i));
}

}  // namespace detail

/// Converts a TensorProto holding its data inline. External data (data_location = EXTERNAL) needs
/// the model's directory and is resolved by the model loader, not here.
inline quench::tensor from_proto(const ::ONNX_NAMESPACE::TensorProto& p) {
  const std::string ctx = detail::proto_context(p);
  const dtype type = dtype_from_onnx(p.data_type(), ctx);
  if (type == dtype::string)
    throw_error(errc::unsupported_dtype, ctx, "string tensors are not supported");
  if (p.data_location() == ::ONNX_NAMESPACE::TensorProto::EXTERNAL)
    throw_error(errc::invalid_argument, ctx, "tensor data is stored externally; load it through the model loader");
  const std::size_t count = detail::checked_numel(p);
  const std::size_t want_bytes = storage_bytes(type, count);
  // Check the data size before allocating, so a corrupt header cannot request gigabytes.
  if (p.has_raw_data() && p.raw_data().size() != want_bytes)
    throw_error(errc::parse_error, ctx,
                "expected " + std::to_string(want_bytes) + " bytes of raw_data for " + to_string(type) + " " +
                    to_string(quench::shape(p.dims().begin(), p.dims().end())) + ", found " +
                    std::to_string(p.raw_data().size()));
  if (!p.has_raw_data()) {
    const std::size_t want_entries = is_sub_byte(type) ? want_bytes : count;
    if (detail::typed_field_count(p, type) != want_entries)
      throw_error(errc::parse_error, ctx,
                  "expected " + std::to_string(want_entries) + " typed data entries for " + to_string(type) + " " +
                      to_string(quench::shape(p.dims().begin(), p.dims().end())) + ", found " +
                      std::to_string(detail::typed_field_count(p, type)));
  }
  quench::tensor t(type, quench::shape(p.dims().begin(), p.dims().end()), p.name());
  std::byte* dst = t.bytes();

  if (p.has_raw_data()) {
    if (t.nbytes()) std::memcpy(dst, p.raw_data().data(), t.nbytes());
    return t;
  }
  switch (type) {
    case dtype::float32:
      detail::copy_field<float>(p.float_data(), dst);
      break;
    case dtype::float64:
      detail::copy_field<double>(p.double_data(), dst);
      break;
    case dtype::int64:
      detail::copy_field<std::int64_t>(p.int64_data(), dst);
      break;
    case dtype::uint32:
      detail::copy_field<std::uint32_t>(p.uint64_data(), dst);
      break;
    case dtype::uint64:
      detail::copy_field<std::uint64_t>(p.uint64_data(), dst);
      break;
    case dtype::int32:
      detail::copy_field<std::int32_t>(p.int32_data(), dst);
      break;
    case dtype::int16:
      detail::copy_field<std::int16_t>(p.int32_data(), dst);
      break;
    case dtype::uint16:
    case dtype::float16:
    case dtype::bfloat16:
      detail::copy_field<std::uint16_t>(p.int32_data(), dst);
      break;
    case dtype::int8:
      detail::copy_field<std::int8_t>(p.int32_data(), dst);
      break;
    case dtype::uint8:
    case dtype::bool_:
    case dtype::float8e4m3fn:
    case dtype::float8e4m3fnuz:
    case dtype::float8e5m2:
    case dtype::float8e5m2fnuz:
      detail::copy_field<std::uint8_t>(p.int32_data(), dst);
      break;
    case dtype::int4:
    case dtype::uint4:
      detail::copy_field<std::uint8_t>(p.int32_data(), dst);
      break;
    default:
      throw_error(errc::unsupported_dtype, ctx, "cannot read " + to_string(type) + " data");
  }
  return t;
}

/// Like from_proto(const&), but takes raw_data out of `p` without copying: the tensor adopts the
/// protobuf's string (writable, since `p` gives it up). `p` loses its raw_data.
inline quench::tensor from_proto(::ONNX_NAMESPACE::TensorProto&& p) {
  if (!p.has_raw_data() || p.data_location() == ::ONNX_NAMESPACE::TensorProto::EXTERNAL) return from_proto(p);
  const std::string ctx = detail::proto_context(p);
  const dtype type = dtype_from_onnx(p.data_type(), ctx);
  if (type == dtype::string) throw_error(errc::unsupported_dtype, ctx, "string tensors are not supported");
  detail::checked_numel(p);
  quench::shape s(p.dims().begin(), p.dims().end());
  std::shared_ptr<std::string> holder(p.release_raw_data());
  std::shared_ptr<std::byte> bytes(holder, reinterpret_cast<std::byte*>(holder->data()));
  const std::size_t n = holder->size();
  if (n != storage_bytes(type, s.numel()))
    throw_error(errc::parse_error, ctx,
                "expected " + std::to_string(storage_bytes(type, s.numel())) + " bytes of raw_data for " +
                    to_string(type) + " " + to_string(s) + ", found " + std::to_string(n));
  return quench::tensor::adopt(type, std::move(s), std::move(bytes), n, /*read_only=*/false, p.name());
}

/// How `p` stores its data.
inline tensor_encoding encoding_of(const ::ONNX_NAMESPACE::TensorProto& p) noexcept {
  if (p.data_location() == ::ONNX_NAMESPACE::TensorProto::EXTERNAL) return tensor_encoding::external;
  return p.has_raw_data() ? tensor_encoding::raw : tensor_encoding::typed;
}

/// Writes `t` into `p`: name, dims, data_type and the data, in raw_data or in the typed field
/// onnx.proto assigns to the type (`encoding` typed); other fields of `p` are left alone.
/// `tensor_encoding::external` is the model saver's business and is refused here.
inline void to_proto(const quench::tensor& t, ::ONNX_NAMESPACE::TensorProto& p,
                     tensor_encoding encoding = tensor_encoding::raw) {
  if (!t.name().empty()) p.set_name(t.name());
  p.clear_dims();
  for (auto d : t.shape()) p.add_dims(d);
  p.set_data_type(static_cast<std::int32_t>(t.dtype()));
  p.clear_float_data();
  p.clear_int32_data();
  p.clear_int64_data();
  p.clear_double_data();
  p.clear_uint64_data();
  p.clear_raw_data();
  if (encoding == tensor_encoding::external)
    throw_error(errc::invalid_argument, tensor_context(t.name()), "external data is written by the model saver");
  if (encoding == tensor_encoding::raw) {
    p.set_raw_data(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
    return;
  }
  const std::byte* src = t.bytes();
  const std::size_t n = t.size();
  auto load = [src](auto tag, std::size_t i) {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    return v;
  };
  switch (t.dtype()) {
    case dtype::float32:
      for (std::size_t i = 0; i < n; ++i) p.add_float_data(load(float{}, i));
      break;
    case dtype::float64:
      for (std::size_t i = 0; i < n; ++i) p.add_double_data(load(double{}, i));
      break;
    case dtype::int64:
      for (std::size_t i = 0; i < n; ++i) p.add_int64_data(load(std::int64_t{}, i));
      break;
    case dtype::uint32:
      for (std::size_t i = 0; i < n; ++i) p.add_uint64_data(load(std::uint32_t{}, i));
      break;
    case dtype::uint64:
      for (std::size_t i = 0; i < n; ++i) p.add_uint64_data(load(std::uint64_t{}, i));
      break;
    case dtype::int32:
      for (std::size_t i = 0; i < n; ++i) p.add_int32_data(load(std::int32_t{}, i));
      break;
    case dtype::int16:
      for (std::size_t i = 0; i < n; ++i) p.add_int32_data(load(std::int16_t{}, i));
      break;
    case dtype::uint16:
    case dtype::float16:
    case dtype::bfloat16:
      for (std::size_t i = 0; i < n; ++i) p.add_int32_data(load(std::uint16_t{}, i));
      break;
    case dtype::int8:
      for (std::size_t i = 0; i < n; ++i) p.add_int32_data(load(std::int8_t{}, i));
      break;
    case dtype::int4:
    case dtype::uint4:
      for (std::size_t i = 0; i < t.nbytes(); ++i) p.add_int32_data(load(std::uint8_t{}, i));
      break;
    default:  // uint8, bool, float8: one byte per entry
      for (std::size_t i = 0; i < n; ++i) p.add_int32_data(load(std::uint8_t{}, i));
      break;
  }
}

/// Reads a serialized TensorProto (the input_N.pb / output_N.pb files of ONNX node tests).
inline quench::tensor read_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(errc::io_error, {}, "cannot open '" + path + "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  ::ONNX_NAMESPACE::TensorProto p;
  if (!p.ParseFromString(buf.str()))
    throw_error(errc::parse_error, {}, "'" + path + "' is not a valid serialized TensorProto");
  return from_proto(p);
}

}  // namespace quench::onnx
