#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "quench/core/atomic_file.hpp"

namespace fs = std::filesystem;

static std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_CASE("write_file_atomically replaces the target only on success") {
  const fs::path dir = fs::path(QUENCH_TEST_BINARY_DIR) / "atomic_file_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path target = dir / "model.onnx";
  quench::write_file_atomically(target, [](std::ofstream& f) { f << "first"; });
  CHECK(slurp(target) == "first");

  CHECK_THROWS_AS(quench::write_file_atomically(target,
                                                [](std::ofstream& f) {
                                                  f << "half";
                                                  throw std::runtime_error("disk full");
                                                }),
                  std::runtime_error);
  CHECK(slurp(target) == "first");
  std::size_t files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary left behind

  CHECK_THROWS_AS(quench::write_file_atomically(dir / "no" / "such" / "dir.bin", [](std::ofstream&) {}),
                  quench::error);
}
