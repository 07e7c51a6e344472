#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "quench/data/npz_source.hpp"

// tests/data/npz/*.npz were written by np.savez / np.savez_compressed (tests/data/make_npz.py):
// x[i, j, k] = 6 i + 3 j + k (float32 [5, 2, 3]), ids[i, j] = 10 (4 i + j) (int64 [5, 4]).
namespace fs = std::filesystem;
static const fs::path npz_dir = fs::path(QUENCH_TEST_DATA_DIR) / "npz";

TEST_CASE("npz_source reads every array of an np.savez archive by name, one batch at a time") {
  quench::data::npz_source src(npz_dir / "two_inputs.npz");
  CHECK(src.size() == 5);
  const auto b = src.read(1, 3);
  REQUIRE(b.size() == 2);
  CHECK(b[0].first == "x");
  CHECK(b[0].second.shape() == quench::shape{3, 2, 3});
  CHECK(b[0].second.view<float>()[0] == 6.f);
  CHECK(b[0].second.view<float>()[17] == 23.f);
  CHECK(b[1].first == "ids");
  CHECK(b[1].second.dtype() == quench::dtype::int64);
  CHECK(b[1].second.view<std::int64_t>()[11] == 150);
  CHECK(src.sample_name(2).find("two_inputs.npz' sample 2") != std::string::npos);
}

TEST_CASE("npz_source maps chosen arrays to graph inputs and names what is missing") {
  quench::data::npz_source src(npz_dir / "two_inputs.npz", {{"input", "x"}});
  const auto b = src.read(4, 1);
  REQUIRE(b.size() == 1);
  CHECK(b[0].first == "input");
  CHECK(b[0].second.view<float>()[5] == 29.f);
  CHECK_THROWS_WITH(quench::data::npz_source(npz_dir / "two_inputs.npz", {{"input", "images"}}),
                    doctest::Contains("expected an array 'images', found 'x', 'ids'"));
}

TEST_CASE("npz_source refuses compressed, truncated and non-zip files with the file's name") {
  CHECK_THROWS_WITH(quench::data::npz_source(npz_dir / "compressed.npz"),
                    doctest::Contains("compressed.npz' array 'x': is compressed (deflate, np.savez_compressed)"));
  CHECK_THROWS_WITH(quench::data::npz_source(npz_dir / "compressed.npz"), doctest::Contains("save with np.savez"));
  const fs::path dir = fs::temp_directory_path() / ("quench_npz_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ifstream in(npz_dir / "two_inputs.npz", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Cut at the end: the directory is gone. Cut inside the data: the directory says more than is there.
  std::ofstream(dir / "cut.npz", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 30));
  CHECK_THROWS_WITH(quench::data::npz_source(dir / "cut.npz"), doctest::Contains("cut.npz"));
  CHECK_THROWS_WITH(quench::data::npz_source(dir / "cut.npz"), doctest::Contains("truncated"));
  std::string holed = bytes;
  holed.erase(200, 100);  // the central directory now points past members' data
  std::ofstream(dir / "holed.npz", std::ios::binary).write(holed.data(), static_cast<std::streamsize>(holed.size()));
  CHECK_THROWS_AS(quench::data::npz_source(dir / "holed.npz"), quench::error);
  std::ofstream(dir / "text.npz") << "this is not a zip archive at all";
  CHECK_THROWS_WITH(quench::data::npz_source(dir / "text.npz"), doctest::Contains("not a .npz (zip) archive"));
  CHECK_THROWS_WITH(quench::data::npz_source(dir / "missing.npz"), doctest::Contains("cannot open calibration data file"));
  fs::remove_all(dir);
}
