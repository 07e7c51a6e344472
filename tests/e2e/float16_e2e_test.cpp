// float16 / bfloat16 conversion (quench/pipeline/float16.hpp) on real files: the torch-exported
// networks, an If/Loop model, a weight-only QDQ model, a model with external data and one that
// overflows float16. The skipped case writes every converted model and pairs.txt into
// build/tests/e2e/float16; the ctest e2e_float16_ort then runs each pair in ONNX Runtime
// (tests/ort/compare_float16.js). Idempotence is checked here, byte for byte.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"
#include "quench/onnx/shape_inference.hpp"
#include "quench/pipeline/float16.hpp"
#include "quench/pipeline/quantize_weights.hpp"

namespace fs = std::filesystem;
namespace qp = quench::pipeline;
using quench::attribute;
using quench::dim;
using quench::dtype;
using quench::tensor;

namespace {

const fs::path models_dir = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "torch_models";
const fs::path out_dir = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "float16";

/// Converts `in` with `opt` (bfloat16 when `bf16`), checks the result with onnx's checker and
/// shape inference, saves it and checks that converting the saved model again changes no byte.
qp::float16_report convert_and_save(const fs::path& in, const fs::path& out, bool bf16, const qp::float16_options& opt) {
  quench::model m = quench::onnx::load_model(in);
  const auto report = bf16 ? qp::convert_bfloat16(m, opt) : qp::convert_float16(m, opt);
  m.main_graph().check_invariants();
  // onnx 1.12 knows opsets up to 17; strict inference fails on any type the schemas reject.
  if (m.opset() <= 17) {
    CHECK_NOTHROW(quench::onnx::check_model(m));
    const std::string bytes = quench::onnx::save_model_buffer(m);
    quench::model inferred = quench::onnx::load_model_buffer(bytes.data(), bytes.size());
    quench::onnx::shape_inference_options so;
    so.strict = true;
    CHECK_NOTHROW(quench::onnx::infer_shapes(inferred, so));
  }
  quench::onnx::save_model(m, out);
  quench::model again = quench::onnx::load_model(out);
  const std::string before = quench::onnx::save_model_buffer(again);
  // The same settings, without the blocks: the Casts of the first run carry them.
  qp::float16_options opt2;
  opt2.keep_io_types = opt.keep_io_types;
  opt2.compute = opt.compute;
  const auto second = bf16 ? qp::convert_bfloat16(again, opt2) : qp::convert_float16(again, opt2);
  CHECK(second.casts_inserted == 0);
  CHECK(second.initializers_converted == 0);
  CHECK_MESSAGE(quench::onnx::save_model_buffer(again) == before, "converting " << out << " again changed it");
  return report;
}

std::vector<dim> dims(std::initializer_list<std::int64_t> d) {
  std::vector<dim> out;
  for (auto x : d) out.push_back(dim{x, {}});
  return out;
}

tensor scalar(float x, const std::string& name) {
  tensor t(dtype::float32, {}, name);
  t.view<float>()[0] = x;
  return t;
}

tensor random_tensor(quench::shape s, const std::string& name, std::uint32_t seed) {
  tensor t(dtype::float32, std::move(s), name);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 0.5f);
  for (auto& v : t.view<float>()) v = n(rng);
  return t;
}

void add_graph_attribute(quench::node& n, const std::string& name, std::unique_ptr<quench::graph> g) {
  attribute a;
  a.name = name;
  a.type = quench::attribute_type::graph;
  a.g = std::move(g);
  n.attributes().push_back(std::move(a));
}

