#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "pipeline_test_models.hpp"
#include "quench/pipeline/recover_auto.hpp"

using quench::pipeline::quantize_options;
using quench::pipeline::recover_options;

TEST_CASE("recover auto: every step reported; never worse than plain; the result is the best step") {
  auto calib = quench_test::residual_cnn_data(32);
  auto eval = quench_test::residual_cnn_data(8, 99);
  auto load = [] { return quench_test::residual_cnn(); };
  quantize_options opt;
  opt.profile.per_channel = false;  // per-tensor weights: room for equalization and bias correction
  recover_options ro;
  ro.fallback.target_sqnr_db = 1000;  // unreachable: widens up to the budget
  ro.fallback.max_fallback = 1;
  int metric_calls = 0;
  ro.metric = [&](const quench::model&) { return ++metric_calls; };
  const auto r = quench::pipeline::quantize_recover_auto(load, calib, eval, opt, ro);
  REQUIRE(r.steps.size() == 7);
  CHECK(r.steps[0].name == "plain");
  CHECK(r.steps[1].name == "cross-layer equalization");
  CHECK(r.steps[2].name == "SmoothQuant");
  // The Gemm head's input has no outlier channels: tried, nothing smoothed.
  CHECK((!r.steps[2].ran || r.steps[2].detail == "no activation with outlier channels"));
  CHECK(r.steps[3].name == "MSE weight ranges");
  CHECK(r.steps[4].name == "bias correction");
  CHECK(r.steps[5].name == "ranges by output SQNR");
  CHECK(r.steps[6].name == "mixed precision");
  CHECK(r.steps[0].kept);
  CHECK(r.plain_sqnr_db == r.steps[0].sqnr_db);
  double best = r.plain_sqnr_db;
  for (const auto& s : r.steps) {
    if (!s.ran) continue;
    CHECK(std::isfinite(s.sqnr_db));
    CHECK(std::isfinite(s.metric));
    if (s.kept) {
      CHECK(s.sqnr_db >= best);
      best = s.sqnr_db;
    }
  }
  std::size_t ran = 0;
  for (const auto& s : r.steps) ran += s.ran;
  CHECK(metric_calls == static_cast<int>(1 + ran));  // float + every step that ran
  CHECK(r.errors.output_sqnr_db() == doctest::Approx(best));
  CHECK(r.errors.output_sqnr_db() >= r.plain_sqnr_db);
  // The kept configuration is what the result was made with.
  CHECK(r.options.equalize == r.steps[1].kept);
  CHECK(r.options.correct_bias == r.steps[4].kept);
}

TEST_CASE("recover auto: AdaRound runs on every weight; steps with nothing to do say so") {
  auto calib = quench_test::residual_cnn_data(16);
  auto eval = quench_test::residual_cnn_data(4, 99);
  auto load = [] { return quench_test::residual_cnn(); };
  recover_options ro;
  ro.adaround = true;
  ro.adaround_options.iterations = 200;
  const auto r = quench::pipeline::quantize_recover_auto(load, calib, eval, quantize_options{}, ro);
  const auto& last = r.steps.back();
  CHECK(last.name == "mixed precision");
  CHECK_FALSE(last.ran);
  CHECK(last.detail.find("no target") != std::string::npos);
  bool adaround = false;
  for (const auto& s : r.steps) adaround = adaround || (s.name == "AdaRound" && s.ran && s.detail.find("3 layers") == 0);
  CHECK(adaround);
  CHECK(r.errors.output_sqnr_db() >= r.plain_sqnr_db);
}
