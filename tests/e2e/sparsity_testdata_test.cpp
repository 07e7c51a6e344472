// sparsify and prune on every libonnx-testdata model: each must either succeed, leaving a graph
// whose invariants hold and that saves and loads again, or refuse with a quench::error -- never
// crash. Where a channel permutation was applied, the executor checks the function is unchanged.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/prune.hpp"
#include "quench/pipeline/sparsify.hpp"
#include "quench/runtime/executor.hpp"

namespace fs = std::filesystem;
namespace qp = quench::pipeline;

namespace {

/// Seeded inputs for every graph input with a known float32 shape; false if some input has none.
bool random_feeds(const quench::model& m, std::vector<quench::tensor>& store) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n;
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    if (v->dtype() != quench::dtype::float32) return false;
    auto s = v->static_shape();
    if (!s) return false;
    quench::tensor t(quench::dtype::float32, *s, v->name());
    for (auto& x : t.view<float>()) x = n(rng);
    store.push_back(std::move(t));
  }
  return true;
}

}  // namespace

TEST_CASE("sparsify / prune: every libonnx-testdata model is changed validly or refused with a quench::error") {
  const fs::path root = QUENCH_ONNX_TESTDATA_DIR;
  if (!fs::exists(root)) {
    MESSAGE("libonnx-testdata not installed: skipped");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "model.onnx") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  int changed = 0, refused = 0, untouched = 0, permuted = 0, compared = 0;
  for (const auto& file : files) {
    const std::string name = fs::relative(file.parent_path(), root).string();
    CAPTURE(name);
    quench::model original;
    try {
      original = quench::onnx::load_model(file);
    } catch (const quench::error&) {
      continue;
    }
    for (int variant = 0; variant < 4; ++variant) {
      quench::model m = quench::onnx::load_model(file);
      bool did = false;
      try {
        if (variant == 0) {
          qp::sparsify_options o;
          o.permute = true;
          o.rules = {0, 0};
          did = !qp::sparsify(m, o).tensors.empty();
        } else if (variant == 1) {
          qp::sparsify_options o;
          o.rules = {0, 0};
          const auto groups = qp::permute_channels(m, o);
          for (const auto& g : groups) did = did || g.applied;
        } else {
          qp::prune_options o;
          o.amount = quench::prune::prune_amount::fraction(0.5);
          o.structured = variant == 2;
          o.removal = variant == 2 ? qp::channel_removal::remove : qp::channel_removal::none;
          o.global = variant == 3;
          const auto r = qp::prune(m, o);
          did = !r.weights.empty();
        }
      } catch (const quench::error&) {
        ++refused;
        continue;
      }
      m.main_graph().check_invariants();
      const std::string bytes = quench::onnx::save_model_buffer(m);
      CHECK_NOTHROW(quench::onnx::load_model_buffer(bytes.data(), bytes.size()));
      if (!did) {
        ++untouched;
        continue;
      }
      ++changed;
      if (variant != 1) continue;
      // A permutation must not change the function.
      ++permuted;
      std::vector<quench::tensor> feeds;
      if (!random_feeds(original, feeds)) continue;
      std::unordered_map<std::string, const quench::tensor*> in;
      for (const auto& t : feeds) in.emplace(t.name(), &t);
      try {
        quench::runtime::executor a(original), b(m);
        const auto ya = a.run(in), yb = b.run(in);
        REQUIRE(ya.size() == yb.size());
        for (std::size_t i = 0; i < ya.size(); ++i) {
          REQUIRE(ya[i].shape() == yb[i].shape());
          if (ya[i].dtype() != quench::dtype::float32) continue;
          double scale = 0, diff = 0;
          for (std::size_t k = 0; k < ya[i].size(); ++k) {
            scale = std::max(scale, std::fabs(double(ya[i].view<float>()[k])));
            diff = std::max(diff, std::fabs(double(ya[i].view<float>()[k]) - yb[i].view<float>()[k]));
          }
          CHECK(diff <= 1e-4 * std::max(scale, 1.0));
        }
        ++compared;
      } catch (const quench::error&) {
        // An operator the executor lacks: nothing to compare.
      }
    }
  }
  MESSAGE(files.size() << " models x 4 variants: " << changed << " changed, " << untouched << " untouched, " << refused
                       << " refused with a quench::error; " << permuted << " permuted, " << compared << " of them compared in the executor");
  CHECK(changed > 0);
}
