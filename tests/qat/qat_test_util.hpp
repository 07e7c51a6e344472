#pragma once
// Reading what make_qat_reference.py writes (ctest fixture qat_reference_data) and helpers shared by
// the QAT tests. JSON is read with the calib layer's small parser, in the tests only: the qat headers
// themselves do not depend on calib.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/core/shape.hpp"
#include "quench/quant/qparams.hpp"

namespace qat_test {

using json = quench::detail::json_value;

inline std::string reference_dir() {
  if (const char* d = std::getenv("QUENCH_QAT_REFERENCE_DIR")) return d;
  return QUENCH_TEST_BINARY_DIR "/data/qat";
}

inline std::string missing_hint() {
  return "; it is written by the ctest fixture qat_reference_data, or run: /usr/bin/python3 "
         "tests/qat/make_qat_reference.py " +
         reference_dir();
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// reference.json, parsed once; a null value (and a failed check) when it is missing.
inline const json& reference() {
  static const json ref = [] {
    const std::string text = read_text(reference_dir() + "/reference.json");
    if (text.empty()) return json{};
    return quench::detail::parse_json(text, "reference.json");
  }();
  if (ref.is_null()) FAIL_CHECK("missing " << reference_dir() << "/reference.json" << missing_hint());
  return ref;
}

/// The entries of one section of reference.json ("fake_quant", "learnable", ...).
inline std::vector<json> cases(const char* section) {
  const auto& ref = reference();
  if (ref.is_null()) return {};
  return ref.at(section, "reference").as_array("reference");
}

/// A raw array file of the reference, as T.
template <class T>
std::vector<T> read_array(const std::string& file) {
  const std::string bytes = read_text(reference_dir() + "/" + file);
  std::vector<T> v(bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  if (bytes.empty()) FAIL_CHECK("missing " << file << missing_hint());
  return v;
}

inline float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline std::uint32_t to_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

inline std::uint64_t to_bits(double f) {
  std::uint64_t b;
  std::memcpy(&b, &f, 8);
  return b;
}

inline std::string hex(float v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", static_cast<double>(v), static_cast<unsigned>(to_bits(v)));
  return buf;
}

/// A float32 stored as its bit pattern.
inline float ref_float(const json& v) { return from_bits(static_cast<std::uint32_t>(v.as_uint64("reference"))); }

inline std::vector<float> ref_floats(const json& v) {
  std::vector<float> out;
  for (const auto& e : v.as_array("reference")) out.push_back(ref_float(e));
  return out;
}

inline std::vector<std::int64_t> ref_ints(const json& v) {
  std::vector<std::int64_t> out;
  for (const auto& e : v.as_array("reference")) out.push_back(e.as_int64("reference"));
  return out;
}

inline std::vector<double> ref_doubles(const json& v) {
  std::vector<double> out;
  for (const auto& e : v.as_array("reference")) out.push_back(e.as_double("reference"));
  return out;
}

inline quench::shape ref_shape(const json& v) { return quench::shape(ref_ints(v)); }

inline std::string str(const json& c, const char* key) { return c.at(key, "reference").as_string("reference"); }
inline std::int64_t num(const json& c, const char* key) { return c.at(key, "reference").as_int64("reference"); }

/// Counts mismatches of a long comparison and keeps the first few for the message.
struct mismatch_log {
  std::size_t count = 0;
  std::string first;
  void add(const std::string& what) {
    if (count++ < 6) first += "  " + what + "\n";
  }
};

/// Bitwise equality of floats (NaN patterns included, +0 != -0).
inline bool same_bits(float a, float b) { return to_bits(a) == to_bits(b); }
inline bool same_bits(double a, double b) { return to_bits(a) == to_bits(b); }

}  // namespace qat_test
