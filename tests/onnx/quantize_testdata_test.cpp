// The ONNX backend node tests of QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear
// (libonnx-testdata, onnx 1.12: test_quantizelinear*, test_dequantizelinear*,
// test_dynamicquantizelinear*, the _expanded function bodies included), run through quench on
// every SIMD target and compared bit for bit. Attributes (axis, saturate, block_size) come from
// the model's node, read with the ONNX protobuf classes; an _expanded model holds
// DynamicQuantizeLinear's function body and runs as DynamicQuantizeLinear.
// onnx 1.12's data stops at opset 13 (uint8/int8, per tensor and per axis); everything newer is
// compared with ONNX Runtime in quantize_ort_test.cpp.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quench/numeric/cpu.hpp"
#include "quench/onnx/tensor_proto.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/dynamic_quantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"

namespace fs = std::filesystem;
using quench::dtype;

namespace {

struct node_attrs {
  std::string op;  ///< QuantizeLinear, DequantizeLinear or DynamicQuantizeLinear
  std::int64_t axis = 1;
  std::int64_t block_size = 0;
  bool saturate = true;
};

node_attrs read_node(const fs::path& model_path, const std::string& dir_name) {
  std::ifstream f(model_path, std::ios::binary);
  REQUIRE(f.good());
  ONNX_NAMESPACE::ModelProto model;
  REQUIRE(model.ParseFromIstream(&f));
  node_attrs a;
  if (dir_name.find("_expanded") != std::string::npos) {
    // DynamicQuantizeLinear's function body (ReduceMin, ReduceMax, Div, ..., QuantizeLinear):
    // its graph input and outputs are the operator's.
    REQUIRE(dir_name.find("test_dynamicquantizelinear") == 0);
    a.op = "DynamicQuantizeLinear";
    return a;
  }
  for (const auto& node : model.graph().node()) {
    const std::string& op = node.op_type();
    if (op != "QuantizeLinear" && op != "DequantizeLinear" && op != "DynamicQuantizeLinear") continue;
    a.op = op;
    for (const auto& attr : node.attribute()) {
      if (attr.name() == "axis") a.axis = attr.i();
      if (attr.name() == "block_size") a.block_size = attr.i();
      if (attr.name() == "saturate") a.saturate = attr.i() != 0;
    }
    return a;
  }
  FAIL(dir_name << " has no quantization node");
  return a;
}

std::vector<quench::tensor> read_all(const fs::path& set, const std::string& prefix) {
  std::vector<quench::tensor> out;
  for (int i = 0;; ++i) {
    const fs::path p = set / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    out.push_back(quench::onnx::read_tensor_file(p.string()));
  }
  return out;
}

bool same_bytes(const quench::tensor& a, const quench::tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("onnx node tests: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear bit for bit") {
  const fs::path root = fs::path(QUENCH_ONNX_TESTDATA_DIR) / "node";
  REQUIRE(fs::is_directory(root));
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("test_quantizelinear", 0) == 0 || name.rfind("test_dequantizelinear", 0) == 0 ||
        name.rfind("test_dynamicquantizelinear", 0) == 0)
      dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  std::size_t models = 0, sets = 0, runs = 0;
  for (const auto& dir : dirs) {
    const std::string name = dir.filename().string();
    CAPTURE(name);
    const node_attrs a = read_node(dir / "model.onnx", name);
    ++models;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_directory() || e.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
      const auto inputs = read_all(e.path(), "input_");
      const auto outputs = read_all(e.path(), "output_");
      ++sets;
      if (a.op == "DynamicQuantizeLinear") {
        REQUIRE(inputs.size() == 1);
        REQUIRE(outputs.size() == 3);
        const auto r = quench::dynamic_quantize_linear(inputs[0]);
        CHECK(same_bytes(r.y, outputs[0]));
        REQUIRE(outputs[1].dtype() == dtype::float32);
        REQUIRE(outputs[2].dtype() == dtype::uint8);
        std::uint32_t got_scale, want_scale;
        std::memcpy(&got_scale, &r.scale, 4);
        std::memcpy(&want_scale, outputs[1].bytes(), 4);
        CHECK(got_scale == want_scale);
        CHECK(r.zero_point == outputs[2].view<std::uint8_t>()[0]);
        ++runs;
        continue;
      }
      REQUIRE(inputs.size() >= 2);
      REQUIRE(outputs.size() == 1);
      const quench::tensor* zp = inputs.size() > 2 ? &inputs[2] : nullptr;
      const quench::tensor& x = inputs[0];
      // ONNX: the zero point's type is the quantized type; without one, QuantizeLinear gives uint8.
      const dtype qtype = zp ? zp->dtype() : (a.op == "QuantizeLinear" ? dtype::uint8 : x.dtype());
      const auto p = quench::qparams_from_tensors(inputs[1], zp, qtype, a.axis, a.block_size, a.saturate);
      for (auto target : quench::supported_simd_targets()) {
        CAPTURE(quench::simd_target_name(target));
        quench::tensor y(outputs[0].dtype(), outputs[0].shape());
        if (a.op == "QuantizeLinear") {
          REQUIRE(x.dtype() == dtype::float32);
          quench::quantize(x.view<float>(), p, y.bytes(), y.nbytes(), target);
        } else {
          REQUIRE(y.dtype() == dtype::float32);
          quench::dequantize(x.bytes(), x.nbytes(), p, y.view<float>(), target);
        }
        CHECK(same_bytes(y, outputs[0]));
        ++runs;
      }
    }
  }
  // onnx 1.12 ships 10 such node tests with one data set each.
  CHECK(models == 10);
  CHECK(sets == 10);
  MESSAGE(models, " node-test models, ", sets, " data sets, ", runs, " runs (all SIMD targets) bit-identical");
}
