#include <doctest/doctest.h>

#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<fs::path> testdata_models() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(QUENCH_ONNX_TESTDATA_DIR))
    if (e.is_regular_file() && e.path().extension() == ".onnx") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("every libonnx-testdata model round-trips losslessly") {
  const auto models = testdata_models();
  REQUIRE(models.size() > 1000);
  // The round-tripped models land here; tests/onnx/check_roundtrip.py runs onnx.checker on them.
  const fs::path out_dir = fs::path(QUENCH_TEST_BINARY_DIR) / "roundtrip";
  fs::remove_all(out_dir);
  std::size_t identical = 0, equivalent = 0;
  for (const auto& path : models) {
    CAPTURE(path.string());
    const std::string original = slurp(path);
    quench::model m = quench::onnx::load_model(path);
    m.main_graph().check_invariants();
    const std::string saved = quench::onnx::save_model_buffer(m);
    if (saved == original) {
      ++identical;
    } else {
      // Protobuf may legitimately order or encode fields differently (e.g. a writer that put
      // fields out of number order): then the messages must still be equal field by field.
      ::ONNX_NAMESPACE::ModelProto a, b;
      REQUIRE(a.ParseFromString(original));
      REQUIRE(b.ParseFromString(saved));
      google::protobuf::util::MessageDifferencer diff;
      std::string report;
      diff.ReportDifferencesToString(&report);
      CHECK_MESSAGE(diff.Compare(a, b), report);
      ++equivalent;
    }
    const fs::path rel = fs::relative(path, QUENCH_ONNX_TESTDATA_DIR);
    const fs::path dst = out_dir / rel;
    fs::create_directories(dst.parent_path());
    std::ofstream(dst, std::ios::binary) << saved;
  }
  MESSAGE(identical << " byte-identical, " << equivalent << " field-by-field equal, of " << models.size());
  CHECK(identical + equivalent == models.size());
}
