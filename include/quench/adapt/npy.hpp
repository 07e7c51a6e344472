#pragma once
// Reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0, as specified in
// numpy/lib/format.py): a magic string, a version, a little-endian header length, a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } and the raw data.
//
//     quench::tensor w = quench::read_npy("conv1_weight.npy");   // dtype and shape from the file
//     quench::write_npy("out.npy", w);                           // written atomically
//
// Big-endian data is byte-swapped on read. Fortran-ordered arrays are refused with an error
// (quench tensors are row-major; np.ascontiguousarray fixes the file). bfloat16, float8 and 4-bit
// types have no NumPy dtype and are refused on write.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/atomic_file.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"

namespace quench {

namespace detail {

/// NumPy type character + size for a dtype, e.g. {'f', 4}; {0, 0} when NumPy has none.
inline std::pair<char, int> npy_kind(dtype t) noexcept {
  switch (t) {
    case dtype::float32: return {'f', 4};
    case dtype::float64: return {'f', 8};
    case dtype::float16: return {'f', 2};
    case dtype::int8: return {'i', 1};
    case dtype::uint8: return {'u', 1};
    case dtype::int16: return {'i', 2};
    case dtype::uint16: return {'u', 2};
    case dtype::int32: return {'i', 4};
    case dtype::uint32: return {'u', 4};
    case dtype::int64: return {'i', 8};
    case dtype::uint64: return {'u', 8};
    case dtype::bool_: return {'b', 1};
    default: return {0, 0};
  }
}

inline dtype npy_dtype(char kind, int size, const std::string& ctx) {
  for (int i = 1; i <= 22; ++i) {
    if (!is_known_dtype(i)) continue;
    auto k = npy_kind(static_cast<dtype>(i));
    if (k.first == kind && k.second == size) return static_cast<dtype>(i);
  }
  throw_error(errc::unsupported_dtype, ctx,
              std::string("NumPy dtype '") + kind + std::to_string(size) + "' has no quench equivalent");
}

/// The value text after `'key':` in the header dict.
inline std::string_view npy_header_value(std::string_view header, std::string_view key, const std::string& ctx) {
  const std::string quoted = "'" + std::string(key) + "'";
  auto pos = header.find(quoted);
  if (pos == std::string_view::npos)
    throw_error(errc::parse_error, ctx, "NumPy header has no " + quoted + " entry");
  pos = header.find(':', pos + quoted.size());
  if (pos == std::string_view::npos) throw_error(errc::parse_error, ctx, "NumPy header entry " + quoted + " has no value");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  return header.substr(pos);
}

inline void byteswap_elements(std::byte* data, std::size_t count, std::size_t width) noexcept {
  for (std::size_t i = 0; i < count; ++i) std::reverse(data + i * width, data + (i + 1) * width);
}

}  // namespace detail

/// What the header of a .npy file says: element type, shape, where the elements start, byte order.
struct npy_header {
  dtype type = dtype::undefined;
  std::vector<std::int64_t> dims;
  std::size_t data_offset = 0;  ///< bytes from the start of the file to the first element
  int width = 0;                ///< bytes per element
  bool big_endian = false;
};

/// Parses the header of .npy bytes (the data itself is not checked); `ctx` names the source in
/// errors.
inline npy_header read_npy_header(const void* data, std::size_t size, const std::string& ctx) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (size < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0)
    throw_error(errc::parse_error, ctx, "not a NumPy .npy file (bad magic)");
  const int major = p[6];
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = p[8] | (static_cast<std::size_t>(p[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw_error(errc::parse_error, ctx, "truncated .npy header");
    header_len = p[8] | (static_cast<std::size_t>(p[9]) << 8) | (static_cast<std::size_t>(p[10]) << 16) |
                 (static_cast<std::size_t>(p[11]) << 24);
    offset = 12;
  } else {
    throw_error(errc::parse_error, ctx, "unsupported .npy format version " + std::to_string(major));
  }
  if (size < offset + header_len) throw_error(errc::parse_error, ctx, "truncated .npy header");
  const std::string_view header(reinterpret_cast<const char*>(p + offset), header_len);

  auto descr = detail::npy_header_value(header, "descr", ctx);
  if (descr.size() < 4 || descr[0] != '\'')
    throw_error(errc::parse_error, ctx, "cannot read the 'descr' entry of the .npy header");
  const char order = descr[1];
  const char kind = descr[2];
  const auto close = descr.find('\'', 1);
  if (close == std::string_view::npos) throw_error(errc::parse_error, ctx, "unterminated 'descr' string");
  int width = 0;
  for (std::size_t i = 3; i < close; ++i) {
    if (descr[i] < '0' || descr[i] > '9')
      throw_error(errc::unsupported_dtype, ctx, "NumPy dtype '" + std::string(descr.substr(1, close - 1)) + "' is not supported");
    width = width * 10 + (descr[i] - '0');
  }
  npy_header h;
  h.type = detail::npy_dtype(kind, width, ctx);
  h.width = width;
  h.big_endian = order == '>' && width > 1;

  if (detail::npy_header_value(header, "fortran_order", ctx).substr(0, 4) == "True")
    throw_error(errc::invalid_argument, ctx,
                "Fortran-ordered arrays are not supported; save np.ascontiguousarray(a) instead");

  auto shape_text = detail::npy_header_value(header, "shape", ctx);
  if (shape_text.empty() || shape_text[0] != '(') throw_error(errc::parse_error, ctx, "cannot read the 'shape' entry");
  std::size_t i = 1;
  for (;;) {
    while (i < shape_text.size() && (shape_text[i] == ' ' || shape_text[i] == ',')) ++i;
    if (i >= shape_text.size()) throw_error(errc::parse_error, ctx, "unterminated 'shape' tuple");
    if (shape_text[i] == ')') break;
    if (shape_text[i] < '0' || shape_text[i] > '9') throw_error(errc::parse_error, ctx, "bad character in 'shape'");
    std::int64_t d = 0;
    while (i < shape_text.size() && shape_text[i] >= '0' && shape_text[i] <= '9') {
      if (d > (std::int64_t{1} << 48)) throw_error(errc::parse_error, ctx, "dimension too large in 'shape'");
      d = d * 10 + (shape_text[i++] - '0');
    }
    h.dims.push_back(d);
  }
  h.data_offset = offset + header_len;
  return h;
}

/// Parses complete .npy bytes into a tensor (copied; byte-swapped if stored big-endian).
inline tensor read_npy_buffer(const void* data, std::size_t size, const std::string& name = {}) {
  const std::string ctx = name.empty() ? std::string("npy data") : "'" + name + "'";
  const npy_header h = read_npy_header(data, size, ctx);
  tensor t(h.type, shape(h.dims), name);
  if (size - h.data_offset < t.nbytes())
    throw_error(errc::parse_error, ctx,
                "expected " + std::to_string(t.nbytes()) + " bytes of array data, found " + std::to_string(size - h.data_offset));
  if (t.nbytes()) std::memcpy(t.bytes(), static_cast<const unsigned char*>(data) + h.data_offset, t.nbytes());
  if (h.big_endian) detail::byteswap_elements(t.bytes(), t.size(), static_cast<std::size_t>(h.width));
  return t;
}

/// Reads a .npy file; the tensor is named after the file's stem.
inline tensor read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(errc::io_error, {}, "cannot open '" + path.string() + "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string bytes = buf.str();
  tensor t = read_npy_buffer(bytes.data(), bytes.size(), path.string());
  t.set_name(path.stem().string());
  return t;
}

/// The complete .npy encoding (format 1.0, or 2.0 when the header needs it) of `t`.
inline std::string npy_bytes(const tensor& t) {
  const auto kind = detail::npy_kind(t.dtype());
  if (!kind.first)
    throw_error(errc::unsupported_dtype, tensor_context(t.name()),
                "NumPy has no dtype for " + to_string(t.dtype()) + "; convert it before writing .npy");
  std::string header = "{'descr': '";
  header += (kind.second == 1 ? '|' : '<');
  header += kind.first;
  header += std::to_string(kind.second) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < t.rank(); ++i) {
    header += std::to_string(t.shape()[i]);
    if (t.rank() == 1) header += ',';  // Python's one-element tuple "(4,)"
    else if (i + 1 < t.rank()) header += ", ";
  }
  header += ')';
  header += ", }";
  // Pad with spaces so the data starts 64-byte aligned; the header ends with '\n'.
  const bool v2 = header.size() + 11 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  const std::size_t len = header.size();
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (v2) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  out += header;
  out.append(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
  return out;
}

/// Writes `t` as a .npy file, atomically (see write_file_atomically).
inline void write_npy(const std::filesystem::path& path, const tensor& t) {
  const std::string bytes = npy_bytes(t);
  write_file_atomically(path, [&](std::ofstream& f) { f.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace quench
