#pragma once
// Shared by the tests/image tests: where make_image_reference.py wrote its data, and comparisons.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/core/tensor.hpp"

namespace image_test {

inline std::filesystem::path ref_dir() { return std::filesystem::path(QUENCH_TEST_BINARY_DIR) / "data" / "image"; }

inline std::vector<std::string> lines(const std::string& manifest) {
  std::ifstream in(ref_dir() / manifest);
  REQUIRE_MESSAGE(in.good(), "missing ", (ref_dir() / manifest).string(), ": run the image_reference_data test first");
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

/// Elements that differ bit for bit, and the largest absolute difference.
struct diff {
  std::size_t count = 0;
  double max = 0;
};
template <class T>
diff compare(const T* a, const T* b, std::size_t n) {
  diff d;
  for (std::size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0) {
      ++d.count;
      const double e = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      d.max = std::max(d.max, e < 0 ? -e : e);
    }
  return d;
}

}  // namespace image_test
