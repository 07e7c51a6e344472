#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "quench/adapt/npy.hpp"
#include "quench/data/checked_source.hpp"
#include "quench/data/npy_source.hpp"
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
quench::data::checked_options spec_x(std::vector<std::int64_t> dims, bool skip = false) {
  quench::data::checked_options o;
  o.inputs.push_back({"x", dtype::float32, std::move(dims), false});
  o.skip_bad = skip;
  return o;
}
struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("quench_checked_test_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};
}  // namespace

TEST_CASE("checked_source: NaN/Inf, shape and dtype against the model input, naming the file") {
  temp_dir d;
  tensor x = filled({4, 2, 3}, 0);
  x.view<float>()[2 * 6 + 4] = NAN;  // sample 2, element 4
  quench::write_npy(d.path / "x.npy", x);
  quench::data::checked_source src(std::make_unique<quench::data::npy_source>(std::vector<std::pair<std::string, fs::path>>{{"x", d.path / "x.npy"}}),
                                   spec_x({2, 3}));
  CHECK_NOTHROW(src.read(0, 2));
  CHECK_THROWS_WITH(src.read(1, 3), doctest::Contains("x.npy' sample 2 (input 'x'): NaN at element 4 of the sample"));
  try {
    src.read(0, 4);
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::not_finite);
  }
  quench::data::checked_source shape(std::make_unique<quench::data::npy_source>(std::vector<std::pair<std::string, fs::path>>{{"x", d.path / "x.npy"}}),
                                     spec_x({3, -1}));
  CHECK_THROWS_WITH(shape.read(0, 1), doctest::Contains("expected samples of shape [3, ?] for the model input, found [2, 3]"));
  auto o = spec_x({2, 3});
  o.inputs[0].type = dtype::float16;
  quench::data::checked_source type(std::make_unique<quench::data::npy_source>(std::vector<std::pair<std::string, fs::path>>{{"x", d.path / "x.npy"}}), o);
  CHECK_THROWS_WITH(type.read(0, 1), doctest::Contains("expected float16 for the model input, found float"));
  auto other = spec_x({2, 3});
  other.inputs[0].name = "images";
  quench::data::checked_source names(std::make_unique<quench::data::npy_source>(std::vector<std::pair<std::string, fs::path>>{{"x", d.path / "x.npy"}}),
                                     other);
  CHECK_THROWS_WITH(names.read(0, 1), doctest::Contains("feeds 'x', which is not a graph input; the model takes 'images'"));
  // Inf in float16 data, by its bits.
  tensor h(dtype::float16, {2, 2, 3});
  reinterpret_cast<std::uint16_t*>(h.bytes())[7] = 0xfc00;  // -Inf, sample 1 element 1
  quench::write_npy(d.path / "h.npy", h);
  auto oh = spec_x({2, 3});
  oh.inputs[0].type = dtype::float16;
  quench::data::checked_source half(std::make_unique<quench::data::npy_source>(std::vector<std::pair<std::string, fs::path>>{{"x", d.path / "h.npy"}}), oh);
  CHECK_THROWS_WITH(half.read(0, 2), doctest::Contains("h.npy' sample 1 (input 'x'): Inf at element 1"));
}

TEST_CASE("checked_source with skip_bad skips, counts and names every bad file, and reads the rest in order") {
  temp_dir d;
  for (int i = 0; i < 8; ++i) quench::write_npy(d.path / ("s" + std::to_string(i) + ".npy"), filled({2, 3}, static_cast<float>(100 * i)));
  tensor nan = filled({2, 3}, 0);
  nan.view<float>()[1] = INFINITY;
  quench::write_npy(d.path / "s2.npy", nan);
  quench::write_npy(d.path / "s5.npy", filled({3, 3}, 0));
  std::ofstream(d.path / "s6.npy") << "garbage";
  std::vector<fs::path> files;
  for (int i = 0; i < 8; ++i) files.push_back(d.path / ("s" + std::to_string(i) + ".npy"));

  // Without skip_bad the first bad file stops the run, naming it.
  quench::data::checked_source strict(std::make_unique<quench::data::sample_files_source>(files, "x", std::map<std::string, std::int64_t>{{"x", 2}}),
                                      spec_x({2, 3}));
  CHECK_THROWS_WITH(strict.read(0, 4), doctest::Contains("s2.npy' (input 'x'): Inf at element 1"));

  quench::data::checked_source src(std::make_unique<quench::data::sample_files_source>(files, "x", std::map<std::string, std::int64_t>{{"x", 2}}),
                                   spec_x({2, 3}, true));
  CHECK(src.size() == 5);
  REQUIRE(src.skipped().size() == 3);
  CHECK(src.skipped()[0].find("s2.npy") != std::string::npos);
  CHECK(src.skipped()[1].find("s5.npy") != std::string::npos);
  CHECK(src.skipped()[2].find("s6.npy") != std::string::npos);
  CHECK(src.skipped()[2].find("bad magic") != std::string::npos);
  const auto b = src.read(1, 4);  // good samples 1, 3, 4, 7
  const auto v = b[0].second.view<float>();
  CHECK(v[0] == 100.f);
  CHECK(v[6] == 300.f);
  CHECK(v[12] == 400.f);
  CHECK(v[18] == 700.f);
  CHECK(src.sample_name(4).find("s7.npy") != std::string::npos);
}
