#include <doctest/doctest.h>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/output_range_selection.hpp"

TEST_CASE("select by output: one sweep over the candidates, never below the MSE choice, reproducible from its table") {
  auto calib = quench_test::residual_cnn_data(32);
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto load = [] { return quench_test::residual_cnn(); };
  quench::pipeline::quantize_options opt;
  std::size_t calls = 0;
  quench::pipeline::output_selection_options so;
  so.progress = [&](const std::string&, std::size_t done, std::size_t total) {
    ++calls;
    CHECK(done <= total);
  };
  const auto sel = quench::pipeline::select_ranges_by_output(load, calib, eval, opt, so);
  REQUIRE_FALSE(sel.choices.empty());
  CHECK(calls == sel.choices.size());
  CHECK(sel.sqnr_after_db >= sel.sqnr_before_db);
  std::size_t tried = 0;
  for (const auto& c : sel.choices) {
    CHECK(c.sqnr_db.size() >= 2);
    tried += c.sqnr_db.size() - 1;
    const auto* e = sel.table.find(c.tensor);
    REQUIRE(e);
    CHECK(e->method == c.method);
  }
  CHECK(sel.trials == tried);
  // Each kept change raised the SQNR on both halves of the samples: the chosen candidate is on
  // each half at least where the MSE choice was when it was measured.
  for (const auto& c : sel.choices) {
    REQUIRE(c.half_sqnr_db.size() == c.sqnr_db.size());
    std::size_t chosen = 0, mse = 0;
    for (std::size_t k = 0; k < c.sqnr_db.size(); ++k) {
      REQUIRE(c.half_sqnr_db[k].size() == 2);
      if (c.sqnr_db[k].first == c.method) chosen = k;
      if (c.sqnr_db[k].first == c.mse_method) mse = k;
    }
    for (std::size_t h = 0; h < 2; ++h) CHECK(c.half_sqnr_db[chosen][h] >= c.half_sqnr_db[mse][h]);
  }
  // The table reproduces the selected model's SQNR exactly.
  const auto ref = load();
  auto m = load();
  auto o = opt;
  o.table = &sel.table;
  const auto r = quench::pipeline::quantize_static(m, calib, o);
  CHECK(quench::pipeline::compare_models(ref, m, eval, r.inserted.dq_of, {}).output_sqnr_db() == doctest::Approx(sel.sqnr_after_db));
  // It needs the candidates.
  o.table = nullptr;
  o.select_ranges = false;
  CHECK_THROWS_WITH(quench::pipeline::select_ranges_by_output(load, calib, eval, o), doctest::Contains("select_ranges"));
}

TEST_CASE("select by output on one set of samples, without halves, and not without samples") {
  auto calib = quench_test::residual_cnn_data(16);
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto load = [] { return quench_test::residual_cnn(); };
  quench::pipeline::quantize_options opt;
  quench::pipeline::output_selection_options so;
  so.both_halves = false;
  const auto one = quench::pipeline::select_ranges_by_output(load, calib, eval, opt, so);
  REQUIRE_FALSE(one.choices.empty());
  for (const auto& c : one.choices)
    for (const auto& h : c.half_sqnr_db) CHECK(h.empty());
  CHECK(one.sqnr_after_db >= one.sqnr_before_db);
  // The SQNR over both halves, from their summed signal and noise, is the SQNR over all samples.
  so.both_halves = true;
  const auto two = quench::pipeline::select_ranges_by_output(load, calib, eval, opt, so);
  CHECK(two.sqnr_before_db == doctest::Approx(one.sqnr_before_db));
  auto empty = quench_test::residual_cnn_data(8, 99);
  quench::data::index_view none(empty, {});
  CHECK_THROWS_WITH(quench::pipeline::select_ranges_by_output(load, calib, none, opt, so), doctest::Contains("evaluation samples"));
}
