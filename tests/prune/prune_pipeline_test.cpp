// quench/pipeline/prune.hpp on a graph built in memory, run by the executor (the torch-exported
// networks and ONNX Runtime are in tests/e2e/sparsity_e2e_test.cpp).
#include <doctest/doctest.h>

#include "quench/pipeline/prune.hpp"
#include "sparsity/pipeline_models.hpp"

using quench::pipeline::channel_removal;
using quench::pipeline::prune;
using quench::pipeline::prune_options;
using quench::prune::prune_amount;

TEST_CASE("prune: unstructured per weight, global, random, and a second round") {
  prune_options o;
  o.amount = prune_amount::fraction(0.5);
  quench::model m = sparsity_test::coupled_net();
  auto r = prune(m, o);
  CHECK(r.weights.size() == 5);
  for (const auto& w : r.weights) CHECK(w.sparsity() == doctest::Approx(0.5).epsilon(0.01));
  CHECK(r.parameters_after == r.parameters_before);
  CHECK(r.nonzero_after < r.nonzero_before);
  // Again: half of what is left (zeros count as pruned).
  r = prune(m, o);
  for (const auto& w : r.weights) CHECK(w.sparsity() == doctest::Approx(0.75).epsilon(0.01));

  quench::model g = sparsity_test::coupled_net();
  o.global = true;
  r = prune(g, o);
  std::int64_t zeros = 0, total = 0;
  for (const auto& w : r.weights) zeros += w.zeros, total += w.elements;
  CHECK(zeros * 2 == total);

  quench::model rnd = sparsity_test::coupled_net();
  o.global = false;
  o.random = true;
  o.seed = 5;
  r = prune(rnd, o);
  for (const auto& w : r.weights) CHECK(w.sparsity() == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("prune: structured filters (dim 0) and input channels (dim 1) in the ONNX layouts") {
  prune_options o;
  o.amount = prune_amount::fraction(0.25);
  o.structured = true;
  for (int dim : {0, 1}) {
    CAPTURE(dim);
    o.dim = dim;
    quench::model m = sparsity_test::coupled_net();
    const auto r = prune(m, o);
    const auto& g = m.main_graph();
    // mm.weight is [in 32, out 64]: dim 0 (outputs) is its axis 1.
    const auto* mm = g.find_value("mm.weight")->initializer();
    const std::size_t axis = dim == 0 ? 1 : 0;
    std::int64_t zero_slices = 0;
    for (std::int64_t c = 0; c < mm->shape()[axis]; ++c) {
      bool all = true;
      for (std::int64_t o2 = 0; o2 < mm->shape()[1 - axis]; ++o2)
        all = all && mm->view<float>()[static_cast<std::size_t>(axis == 1 ? o2 * 64 + c : c * 64 + o2)] == 0.f;
      zero_slices += all;
    }
    CHECK(zero_slices == (dim == 0 ? 16 : 8));
    CHECK(!r.weights.empty());
  }
}

TEST_CASE("prune: channel removal equals the silenced model, and the model gets smaller") {
  prune_options o;
  o.amount = prune_amount::fraction(0.25);
  o.structured = true;
  o.removal = channel_removal::silence;
  quench::model silenced = sparsity_test::coupled_net();
  const auto rs = prune(silenced, o);
  o.removal = channel_removal::remove;
  quench::model removed = sparsity_test::coupled_net();
  const auto rr = prune(removed, o);
  REQUIRE(rr.groups.size() == 3);
  CHECK(rr.groups[0].applied);
  CHECK(rr.groups[0].channels_before == 32);
  CHECK(rr.groups[0].channels_after == 24);
  CHECK(rr.groups[1].applied);
  CHECK(rr.groups[1].channels_after == 48);
  CHECK(!rr.groups[2].applied);  // fc: its output is the graph output
  CHECK(rs.groups[0].applied);
  CHECK(rr.parameters_after < rr.parameters_before);
  CHECK(rr.bytes_after < rr.bytes_before);
  CHECK(rs.parameters_after == rs.parameters_before);
  const auto& g = removed.main_graph();
  g.check_invariants();
  CHECK(g.find_value("c1.weight")->initializer()->shape() == quench::shape{24, 16, 3, 3});
  CHECK(g.find_value("c2.weight")->initializer()->shape() == quench::shape{24, 24, 1, 1});
  CHECK(g.find_value("dw.weight")->initializer()->shape() == quench::shape{24, 1, 3, 3});
  CHECK(g.find_value("bn1.scale")->initializer()->shape() == quench::shape{24});
  CHECK(g.find_value("mm.weight")->initializer()->shape() == quench::shape{24, 48});
  CHECK(g.find_value("mm.bias")->initializer()->shape() == quench::shape{48});
  CHECK(g.find_value("fc.weight")->initializer()->shape() == quench::shape{16, 48});
  const quench::tensor x = sparsity_test::normal({3, 16, 8, 8}, "x", 17, 1.f);
  const auto a = sparsity_test::run(silenced, x), b = sparsity_test::run(removed, x);
  REQUIRE(a.shape() == b.shape());
  CHECK(sparsity_test::max_abs_diff(a, b) < 1e-4);
}

TEST_CASE("prune: refusals and skipped groups") {
  quench::model m = sparsity_test::coupled_net();
  prune_options o;
  o.global = true;
  o.structured = true;
  CHECK_THROWS_WITH_AS(prune(m, o), doctest::Contains("global pruning is unstructured"), quench::error);
  o.global = false;
  o.removal = channel_removal::remove;
  o.dim = 1;
  CHECK_THROWS_AS(prune(m, o), quench::error);
  o.dim = 0;
  o.norm = -2;
  CHECK_THROWS_AS(prune(m, o), quench::error);
  // Excluding a source keeps its whole group.
  o.norm = 2;
  o.exclude = {"c2"};
  const auto r = prune(m, o);
  CHECK(!r.groups[0].applied);
  CHECK(r.groups[0].reason == "node 'c2' (Conv) is excluded");
  CHECK(r.groups[1].applied);
  // A Sigmoid between a source and its consumer: a removed channel would not be zero there.
  quench::model s = sparsity_test::coupled_net();
  auto& g = s.main_graph();
  auto* relu3 = g.find_value("r3")->producer();
  relu3->set_op_type("Sigmoid");
  o.exclude.clear();
  const auto rs = prune(s, o);
  CHECK(!rs.groups[1].applied);
  CHECK(rs.groups[1].reason == "removed channels would reach node 'fc' (Gemm) as non-zero values (from node 'relu3' (Sigmoid))");
}
