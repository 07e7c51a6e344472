#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quench/data/raw_source.hpp"

namespace fs = std::filesystem;

namespace {
/// Writes floats base, base + 1, ... like numpy's a.astype(np.float32).tofile(path).
void write_floats(const fs::path& p, std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
}
}  // namespace

TEST_CASE("raw_source reads TensorRT-style batch files: N samples in one file, or one per file") {
  const fs::path d = fs::temp_directory_path() / ("quench_raw_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  write_floats(d / "batch0.bin", 3 * 6, 0);    // samples 0..2
  write_floats(d / "one.bin", 6, 1000);        // sample 3
  write_floats(d / "batch1.bin", 2 * 6, 2000); // samples 4..5
  quench::data::raw_source src("x", {d / "batch0.bin", d / "one.bin", d / "batch1.bin"}, {2, 3}, quench::dtype::float32);
  CHECK(src.size() == 6);
  const auto b = src.read(2, 3);  // spans all three files
  REQUIRE(b.size() == 1);
  CHECK(b[0].first == "x");
  CHECK(b[0].second.shape() == quench::shape{3, 2, 3});
  const auto v = b[0].second.view<float>();
  CHECK(v[0] == 12.f);
  CHECK(v[6] == 1000.f);
  CHECK(v[17] == 2005.f);
  CHECK(src.sample_name(1).find("batch0.bin' sample 1") != std::string::npos);
  CHECK(src.sample_name(3).find("one.bin'") != std::string::npos);

  write_floats(d / "odd.bin", 7, 0);
  CHECK_THROWS_WITH(quench::data::raw_source("x", {d / "odd.bin"}, {2, 3}, quench::dtype::float32),
                    doctest::Contains("odd.bin': expected a whole number of samples of 24 bytes ([2, 3] float), found 28 bytes"));
  CHECK_THROWS_WITH(quench::data::raw_source("x", {d / "none.bin"}, {2, 3}, quench::dtype::float32), doctest::Contains("none.bin"));
  CHECK_THROWS_WITH(quench::data::raw_source("x", {d / "one.bin"}, {0, 3}, quench::dtype::float32), doctest::Contains("positive sample dimensions"));
  fs::remove_all(d);
}
