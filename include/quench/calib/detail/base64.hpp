#pragma once
// Base64 (RFC 4648, standard alphabet, '=' padding) for the histogram counts in serialised
// calibration state, and little-endian packing of int64 counts and float32 edges.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "quench/core/error.hpp"

namespace quench::detail {

inline std::string base64_encode(const unsigned char* data, std::size_t n) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < n) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < n) v |= std::uint32_t{data[i + 1]} << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

/// Decodes `s`; throws errc::parse_error (naming `ctx`) on a bad character or length.
inline std::vector<unsigned char> base64_decode(std::string_view s, const std::string& ctx) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) throw_error(errc::parse_error, ctx, "base64 length is not a multiple of 4");
  std::vector<unsigned char> out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    const int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
    if (pad == 1 && s[i + 2] == '=') throw_error(errc::parse_error, ctx, "bad base64 padding");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int d = k >= 4 - pad ? 0 : val(s[i + static_cast<std::size_t>(k)]);
      if (d < 0) throw_error(errc::parse_error, ctx, "bad base64 character");
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<unsigned char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<unsigned char>((v >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<unsigned char>(v & 0xff));
  }
  return out;
}

/// int64 values as base64 of their little-endian bytes.
inline std::string pack_int64(const std::vector<std::int64_t>& v) {
  std::vector<unsigned char> b(v.size() * 8);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto u = static_cast<std::uint64_t>(v[i]);
    for (int k = 0; k < 8; ++k) b[i * 8 + static_cast<std::size_t>(k)] = static_cast<unsigned char>(u >> (8 * k));
  }
  return base64_encode(b.data(), b.size());
}

inline std::vector<std::int64_t> unpack_int64(std::string_view s, const std::string& ctx) {
  const auto b = base64_decode(s, ctx);
  if (b.size() % 8) throw_error(errc::parse_error, ctx, "expected 8 bytes per int64 count");
  std::vector<std::int64_t> v(b.size() / 8);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint64_t u = 0;
    for (int k = 7; k >= 0; --k) u = (u << 8) | b[i * 8 + static_cast<std::size_t>(k)];
    v[i] = static_cast<std::int64_t>(u);
  }
  return v;
}

/// float32 values as base64 of their little-endian IEEE bits.
inline std::string pack_float32(const std::vector<float>& v) {
  std::vector<unsigned char> b(v.size() * 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; ++k) b[i * 4 + static_cast<std::size_t>(k)] = static_cast<unsigned char>(u >> (8 * k));
  }
  return base64_encode(b.data(), b.size());
}

inline std::vector<float> unpack_float32(std::string_view s, const std::string& ctx) {
  const auto b = base64_decode(s, ctx);
  if (b.size() % 4) throw_error(errc::parse_error, ctx, "expected 4 bytes per float32 value");
  std::vector<float> v(b.size() / 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u = 0;
    for (int k = 3; k >= 0; --k) u = (u << 8) | b[i * 4 + static_cast<std::size_t>(k)];
    std::memcpy(&v[i], &u, 4);
  }
  return v;
}

}  // namespace quench::detail
