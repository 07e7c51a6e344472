#pragma once
// Reading the raw files that make_float_reference.py writes (ctest fixture
// `numeric_reference_data`), and hex formatting for failure messages.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace quench_test {

inline std::string reference_dir() { return QUENCH_TEST_BINARY_DIR "/data/numeric"; }

/// The whole file `name` as an array of T (little-endian, which is what x86 reads natively).
/// Fails the test with instructions when the file is missing rather than skipping silently.
template <class T>
std::vector<T> read_reference(const std::string& name) {
  const std::string path = reference_dir() + "/" + name;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    FAIL_CHECK("missing reference file " << path
                                         << "; it is written by the ctest fixture numeric_reference_data, or "
                                            "run: /usr/bin/python3 tests/numeric/make_float_reference.py "
                                         << reference_dir());
    return {};
  }
  const auto bytes = static_cast<std::size_t>(in.tellg());
  std::vector<T> v(bytes / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  return v;
}

/// "0x7e00" etc., with as many digits as T has nibbles.
template <class T>
std::string hex(T v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%0*llx", static_cast<int>(sizeof(T) * 2),
                static_cast<unsigned long long>(v));
  return buf;
}

/// Collects mismatches of a long comparison: counts them all, keeps the first few for the message.
struct mismatch_log {
  std::size_t count = 0;
  std::string first;
  void add(const std::string& what) {
    if (count++ < 8) first += "  " + what + "\n";
  }
};

}  // namespace quench_test
