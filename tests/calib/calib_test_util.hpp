#pragma once
// Reading what make_calib_reference.py writes (ctest fixture calib_reference_data) and small
// helpers shared by the calib tests. (The tests loop over maps with .first/.second, not
// structured bindings: INFO captures its arguments in a lambda, and clang before 16 cannot
// capture a structured binding.)

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/calib/histogram.hpp"

namespace calib_test {

inline std::string reference_dir() { return QUENCH_TEST_BINARY_DIR "/data/calib"; }

inline std::string missing_hint() {
  return "; it is written by the ctest fixture calib_reference_data, or run: /usr/bin/python3 "
         "tests/calib/make_calib_reference.py " +
         reference_dir();
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// reference.json, parsed once; a null value (and a failed check) when it is missing.
inline const quench::detail::json_value& reference() {
  static const quench::detail::json_value ref = [] {
    const std::string text = read_text(reference_dir() + "/reference.json");
    if (text.empty()) return quench::detail::json_value{};
    return quench::detail::parse_json(text, "reference.json");
  }();
  if (ref.is_null()) FAIL_CHECK("missing " << reference_dir() << "/reference.json" << missing_hint());
  return ref;
}

/// Calls f(name, entry) for every reference data set of reference.json ("cases"); nothing (and a
/// failed check) when the reference is missing.
template <class F>
void for_each_case(F&& f) {
  const auto& ref = reference();
  if (ref.is_null()) return;
  for (const auto& kv : ref.at("cases", "ref").as_object("ref")) f(kv.first, kv.second);
}

inline std::vector<float> read_f32(const std::string& file) {
  const std::string bytes = read_text(reference_dir() + "/" + file);
  std::vector<float> v(bytes.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * 4);
  if (v.empty()) FAIL_CHECK("missing " << file << missing_hint());
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

/// A float32 reference value stored as its bit pattern.
inline double ref_float(const quench::detail::json_value& v) {
  return from_bits(static_cast<std::uint32_t>(v.as_uint64("reference")));
}

inline std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", v, static_cast<unsigned>(to_bits(static_cast<float>(v))));
  return buf;
}

/// The histogram a reference entry describes (counts, float32 edge bits, min/max bits).
inline quench::calib::histogram ref_histogram(const quench::detail::json_value& v) {
  quench::calib::histogram h;
  for (const auto& c : v.at("counts", "ref").as_array("ref")) h.counts.push_back(c.as_int64("ref"));
  for (const auto& e : v.at("edges", "ref").as_array("ref")) h.edges.push_back(ref_float(e));
  if (const auto* m = v.find("min")) h.min = ref_float(*m);
  if (const auto* m = v.find("max")) h.max = ref_float(*m);
  return h;
}

inline std::vector<std::size_t> batch_sizes(const quench::detail::json_value& c) {
  std::vector<std::size_t> b;
  for (const auto& x : c.at("batches", "ref").as_array("ref")) b.push_back(static_cast<std::size_t>(x.as_uint64("ref")));
  return b;
}

/// Deterministic test data: normal values times `scale`.
inline std::vector<float> normal_data(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace calib_test