/// cond, x [4], trip -> If(cond: x @ W + 1 | x * 2) -> Loop(trip: v = v * 0.5 + Tanh(x)) -> y
quench::model control_flow_model() {
  quench::model m;
  m.ir_version = 8;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  g.add_input("cond", 9, dims({}));
  g.add_input("x", 1, dims({1, 4}));
  auto& trip = g.add_input("trip", 7, dims({}));
  auto& w = g.add_initializer(random_tensor({4, 4}, "W", 7));
  auto& iff = g.add_node("If", {g.find_value("cond")}, {"branch"}, "if");
  {
    auto then_g = std::make_unique<quench::graph>(&g, &iff);
    then_g->set_name("then");
    auto& mm = then_g->add_node("MatMul", {&then_g->outer_ref("x"), &then_g->outer_ref(w.name())}, {"t_mm"}, "then_matmul");
    auto& one = then_g->add_initializer(scalar(1.f, "one"));
    auto& add = then_g->add_node("Add", {mm.output(0), &one}, {"t_out"}, "then_add");
    add.output(0)->set_elem_type(1);
    add.output(0)->set_dims(dims({1, 4}));
    then_g->add_output(*add.output(0));
    add_graph_attribute(iff, "then_branch", std::move(then_g));
    auto else_g = std::make_unique<quench::graph>(&g, &iff);
    else_g->set_name("else");
    auto& two = else_g->add_initializer(scalar(2.f, "two"));
    auto& mul = else_g->add_node("Mul", {&else_g->outer_ref("x"), &two}, {"e_out"}, "else_mul");
    mul.output(0)->set_elem_type(1);
    mul.output(0)->set_dims(dims({1, 4}));
    else_g->add_output(*mul.output(0));
    add_graph_attribute(iff, "else_branch", std::move(else_g));
  }
  auto& tanh = g.add_node("Tanh", {g.find_value("x")}, {"tx"}, "tanh");
  auto& true_c = g.add_initializer(tensor::from<bool>({}, {true}, "true"));
  auto& loop = g.add_node("Loop", {&trip, &true_c, iff.output(0)}, {"y"}, "loop");
  {
    auto body = std::make_unique<quench::graph>(&g, &loop);
    body->set_name("body");
    body->add_input("i", 7, dims({}));
    auto& cin = body->add_input("c_in", 9, dims({}));
    auto& vin = body->add_input("v_in", 1, dims({1, 4}));
    auto& half = body->add_initializer(scalar(0.5f, "half"));
    auto& mul = body->add_node("Mul", {&vin, &half}, {"vm"}, "body_mul");
    auto& add = body->add_node("Add", {mul.output(0), &body->outer_ref(tanh.output(0)->name())}, {"v_out"}, "body_add");
    auto& cout = body->add_node("Identity", {&cin}, {"c_out"}, "body_cond");
    cout.output(0)->set_elem_type(9);
    cout.output(0)->set_dims(dims({}));
    add.output(0)->set_elem_type(1);
    add.output(0)->set_dims(dims({1, 4}));
    body->add_output(*cout.output(0));
    body->add_output(*add.output(0));
    add_graph_attribute(loop, "body", std::move(body));
  }
  loop.output(0)->set_elem_type(1);
  loop.output(0)->set_dims(dims({1, 4}));
  g.add_output(*loop.output(0));
  return m;
}

/// x [1, 8, 8] -> Mul(1e4) -> square -> Reshape [1, 4, 16] -> Transpose -> Div(1e4) -> Div(1e4) -> y:
/// input and output lie within [-1, 1], the square reaches 1e8, far beyond 65504. ONNX Runtime's
/// CPU provider computes Mul and Div in float32 and drops the Casts between two such ops, so an
/// intermediate between them never exists in float16 there; Reshape and Transpose run in float16,
/// as in an attention block, and make the overflow real.
quench::model overflow_model() {
  quench::model m;
  m.ir_version = 8;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 8, 8}));
  auto& k = g.add_initializer(scalar(1e4f, "k"));
  auto& shape = g.add_initializer(tensor::from<std::int64_t>({3}, {1, 4, 16}, "shape"));
  auto& mul = g.add_node("Mul", {&x, &k}, {"big"}, "scale_up");
  auto& sq = g.add_node("Mul", {mul.output(0), mul.output(0)}, {"square"}, "square");
  auto& rs = g.add_node("Reshape", {sq.output(0), &shape}, {"heads"}, "reshape");
  auto& tr = g.add_node("Transpose", {rs.output(0)}, {"heads_t"}, "transpose");
  tr.set_attribute(attribute::make_ints("perm", {0, 2, 1}));
  auto& div = g.add_node("Div", {tr.output(0), &k}, {"d"}, "scale_down");
  auto& div2 = g.add_node("Div", {div.output(0), &k}, {"y"}, "scale_down2");
  div2.output(0)->set_elem_type(1);
  div2.output(0)->set_dims(dims({1, 16, 4}));
  g.add_output(*div2.output(0));
  return m;
}

}  // namespace

