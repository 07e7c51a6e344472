#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "quench/adapt/npy.hpp"
#include "quench/data/file_list.hpp"
#include "quench/data/sample_files_source.hpp"

namespace fs = std::filesystem;
using quench::dtype;
using quench::tensor;

namespace {
tensor filled(quench::shape s, float base) {
  tensor t(dtype::float32, std::move(s));
  auto v = t.view<float>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = base + static_cast<float>(i);
  return t;
}
struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("quench_files_test_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};
}  // namespace

TEST_CASE("list_files: a directory sorted by name, filtered by extension; a list file in its order") {
  temp_dir d;
  for (const char* n : {"b.npy", "a.NPY", "c.txt", "a10.npz"}) std::ofstream(d.path / n) << "x";
  fs::create_directories(d.path / "sub.npy");
  const auto files = quench::data::list_files(d.path, {".npy", ".npz"});
  REQUIRE(files.size() == 3);
  CHECK(files[0].filename() == "a.NPY");
  CHECK(files[1].filename() == "a10.npz");
  CHECK(files[2].filename() == "b.npy");
  std::ofstream(d.path / "list.txt") << "# calibration set\nb.npy\n\n  " << (d.path / "a.NPY").string() << "\r\n";
  const auto listed = quench::data::list_files(d.path / "list.txt", {});
  REQUIRE(listed.size() == 2);
  CHECK(listed[0] == d.path / "b.npy");
  CHECK(listed[1] == d.path / "a.NPY");
  CHECK_THROWS_WITH(quench::data::list_files(d.path, {".png"}), doctest::Contains("found none"));
  CHECK_THROWS_WITH(quench::data::list_files(d.path / "nothing", {}), doctest::Contains("cannot open the directory or list file"));
}

TEST_CASE("sample_files_source: one sample per .npy, with or without a leading axis of 1") {
  temp_dir d;
  quench::write_npy(d.path / "s0.npy", filled({1, 2, 3}, 0));   // a batch of one
  quench::write_npy(d.path / "s1.npy", filled({2, 3}, 100));    // one sample
  quench::write_npy(d.path / "s2.npy", filled({1, 2, 3}, 200));
  quench::data::sample_files_source src(quench::data::list_files(d.path, {".npy"}), "x", {{"x", 2}});
  CHECK(src.size() == 3);
  const auto b = src.read(0, 3);
  REQUIRE(b.size() == 1);
  CHECK(b[0].first == "x");
  CHECK(b[0].second.shape() == quench::shape{3, 2, 3});
  CHECK(b[0].second.view<float>()[5] == 5.f);
  CHECK(b[0].second.view<float>()[6] == 100.f);
  CHECK(b[0].second.view<float>()[17] == 205.f);
  CHECK(src.sample_name(1).find("s1.npy") != std::string::npos);

  // A file of another shape or dtype is an error naming it, found when its batch is read.
  quench::write_npy(d.path / "s3.npy", filled({3, 3}, 0));
  tensor ints(dtype::int32, {2, 3});
  quench::write_npy(d.path / "s4.npy", ints);
  quench::data::sample_files_source bad(quench::data::list_files(d.path, {".npy"}), "x", {{"x", 2}});
  CHECK_NOTHROW(bad.read(0, 3));
  CHECK_THROWS_WITH(bad.read(2, 2), doctest::Contains("s3.npy': expected one sample of shape [2, 3] like the first file, found [3, 3]"));
  CHECK_THROWS_WITH(bad.read(4, 1), doctest::Contains("s4.npy': expected float like the first file, found int32"));
  // A leading axis that is not 1 is more than one sample.
  quench::write_npy(d.path / "two.npy", filled({2, 2, 3}, 0));
  CHECK_THROWS_WITH(quench::data::sample_files_source({d.path / "two.npy"}, "x", {{"x", 2}}),
                    doctest::Contains("expected one sample (rank 2, or a leading axis of 1), found [2, 2, 3]"));
  // A truncated file names the file.
  const std::string bytes = quench::npy_bytes(filled({2, 3}, 0));
  std::ofstream(d.path / "cut.npy", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 4));
  quench::data::sample_files_source cut({d.path / "s1.npy", d.path / "cut.npy"}, "x", {{"x", 2}});
  CHECK_THROWS_WITH(cut.read(0, 2), doctest::Contains("cut.npy': expected 24 bytes of array data, found 20"));
}

TEST_CASE("sample_files_source: one sample per .npz feeds every array by name") {
  // tests/data/npz/sample_{0,1}.npz hold x[i] (float32 [2, 3], sample 0 with a leading 1) and ids[i].
  const fs::path dir = fs::path(QUENCH_TEST_DATA_DIR) / "npz";
  quench::data::sample_files_source src({dir / "sample_0.npz", dir / "sample_1.npz"}, "", {{"x", 2}, {"ids", 1}});
  const auto b = src.read(0, 2);
  REQUIRE(b.size() == 2);
  CHECK(b[0].first == "x");
  CHECK(b[0].second.shape() == quench::shape{2, 2, 3});
  CHECK(b[0].second.view<float>()[7] == 7.f);
  CHECK(b[1].first == "ids");
  CHECK(b[1].second.shape() == quench::shape{2, 4});
  CHECK(b[1].second.view<std::int64_t>()[5] == 50);
  // With an input name, the array of that name.
  quench::data::sample_files_source one({dir / "sample_1.npz"}, "ids", {{"ids", 1}});
  CHECK(one.read(0, 1)[0].second.view<std::int64_t>()[0] == 40);
  CHECK_THROWS_WITH(quench::data::sample_files_source({dir / "sample_1.npz"}, "mask"), doctest::Contains("expected an array 'mask' or a single array"));
}
