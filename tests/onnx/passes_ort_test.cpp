// Applies quench's graph passes to the models tests/graph/make_pass_models.py builds, checks the
// op counts each pass should leave, and saves the results for tests/ort/compare_models.js to run
// against the originals in ONNX Runtime. Skipped unless asked for (--no-skip): the models come
// from the passes_ort_models ctest fixture.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "quench/graph/passes/standard.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/onnx/shape_inference.hpp"

namespace {

namespace fs = std::filesystem;
namespace qp = quench::passes;

std::size_t count_ops(const quench::graph& g, const std::string& op) {
  std::size_t n = 0;
  for (const quench::node* x : g.nodes()) n += x->op_type() == op;
  return n;
}

qp::pass_report run_pass(quench::model& m, const std::string& name) {
  if (name == "constants_to_initializers") return qp::constants_to_initializers(m);
  if (name == "remove_identity") return qp::remove_identity(m);
  if (name == "fold_batch_norm") return qp::fold_batch_norm(m);
  if (name == "fold_conv_mul_add") return qp::fold_conv_mul_add(m);
  if (name == "fold_constants") return qp::fold_constants(m);
  if (name == "remove_dead_code") return qp::remove_dead_code(m);
  if (name == "standard") {
    const auto r = qp::standard_passes(m);
    qp::pass_report all;
    for (const auto* p : {&r.constants_to_initializers, &r.remove_identity, &r.fold_constants, &r.fold_batch_norm,
                          &r.fold_conv_mul_add, &r.remove_dead_code})
      all += *p;
    return all;
  }
  FAIL("unknown pass '" << name << "' in the manifest");
  return {};
}

}  // namespace

TEST_CASE("passes on exported models, saved for the ONNX Runtime comparison" * doctest::skip()) {
  const fs::path dir = fs::path(QUENCH_TEST_BINARY_DIR) / "passes";
  std::ifstream manifest(dir / "manifest.txt");
  REQUIRE_MESSAGE(manifest, "run tests/graph/make_pass_models.py " << dir.string() << " first");
  std::ostringstream pairs;
  std::size_t models = 0;
  for (std::string line; std::getline(manifest, line);) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string file, pass;
    std::getline(fields, file, '\t');
    std::getline(fields, pass, '\t');
    std::map<std::string, std::size_t> expect;
    for (std::string item; fields >> item;) {
      const auto eq = item.find('=');
      REQUIRE(eq != std::string::npos);
      expect[item.substr(0, eq)] = std::stoul(item.substr(eq + 1));
    }
    CAPTURE(file);
    CAPTURE(pass);

    quench::model m = quench::onnx::load_model(dir / file);
    // Shape of an activation folds only where its shape is known: what a converter would do.
    quench::onnx::infer_shapes(m);
    const std::size_t before = m.main_graph().node_count();
    const qp::pass_report r = run_pass(m, pass);
    m.main_graph().check_invariants();
    for (const auto& [op, count] : expect) {
      if (op == "rewrites") continue;
      CAPTURE(op);
      CHECK(count_ops(m.main_graph(), op) == count);
    }
    // "rewrites=N" in the manifest pins the count; otherwise the pass must have done something.
    if (auto it = expect.find("rewrites"); it != expect.end()) CHECK(r.rewrites == it->second);
    else CHECK(r.rewrites > 0);
    CHECK(m.main_graph().node_count() <= before);  // no pass adds nodes
    // What a converter does after any pass: parameters a fold left unused go (op counts keep).
    if (pass != "standard") qp::remove_dead_code(m);
    quench::onnx::check_model(m);
    const std::string out = fs::path(file).stem().string() + ".passes.onnx";
    quench::onnx::save_model(m, dir / out);
    pairs << file << ' ' << out << '\n';
    ++models;
    std::string kept;
    for (const auto& k : r.kept) kept += "\n  kept: " + k;
    MESSAGE(file << ": " << pass << ", " << r.rewrites << " rewrites, " << before << " -> " << m.main_graph().node_count()
                 << " nodes" << kept);
  }
  CHECK(models > 0);
  std::ofstream(dir / "pairs.txt") << pairs.str();
}
