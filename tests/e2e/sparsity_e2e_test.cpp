// sparsify / prune (quench/pipeline/sparsify.hpp, prune.hpp) on the torch-exported ResNet, MobileNetV3,
// U-Net and transformer at every opset of the torch_models fixture. This case writes, per model,
//
//   <name>_perm.onnx      channels permuted for 2:4 (function unchanged)       pairs_exact.txt vs original
//   <name>_pruned.onnx    25 % of the channels physically removed              pairs_exact.txt vs _silenced
//   <name>_silenced.onnx  the same channels zeroed, shapes kept
//   <name>_24.onnx        2:4 sparse with permutation                          pairs_run.txt vs original
//   <name>_l1.onnx        50 % unstructured L1                                 pairs_run.txt vs original
//
// and the ctests sparsity_e2e_ort_exact / sparsity_e2e_ort_run then run every pair in ONNX Runtime
// (tests/ort/compare_models.js): the exact pairs must agree to 1e-4, the others only load, run and
// give the same output shapes. The output SQNR of each changed model against the original, from
// quench's executor, is printed (the accuracy check of the pipelines).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "quench/data/sample_source.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/prune.hpp"
#include "quench/pipeline/sparsify.hpp"

namespace fs = std::filesystem;
namespace qp = quench::pipeline;

namespace {

/// Two seeded normal samples for the model's one input (symbolic batch = 2).
quench::data::tensor_source samples(const quench::model& m) {
  const quench::value& in = *m.main_graph().inputs().front();
  std::vector<std::int64_t> dims;
  for (const auto& d : *in.dims()) dims.push_back(d.value ? *d.value : 2);
  quench::tensor t(quench::dtype::float32, quench::shape(dims), in.name());
  std::mt19937 rng(3);
  std::normal_distribution<float> n;
  for (auto& v : t.view<float>()) v = n(rng);
  std::vector<std::pair<std::string, quench::tensor>> feeds;
  feeds.emplace_back(in.name(), std::move(t));
  return quench::data::tensor_source(std::move(feeds));
}

double output_sqnr(const quench::model& reference, const quench::model& candidate) {
  auto src = samples(reference);
  qp::compare_options o;
  o.samples = 1;
  return qp::compare_models(reference, candidate, src, {}, o).output_sqnr_db();
}

}  // namespace

TEST_CASE("sparsity on the torch-exported networks: permuted, pruned, silenced and sparse models for ONNX Runtime" *
          doctest::skip()) {
  const fs::path models = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "torch_models";
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "sparsity";
  fs::create_directories(out);
  std::ifstream in(models / "manifest.json");
  REQUIRE_MESSAGE(in, "missing " << models / "manifest.json" << " (made by the torch_models fixture)");
  const auto manifest = nlohmann::json::parse(in);
  std::ofstream exact(out / "pairs_exact.txt"), run(out / "pairs_run.txt");
  int count = 0, permuted_groups = 0, removed_groups = 0;
  for (const auto& c : manifest["cases"]) {
    const std::string file = c["model"], name = fs::path(file).stem().string();
    CAPTURE(name);
    const quench::model original = quench::onnx::load_model(models / file);
    const std::string original_path = fs::absolute(models / file).string();

    // Permutation only: the function must not change.
    quench::model perm = quench::onnx::load_model(models / file);
    qp::sparsify_options so;
    so.permute = true;
    const auto groups = qp::permute_channels(perm, so);
    int applied = 0;
    for (const auto& g : groups) {
      applied += g.applied;
      if (g.applied) CHECK(g.magnitude_after > g.magnitude_before);
    }
    CHECK(applied > 0);
    permuted_groups += applied;
    quench::onnx::save_model(perm, out / (name + "_perm.onnx"));
    exact << original_path << " " << name << "_perm.onnx\n";

    // 2:4 with permutation.
    quench::model sparse = quench::onnx::load_model(models / file);
    const auto sr = qp::sparsify(sparse, so);
    CHECK(!sr.tensors.empty());
    for (const auto& t : sr.tensors) CHECK(t.sparsity() >= 0.5);
    quench::onnx::save_model(sparse, out / (name + "_24.onnx"));
    run << original_path << " " << name << "_24.onnx\n";

    // Channel removal and its silenced twin.
    qp::prune_options po;
    po.amount = quench::prune::prune_amount::fraction(0.25);
    po.structured = true;
    po.removal = qp::channel_removal::remove;
    quench::model pruned = quench::onnx::load_model(models / file);
    const auto pr = qp::prune(pruned, po);
    po.removal = qp::channel_removal::silence;
    quench::model silenced = quench::onnx::load_model(models / file);
    qp::prune(silenced, po);
    int removed = 0;
    for (const auto& g : pr.groups) removed += g.applied;
    CHECK(removed > 0);
    removed_groups += removed;
    CHECK(pr.parameters_after < pr.parameters_before);
    pruned.main_graph().check_invariants();
    quench::onnx::save_model(pruned, out / (name + "_pruned.onnx"));
    quench::onnx::save_model(silenced, out / (name + "_silenced.onnx"));
    exact << name << "_silenced.onnx " << name << "_pruned.onnx\n";

    // Unstructured L1.
    qp::prune_options lo;
    lo.amount = quench::prune::prune_amount::fraction(0.5);
    quench::model l1 = quench::onnx::load_model(models / file);
    qp::prune(l1, lo);
    quench::onnx::save_model(l1, out / (name + "_l1.onnx"));
    run << original_path << " " << name << "_l1.onnx\n";

    // Accuracy in quench's executor.
    const double perm_db = output_sqnr(original, perm), removed_db = output_sqnr(silenced, pruned);
    CHECK(perm_db > 80);
    CHECK(removed_db > 80);
    MESSAGE(name << ": " << applied << " groups permuted, " << sr.tensors.size() << " weights 2:4 (" << sr.skipped.size()
                 << " skipped), sparsity " << sr.sparsity() << "; " << removed << " groups pruned, parameters "
                 << pr.parameters_before << " -> " << pr.parameters_after << "; output SQNR vs original: 2:4 "
                 << output_sqnr(original, sparse) << " dB, pruned " << output_sqnr(original, pruned) << " dB, l1 "
                 << output_sqnr(original, l1) << " dB; permuted " << perm_db << " dB, pruned vs silenced " << removed_db << " dB");
    ++count;
  }
  CHECK(count == 16);
  MESSAGE(permuted_groups << " channel groups permuted, " << removed_groups << " pruned, over " << count << " models");
}