TEST_CASE("float16 and bfloat16 conversions for ONNX Runtime" * doctest::skip()) {
  fs::create_directories(out_dir);
  std::ifstream in(models_dir / "manifest.json");
  REQUIRE_MESSAGE(in, "missing " << models_dir / "manifest.json" << " (made by the torch_models fixture)");
  const auto manifest = nlohmann::json::parse(in);
  std::ofstream pairs(out_dir / "pairs.txt");
  int count = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string file = c["model"];
    const std::string name = fs::path(file).stem().string();
    CAPTURE(name);
    const fs::path ref = fs::absolute(models_dir / file);
    qp::float16_options opt;
    const auto r = convert_and_save(ref, out_dir / (name + "_fp16.onnx"), false, opt);
    CHECK(r.initializers_converted > 0);
    CHECK(r.bytes_after * 1.9 < r.bytes_before);
    MESSAGE(name << ": " << r.nodes_converted << " nodes float16, " << r.blocked.size() << " float32, " << r.casts_inserted
                 << " Casts, tensors " << r.bytes_before << " -> " << r.bytes_after << " bytes");
    for (const auto& b : r.blocked) MESSAGE("  " << b.node << " (" << b.op_type << "): " << b.reason);
    opt.keep_io_types = true;
    convert_and_save(ref, out_dir / (name + "_fp16_io.onnx"), false, opt);
    pairs << ref.string() << " " << name << "_fp16.onnx\n" << ref.string() << " " << name << "_fp16_io.onnx\n";
    if (c["model"].get<std::string>().find("_op9") == std::string::npos && c["model"].get<std::string>().find("_op11") == std::string::npos) {
      // bfloat16 needs opset 13. Weights only (the default) is what ONNX Runtime's CPU provider
      // runs; computing in bfloat16 is written for the record (ORT refuses to load it).
      qp::float16_options bopt;
      const auto rb = convert_and_save(ref, out_dir / (name + "_bf16.onnx"), true, bopt);
      CHECK(rb.bytes_after * 1.9 < rb.bytes_before);
      pairs << ref.string() << " " << name << "_bf16.onnx max_rel=0.05 min_cos=0.999\n";
      bopt.compute = qp::half_compute::all;
      bopt.keep_io_types = true;
      convert_and_save(ref, out_dir / (name + "_bf16_all_io.onnx"), true, bopt);
    } else {
      quench::model m = quench::onnx::load_model(ref);
      CHECK_THROWS_WITH(qp::convert_bfloat16(m), doctest::Contains("opset 13"));
    }
    ++count;
  }
  CHECK(count == 16);

  // If and Loop with float tensors inside.
  {
    quench::onnx::save_model(control_flow_model(), out_dir / "control_flow.onnx");
    qp::float16_options opt;
    const auto r = convert_and_save(out_dir / "control_flow.onnx", out_dir / "control_flow_fp16.onnx", false, opt);
    CHECK(r.casts_inserted == 0);
    opt.node_block_list = {"body_mul", "else_mul"};
    const auto rb = convert_and_save(out_dir / "control_flow.onnx", out_dir / "control_flow_fp16_blocked.onnx", false, opt);
    CHECK(rb.blocked.size() == 2);
    CHECK(rb.casts_inserted >= 4);
    opt.node_block_list = {"if"};
    convert_and_save(out_dir / "control_flow.onnx", out_dir / "control_flow_fp16_if_blocked.onnx", false, opt);
    pairs << "control_flow.onnx control_flow_fp16.onnx\ncontrol_flow.onnx control_flow_fp16_blocked.onnx\n"
          << "control_flow.onnx control_flow_fp16_if_blocked.onnx\n";
  }

  // A QDQ model (weight-only int8): DequantizeLinear and its readers stay float32, scales too.
  {
    quench::model m = quench::onnx::load_model(models_dir / "resnet_op13.onnx");
    qp::quantize_weights(m);
    quench::onnx::save_model(m, out_dir / "resnet_op13_w8.onnx");
    const auto r = convert_and_save(out_dir / "resnet_op13_w8.onnx", out_dir / "resnet_op13_w8_fp16.onnx", false, {});
    bool dq_blocked = false;
    for (const auto& b : r.blocked) dq_blocked = dq_blocked || b.op_type == "DequantizeLinear";
    CHECK(dq_blocked);
    quench::model conv = quench::onnx::load_model(out_dir / "resnet_op13_w8_fp16.onnx");
    for (const quench::value* v : conv.main_graph().initializers())
      if (v->name().find("_scale") != std::string::npos) CHECK(v->initializer()->dtype() == dtype::float32);
    pairs << "resnet_op13_w8.onnx resnet_op13_w8_fp16.onnx\n";
  }

  // External data stays external, at half the size.
  {
    const fs::path ext = out_dir / "external";
    fs::create_directories(ext);
    quench::model m = quench::onnx::load_model(models_dir / "mobilenet_op13.onnx");
    quench::onnx::save_options so;
    so.external_threshold = 1024;
    quench::onnx::save_model(m, ext / "mobilenet_ext.onnx", so);
    const auto r = convert_and_save(ext / "mobilenet_ext.onnx", ext / "mobilenet_ext_fp16.onnx", false, {});
    CHECK(r.initializers_converted > 0);
    const auto data32 = fs::file_size(ext / "mobilenet_ext.onnx.data");
    REQUIRE(fs::exists(ext / "mobilenet_ext_fp16.onnx.data"));
    const auto data16 = fs::file_size(ext / "mobilenet_ext_fp16.onnx.data");
    MESSAGE("external data " << data32 << " -> " << data16 << " bytes");
    CHECK(data16 < data32);  // each tensor starts at a 4 KiB boundary: small ones do not halve the file
    CHECK(r.bytes_after * 1.9 < r.bytes_before);
    CHECK(fs::file_size(ext / "mobilenet_ext_fp16.onnx") * 4 < data16);  // the weights are not inline
    pairs << "external/mobilenet_ext.onnx external/mobilenet_ext_fp16.onnx\n";
  }

  // A model whose intermediate reaches 1e8: Inf in float16 without automatic blocking, right with it.
  {
    quench::model m = overflow_model();
    quench::onnx::save_model(m, out_dir / "overflow.onnx");
    convert_and_save(out_dir / "overflow.onnx", out_dir / "overflow_fp16.onnx", false, {});
    tensor x(dtype::float32, {1, 8, 8}, "x");
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& v : x.view<float>()) v = u(rng);
    qp::float16_options opt;
    opt.auto_block.samples.push_back({{"x", &x}});
    const auto r = convert_and_save(out_dir / "overflow.onnx", out_dir / "overflow_fp16_auto.onnx", false, opt);
    CHECK(r.auto_blocked.size() == 4);  // square .. scale_down: the node that overflows and its readers
    REQUIRE(r.simulated_before.size() == 1);
    CHECK(r.simulated_before[0].nonfinite > 0);
    CHECK(r.simulated_after[0].nonfinite == 0);
    for (const auto& b : r.auto_blocked) MESSAGE("  auto-blocked " << b.node << ": " << b.reason);
    pairs << "overflow.onnx overflow_fp16.onnx expect=nonfinite\noverflow.onnx overflow_fp16_auto.onnx\n";
  }
}

