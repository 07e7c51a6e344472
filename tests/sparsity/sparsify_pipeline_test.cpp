// quench/pipeline/sparsify.hpp on a graph built in memory, run by the executor (the torch-exported
// networks and ONNX Runtime are in tests/e2e/sparsity_e2e_test.cpp).
#include <doctest/doctest.h>

#include "quench/pipeline/sparsify.hpp"
#include "sparsity/pipeline_models.hpp"

namespace sp = quench::sparsity;
using quench::pipeline::sparsify;
using quench::pipeline::sparsify_options;

TEST_CASE("channel groups of the coupled net") {
  quench::model m = sparsity_test::coupled_net();
  auto groups = quench::pipeline::detail::find_channel_groups(m.main_graph());
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].usable());
  CHECK(groups[0].channels == 32);
  CHECK(groups[0].sources.size() == 2);  // c1, and c2 through the residual Add
  CHECK(groups[0].sinks.size() == 2);    // c2 (after the depthwise Conv), mm (after the pool)
  CHECK(groups[0].depthwise.size() == 1);
  CHECK(groups[0].not_zero_preserving.empty());
  CHECK(groups[1].usable());
  CHECK(groups[1].channels == 64);
  CHECK(!groups[2].usable());
  CHECK(groups[2].failure == "value 'y' is a graph output");
}

TEST_CASE("permute_channels keeps the function and raises the retained magnitude") {
  const quench::model original = sparsity_test::coupled_net();
  quench::model m = sparsity_test::coupled_net();
  sparsify_options o;
  o.rules = {0, 0};
  const auto groups = quench::pipeline::permute_channels(m, o);
  REQUIRE(groups.size() == 2);
  for (const auto& g : groups) {
    CAPTURE(g.sources.front());
    CHECK(g.applied);
    CHECK(g.magnitude_after > g.magnitude_before);
  }
  const quench::tensor x = sparsity_test::normal({2, 16, 8, 8}, "x", 99, 1.f);
  const auto a = sparsity_test::run(original, x), b = sparsity_test::run(m, x);
  CHECK(sparsity_test::max_abs_diff(a, b) < 1e-4);
  m.main_graph().check_invariants();
}

TEST_CASE("sparsify: 2:4 along the input channels of every eligible weight, with and without permutation") {
  for (bool permute : {false, true}) {
    CAPTURE(permute);
    quench::model m = sparsity_test::coupled_net();
    sparsify_options o;
    o.permute = permute;
    const auto r = sparsify(m, o);
    // c1 has 16 inputs and 32 outputs: eligible; the depthwise Conv is not; c2, mm, fc are.
    REQUIRE(r.tensors.size() == 4);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].name == "dw.weight");
    CHECK(r.skipped[0].reason == "input channels 1 (axis 1) not a multiple of 16");
    for (const auto& t : r.tensors) {
      CAPTURE(t.name);
      CHECK(t.sparsity() == doctest::Approx(0.5));
      const auto* w = m.main_graph().find_value(t.name)->initializer();
      const auto mask = sp::nm_mask(*w, t.axis);
      // The weight is its own 2:4 mask's fixed point: exactly two non-zeros per group survive.
      const auto kept = sp::retained_magnitude(*w, mask);
      CHECK(kept.kept == doctest::Approx(kept.total));
      if (permute && (t.name == "c2.weight" || t.name == "mm.weight" || t.name == "fc.weight")) {
        CHECK(t.permuted);
        CHECK(t.magnitude_kept >= t.magnitude_kept_unpermuted * 0.999);
      }
    }
    CHECK(r.sparsity() > 0.45);
    CHECK(r.compressed_bytes < r.bytes);
    m.main_graph().check_invariants();
    // The model still runs; its outputs move (weights were removed) but stay close.
    const quench::model original = sparsity_test::coupled_net();
    const quench::tensor x = sparsity_test::normal({2, 16, 8, 8}, "x", 7, 1.f);
    const auto a = sparsity_test::run(original, x), b = sparsity_test::run(m, x);
    CHECK(a.shape() == b.shape());
  }
}

TEST_CASE("sparsify: exclusions, other patterns, refusals") {
  quench::model m = sparsity_test::coupled_net();
  sparsify_options o;
  o.exclude = {"fc", "mm.weight"};
  o.pattern = {4, 8};
  const auto r = sparsify(m, o);
  CHECK(r.tensors.size() == 2);
  CHECK(r.skipped.size() == 3);
  for (const auto& t : r.tensors) CHECK(t.sparsity() == doctest::Approx(0.5));
  o.pattern = {5, 4};
  CHECK_THROWS_AS(sparsify(m, o), quench::error);
  // A NaN weight is an error naming it, and nothing is half-written before it... (the first weight may be)
  quench::model bad = sparsity_test::coupled_net();
  bad.main_graph().find_value("c2.weight")->initializer()->view<float>()[3] = std::nanf("");
  CHECK_THROWS_WITH_AS(sparsify(bad), doctest::Contains("tensor 'c2.weight'"), quench::error);
}
