// Weight-only int8 QDQ (quench/pipeline/quantize_weights.hpp) on the torch-exported networks:
// this case writes <name>_w8.onnx next to each original and pairs.txt; the ctest
// e2e_weight_int8_ort then runs every pair in ONNX Runtime (tests/ort/compare_models.js).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/quantize_weights.hpp"

namespace fs = std::filesystem;

TEST_CASE("weight-only int8 QDQ of the torch-exported networks" * doctest::skip()) {
  const fs::path models = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "torch_models";
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "weight_int8";
  fs::create_directories(out);
  std::ifstream in(models / "manifest.json");
  REQUIRE_MESSAGE(in, "missing " << models / "manifest.json" << " (made by the torch_models fixture)");
  const auto manifest = nlohmann::json::parse(in);
  std::ofstream pairs(out / "pairs.txt");
  int count = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string file = c["model"];
    CAPTURE(file);
    quench::model m = quench::onnx::load_model(models / file);
    if (m.opset() < 10) {  // no DequantizeLinear before opset 10: a clear error (upgrading is another step)
      CHECK_THROWS_WITH(quench::pipeline::quantize_weights(m), doctest::Contains("needs opset 10"));
      continue;
    }
    const auto report = quench::pipeline::quantize_weights(m);
    CHECK(!report.quantized.empty());
    CHECK(report.bytes_after * 3 < report.bytes_before);
    const std::string name = fs::path(file).stem().string();
    quench::onnx::save_model(m, out / (name + "_w8.onnx"));
    pairs << fs::absolute(models / file).string() << " " << (name + "_w8.onnx") << "\n";
    MESSAGE(name << ": " << report.quantized.size() << " weights, " << report.bytes_before << " -> " << report.bytes_after << " bytes");
    ++count;
  }
  CHECK(count == 12);  // opsets 11, 13 and 17 of the four networks
}