TEST_CASE("float16: every libonnx-testdata model converts (valid by strict shape inference) or gets a quench::error") {
  // The node tests cover every operator of onnx 1.12 with its type variants, sub-graphs,
  // sequences and strings: conversion must never crash, and what it writes must type-check.
  const fs::path root = QUENCH_ONNX_TESTDATA_DIR;
  if (!fs::exists(root)) {
    MESSAGE("libonnx-testdata not installed: skipped");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "model.onnx") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::size_t converted = 0, refused = 0, unloadable = 0;
  std::vector<std::string> invalid;
  for (const auto& file : files) {
    const std::string name = fs::relative(file.parent_path(), root).string();
    // Only models that type-check before conversion can show a conversion error.
    bool valid_before = true;
    try {
      quench::model original = quench::onnx::load_model(file);
      quench::onnx::shape_inference_options so;
      so.strict = true;
      if (original.opset() <= 17) quench::onnx::infer_shapes(original, so);
    } catch (const quench::error&) {
      valid_before = false;
    }
    for (int variant = 0; variant < 3; ++variant) {
      quench::model m;
      try {
        m = quench::onnx::load_model(file);
      } catch (const quench::error&) {
        ++unloadable;
        break;
      }
      qp::float16_options opt;
      opt.keep_io_types = variant == 1;
      if (variant == 2) opt.compute = qp::half_compute::all;
      try {
        if (variant == 2) qp::convert_bfloat16(m, opt);
        else qp::convert_float16(m, opt);
      } catch (const quench::error&) {
        ++refused;
        continue;
      }
      ++converted;
      m.main_graph().check_invariants();
      if (m.opset() > 17 || !valid_before) continue;
      try {
        const std::string bytes = quench::onnx::save_model_buffer(m);
        quench::model again = quench::onnx::load_model_buffer(bytes.data(), bytes.size());
        quench::onnx::shape_inference_options so;
        so.strict = true;
        quench::onnx::infer_shapes(again, so);
      } catch (const quench::error& e) {
        invalid.push_back(name + " (" + (variant == 2 ? "bf16" : variant == 1 ? "keep_io" : "fp16") + "): " + e.what());
      }
    }
  }
  MESSAGE(files.size() << " models: " << converted << " conversions, " << refused << " refused, " << unloadable << " not loadable");
  for (const auto& s : invalid) MESSAGE(s);
  CHECK(invalid.empty());
  CHECK(converted > 2000);
}

TEST_CASE("float16 conversions of every libonnx-testdata model for ONNX Runtime" * doctest::skip()) {
  // Writes the float16 conversion of each model and testdata/pairs.txt; the ctest
  // e2e_float16_testdata_ort checks that ONNX Runtime loads every one whose original it loads.
  const fs::path root = QUENCH_ONNX_TESTDATA_DIR;
  REQUIRE_MESSAGE(fs::exists(root), "libonnx-testdata is not installed");
  const fs::path dir = out_dir / "testdata";
  fs::create_directories(dir);
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "model.onnx") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::ofstream pairs(dir / "pairs.txt");
  int written = 0;
  for (const auto& file : files) {
    std::string flat = fs::relative(file.parent_path(), root).string();
    std::replace(flat.begin(), flat.end(), '/', '_');
    quench::model m = quench::onnx::load_model(file);
    try {
      qp::convert_float16(m);
    } catch (const quench::error&) {
      continue;  // opset below 6
    }
    quench::onnx::save_model(m, dir / (flat + ".onnx"));
    pairs << file.string() << " " << flat << ".onnx\n";
    ++written;
  }
  CHECK(written > 1000);
}
