#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "quench/adapt/npy.hpp"
#include "quench/data/npy_source.hpp"
#include "quench/data/sample_source.hpp"

namespace fs = std::filesystem;
using quench::dtype;
using quench::tensor;

namespace {
tensor counting(quench::shape s) {
  tensor t(dtype::float32, std::move(s));
  auto v = t.view<float>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return t;
}

/// Inputs for tensor_source (tensors are move-only: no initializer lists).
std::vector<std::pair<std::string, tensor>> inputs(tensor a, tensor b) {
  std::vector<std::pair<std::string, tensor>> v;
  v.emplace_back("a", std::move(a));
  v.emplace_back("b", std::move(b));
  return v;
}

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("quench_data_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST_CASE("tensor_source reads sample ranges of every input") {
  quench::data::tensor_source src(inputs(counting({5, 2}), counting({5, 3})));
  CHECK(src.size() == 5);
  const auto b = src.read(2, 2);
  REQUIRE(b.size() == 2);
  CHECK(b[0].first == "a");
  CHECK(b[0].second.shape() == quench::shape{2, 2});
  CHECK(b[0].second.view<float>()[0] == 4.f);
  CHECK(b[1].second.view<float>()[5] == 11.f);
  CHECK_THROWS_WITH(src.read(4, 2), doctest::Contains("outside [0, 5)"));
  CHECK_THROWS_WITH(quench::data::tensor_source(inputs(counting({5, 2}), counting({4, 2}))), doctest::Contains("input 'b'"));
}

TEST_CASE("npy_source maps .npy files and reads one batch at a time") {
  const fs::path dir = temp_dir();
  quench::write_npy(dir / "x.npy", counting({7, 3, 2}));
  quench::write_npy(dir / "y.npy", counting({7}));
  quench::data::npy_source src({{"x", dir / "x.npy"}, {"y", dir / "y.npy"}});
  CHECK(src.size() == 7);
  for (std::int64_t first = 0; first < 7; first += 3) {
    const std::int64_t count = std::min<std::int64_t>(3, 7 - first);
    const auto b = src.read(first, count);
    CHECK(b[0].second.shape() == quench::shape{count, 3, 2});
    CHECK(b[0].second.view<float>()[0] == static_cast<float>(first * 6));
    CHECK(b[1].second.view<float>()[count - 1] == static_cast<float>(first + count - 1));
  }
  // Mismatched sample counts, truncated data and non-.npy files are errors naming the file.
  quench::write_npy(dir / "z.npy", counting({6, 3}));
  CHECK_THROWS_WITH(quench::data::npy_source({{"x", dir / "x.npy"}, {"z", dir / "z.npy"}}), doctest::Contains("z.npy"));
  const std::string bytes = quench::npy_bytes(counting({4, 4}));
  std::ofstream(dir / "short.npy", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 8));
  CHECK_THROWS_WITH(quench::data::npy_source({{"s", dir / "short.npy"}}), doctest::Contains("bytes of array data"));
  std::ofstream(dir / "junk.npy") << "not numpy";
  CHECK_THROWS_WITH(quench::data::npy_source({{"j", dir / "junk.npy"}}), doctest::Contains("bad magic"));
  CHECK_THROWS_WITH(quench::data::npy_source({{"m", dir / "missing.npy"}}), doctest::Contains("cannot open calibration data file"));
  fs::remove_all(dir);
}

TEST_CASE("callback_source passes ranges to the function and checks them") {
  quench::data::callback_source src(10, [](std::int64_t first, std::int64_t count) {
    quench::data::batch b;
    tensor t(dtype::int64, {count});
    for (std::int64_t i = 0; i < count; ++i) t.view<std::int64_t>()[static_cast<std::size_t>(i)] = first + i;
    b.emplace_back("ids", std::move(t));
    return b;
  });
  CHECK(src.read(8, 2)[0].second.view<std::int64_t>()[1] == 9);
  CHECK_THROWS(src.read(9, 2));
}
