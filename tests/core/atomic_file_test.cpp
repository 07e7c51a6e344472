#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <vector>

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

TEST_CASE("a signal during write_file_atomically removes the temporary and leaves the target untouched") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("quench_atomic_signal_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path target = dir / "out.json";
  { std::ofstream(target) << "old"; }
  for (int sig : {SIGINT, SIGTERM}) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      quench::remove_temporaries_on_signal();
      quench::write_file_atomically(target, [&](std::ofstream& f) {
        f << "partial";
        f.flush();
        std::raise(sig);  // as if Ctrl-C arrived mid-write
        f << " never";
      });
      std::_Exit(0);  // not reached
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));  // ended by the signal, as without the handler
    CHECK(WTERMSIG(status) == sig);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    CHECK(names == std::vector<std::string>{"out.json"});
    std::ifstream in(target);
    std::string text;
    in >> text;
    CHECK(text == "old");
  }
  fs::remove_all(dir);
}
