// The executor against ONNX Runtime on real architectures exported by torch.onnx.export at
// opsets 9, 11, 13 and 17 (tests/e2e/make_torch_models.py; ORT's outputs by tests/ort/run_model.js).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "quench/onnx/model_io.hpp"
#include "quench/runtime/executor.hpp"

namespace fs = std::filesystem;

namespace {
const fs::path models_dir = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "torch_models";

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in, "missing " << p << " (made by the torch_models fixtures)");
  return nlohmann::json::parse(in);
}

quench::tensor read_raw(const fs::path& p, const std::vector<std::int64_t>& dims) {
  quench::tensor t(quench::dtype::float32, quench::shape(dims));
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.bytes()), static_cast<std::streamsize>(t.nbytes()));
  REQUIRE_MESSAGE(in.gcount() == static_cast<std::streamsize>(t.nbytes()), "short file " << p);
  return t;
}
}  // namespace

TEST_CASE("executor matches ONNX Runtime on torch-exported ResNet, MobileNetV3, U-Net and transformer models") {
  const auto manifest = read_json(models_dir / "manifest.json");
  const auto ort = read_json(models_dir / "ort_results.json");
  int compared = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string name = c["name"];
    CAPTURE(name);
    const auto& res = ort["results"][name];
    REQUIRE_MESSAGE(!res.contains("error"), "ONNX Runtime failed: " << res.dump());
    const quench::model m = quench::onnx::load_model(models_dir / c["model"].get<std::string>());
    quench::runtime::executor ex(m);
    const auto& feed = c["feeds"][0];
    const quench::tensor x = read_raw(models_dir / feed["file"].get<std::string>(), feed["dims"]);
    const auto outs = ex.run({{feed["name"].get<std::string>(), &x}});
    const auto& want_meta = res["outputs"][0];
    const quench::tensor want = read_raw(models_dir / want_meta["file"].get<std::string>(), want_meta["dims"]);
    REQUIRE(outs[0].shape() == want.shape());
    const auto a = want.view<float>();
    const auto b = outs[0].view<float>();
    double max_abs = 0, max_err = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(a[i])));
      max_err = std::max(max_err, std::fabs(static_cast<double>(a[i]) - b[i]));
    }
    const double rel = max_err / std::max(max_abs, 1e-12);
    MESSAGE(name << ": max |quench - ORT| / max |ORT| = " << rel);
    CHECK(rel <= 1e-4);
    ++compared;
  }
  CHECK(compared == 16);
}
