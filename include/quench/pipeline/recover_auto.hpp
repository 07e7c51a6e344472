#pragma once
// recover_auto: one call that tries quench's accuracy-recovery steps in order on a float model and
// keeps each one only when it raises the output SQNR — so the result is never worse than the plain
// quantization it starts from, and the report says what each step bought.
//
//     quench::pipeline::recover_options ro;
//     ro.fallback.target_sqnr_db = 30;                        // mixed precision until 30 dB
//     auto r = quench::pipeline::quantize_recover_auto([&] { return quench::onnx::load_model(path); },
//                                                     calib, eval, opt, ro);
//     for (const auto& s : r.steps) std::printf("%s %.2f dB %s\n", s.name.c_str(), s.sqnr_db, s.kept ? "kept" : "dropped");
//
// Steps (each from the float model, with the best configuration so far plus the step):
//   plain                 `opt` as given; the opset upgrade and BatchNorm folding happen here
//   cross-layer eq.       Conv/Gemm pairs equalized (recover/cross_layer_equalization.hpp)
//   SmoothQuant           outlier activation channels moved into MatMul/Gemm weights, alpha
//                         searched per layer (recover/smooth_quant.hpp); transformers
//   MSE weight ranges     per-channel (or per-tensor) clipping by squared error (weight_qparams.hpp)
//   bias correction       quantized layers' output means matched to the float model's
//   ranges by output      each activation's range method chosen by the output SQNR
//                         (output_range_selection.hpp); a trial per candidate and tensor
//   AdaRound              weights rounded up or down to reconstruct each layer's output (opt-in)
//   mixed precision       16-bit activations, then float, for the most sensitive layers until the
//                         target SQNR holds (fallback.hpp); skipped without a target or budget
// A step that the model gives no opportunity for (no equalizable pair, no bias to correct) is
// reported as such. Steps that leave the float activations unchanged reuse the best
// configuration's calibrated ranges, so only the plain and equalized trials read all the data.

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/fallback.hpp"
#include "quench/pipeline/output_range_selection.hpp"
#include "quench/pipeline/quantize_static.hpp"

namespace quench::pipeline {

struct recover_options {
  bool equalize = true;
  bool smooth_quant = true;  ///< SmoothQuant with the per-layer alpha search, where the model has targets
  bool mse_weights = true;
  bool correct_bias = true;
  /// Each activation's range method chosen by the model output (output_range_selection.hpp)
  /// instead of by its own error: one trial per candidate and tensor, after bias correction.
  bool select_by_output = true;
  /// AdaRound (costly: minutes on a mobile CNN at the default iterations).
  bool adaround = false;
  recover::adaround_options adaround_options;
  /// Mixed precision (target_sqnr_db / max_fallback / try_int16 / max_float); nothing happens
  /// unless a target or a budget is set.
  fallback_options fallback = [] {
    fallback_options f;
    f.try_int16 = true;
    return f;
  }();
  compare_options evaluation;
  /// A task metric (higher is better, e.g. top-1) shown for each step; not used to choose.
  std::function<double(const model&)> metric;
  /// Called when a step starts, with its name.
  std::function<void(const std::string&)> progress;
};

struct recover_step {
  std::string name;
  std::string detail;  ///< what the step did ("12 layer pairs", "3 int16, 1 float", "no bias to correct")
  double sqnr_db = std::numeric_limits<double>::quiet_NaN();  ///< output SQNR vs float with this step
  double metric = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;
  bool kept = false;  ///< part of the result
  bool ran = true;    ///< false: nothing to do (detail says why)
};

struct recover_result {
  model quantized;
  quantize_report report;
  model_error_report errors;
  std::vector<recover_step> steps;
  double float_metric = std::numeric_limits<double>::quiet_NaN();
  double plain_sqnr_db = 0;
  quantize_options options;  ///< the configuration that made `quantized` (before mixed precision)
  fallback_result fallback;  ///< the mixed-precision search, when it ran (its model moved to `quantized`)
};

/// Quantizes `load_float()` with `opt` plus every recovery step that helps (see the header
/// comment). `calib` calibrates and feeds the data-driven steps, `eval` measures.
inline recover_result quantize_recover_auto(const std::function<model()>& load_float, data::sample_source& calib,
                                            data::sample_source& eval, const quantize_options& opt, const recover_options& ro = {}) {
  using clock = std::chrono::steady_clock;
  const model reference = load_float();
  recover_result r;
  if (ro.metric) r.float_metric = ro.metric(reference);

  struct candidate {
    model q;
    quantize_report rep;
    model_error_report e;
  };
  auto build = [&](const quantize_options& o) {
    candidate c;
    c.q = load_float();
    c.rep = quantize_static(c.q, calib, o);
    c.e = compare_quantized(reference, c.q, eval, c.rep.inserted, ro.evaluation);
    return c;
  };
  auto seconds_since = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };

  // plain
  if (ro.progress) ro.progress("plain");
  auto t0 = clock::now();
  quantize_options best_opt = opt;
  candidate best = build(best_opt);
  r.plain_sqnr_db = best.e.output_sqnr_db();
  {
    recover_step s;
    s.name = "plain";
    if (best.rep.opset_before != best.q.opset())
      s.detail = "opset " + std::to_string(best.rep.opset_before) + " -> " + std::to_string(best.q.opset()) + "; ";
    s.detail += std::to_string(best.rep.preprocess.fold_batch_norm.rewrites) + " BatchNorm folded";
    s.sqnr_db = r.plain_sqnr_db;
    s.kept = true;
    if (ro.metric) s.metric = ro.metric(best.q);
    s.seconds = seconds_since(t0);
    r.steps.push_back(std::move(s));
  }
  double best_sqnr = r.plain_sqnr_db;
  calib::calibration_table table = best.rep.table;  // the best configuration's ranges

  // Tries `o`; keeps it when the output SQNR rises. `reuse_ranges`: the float activations are
  // those of the best configuration, so its ranges serve.
  auto try_step = [&](const std::string& name, quantize_options o, bool reuse_ranges,
                      const std::function<std::string(const quantize_report&)>& detail) {
    if (ro.progress) ro.progress(name);
    const auto start = clock::now();
    recover_step s;
    s.name = name;
    const calib::calibration_table ranges = table;
    if (reuse_ranges && !o.table) {
      o.table = &ranges;
      o.calibrate_missing = true;
    }
    candidate c = build(o);
    s.detail = detail(c.rep);
    s.sqnr_db = c.e.output_sqnr_db();
    if (ro.metric) s.metric = ro.metric(c.q);
    s.kept = s.sqnr_db > best_sqnr;
    if (s.kept) {
      best_sqnr = s.sqnr_db;
      if (!reuse_ranges) table = c.rep.table;
      o.table = opt.table;  // the options kept refer to no local table
      o.calibrate_missing = opt.calibrate_missing;
      best_opt = std::move(o);
      best = std::move(c);
    }
    s.seconds = seconds_since(start);
    r.steps.push_back(std::move(s));
  };
  auto skipped = [&](const std::string& name, const std::string& why) {
    recover_step s;
    s.name = name;
    s.detail = why;
    s.ran = false;
    r.steps.push_back(std::move(s));
  };
  const bool weights_only = opt.profile.placement == qdq_placement::weights;

  if (ro.equalize && !opt.equalize) {
    quantize_options o = best_opt;
    o.equalize = true;
    // Ranges change with the rescaled channels: calibrated again.
    try_step("cross-layer equalization", std::move(o), false, [](const quantize_report& rep) {
      return rep.equalization.pairs.empty() ? std::string("no equalizable layer pair")
                                            : std::to_string(rep.equalization.pairs.size()) + " layer pairs";
    });
  }
  if (ro.smooth_quant && std::isnan(opt.smooth_quant_alpha) && !opt.smooth_quant_search && !weights_only) {
    model probe = load_float();
    if (recover::smooth_quant_targets(probe).empty()) {
      skipped("SmoothQuant", "no MatMul/Gemm activation it can smooth");
    } else {
      quantize_options o = best_opt;
      o.smooth_quant_search = true;
      // Smoothed activations have other ranges: calibrated again.
      try_step("SmoothQuant", std::move(o), false, [](const quantize_report& rep) {
        if (rep.smoothing.activations.empty()) return std::string("no activation with outlier channels");
        std::string d = std::to_string(rep.smoothing.activations.size()) + " activations, alpha";
        for (const auto& c : rep.smoothing.search) d += " " + calib::detail::number_text(c.alpha);
        return d;
      });
    }
  }
  if (ro.mse_weights && opt.weights != weight_method::mse) {
    quantize_options o = best_opt;
    o.weights = weight_method::mse;
    try_step("MSE weight ranges", std::move(o), true, [](const quantize_report& rep) {
      return std::to_string(rep.inserted.weights.size()) + " weights clipped by squared error";
    });
  }
  if (ro.correct_bias && !opt.correct_bias && !weights_only) {
    quantize_options o = best_opt;
    o.correct_bias = true;
    try_step("bias correction", std::move(o), true, [](const quantize_report& rep) {
      return rep.bias_correction.layers.empty() ? std::string("no Conv/Gemm output to correct")
                                                : std::to_string(rep.bias_correction.layers.size()) + " layers corrected";
    });
  }
  if (ro.select_by_output && best_opt.select_ranges && !best_opt.table && !weights_only) {
    if (ro.progress) ro.progress("ranges by output SQNR");
    const auto start = clock::now();
    output_selection_options so;
    so.evaluation = ro.evaluation;
    const output_selection_result sel = select_ranges_by_output(load_float, calib, eval, best_opt, so);
    quantize_options o = best_opt;
    o.table = &sel.table;  // try_step keeps a copy of the ranges, not this pointer
    try_step("ranges by output SQNR", std::move(o), false, [&](const quantize_report&) {
      return std::to_string(sel.changed_methods()) + " of " + std::to_string(sel.choices.size()) + " activations changed method (" +
             std::to_string(sel.trials) + " trials)";
    });
    r.steps.back().seconds = seconds_since(start);  // the trials, not only the final build
  }
  if (ro.adaround) {
    quantize_options o = best_opt;
    o.adaround = true;
    o.adaround_options = ro.adaround_options;
    try_step("AdaRound", std::move(o), true, [](const quantize_report& rep) {
      std::size_t flipped = 0, elements = 0;
      for (const auto& l : rep.adaround.layers) flipped += l.flipped, elements += l.elements;
      return std::to_string(rep.adaround.layers.size()) + " layers, " + std::to_string(flipped) + " of " + std::to_string(elements) +
             " weights rounded the other way";
    });
    if (r.steps.back().kept) {
      // Later trials (mixed precision) reuse the learned rounding instead of learning it again.
      best_opt.adaround = false;
      best_opt.weight_params.insert(best.rep.adaround_params.begin(), best.rep.adaround_params.end());
      best_opt.weight_values.insert(best.rep.adaround.values.begin(), best.rep.adaround.values.end());
    }
  }
  r.options = best_opt;

  const bool search = !std::isnan(ro.fallback.target_sqnr_db) || ro.fallback.max_fallback > 0;
  if (!search) {
    skipped("mixed precision", "no target SQNR or layer budget given");
  } else if (!std::isnan(ro.fallback.target_sqnr_db) && best_sqnr >= ro.fallback.target_sqnr_db) {
    skipped("mixed precision", "target already met");
  } else {
    if (ro.progress) ro.progress("mixed precision");
    const auto start = clock::now();
    quantize_options o = best_opt;
    const calib::calibration_table ranges = table;
    if (!o.table) {
      o.table = &ranges;
      o.calibrate_missing = true;
    }
    fallback_options fo = ro.fallback;
    fo.evaluation = ro.evaluation;
    fallback_result f = quantize_with_fallback(load_float, calib, eval, o, fo);
    recover_step s;
    s.name = "mixed precision";
    std::size_t floats = 0, sixteen = 0;
    for (const auto& p : f.precision) (p == "float" ? floats : sixteen) += 1;
    s.detail = std::to_string(sixteen) + " layers with int16 inputs, " + std::to_string(floats) + " in float" +
               (f.target_met ? "" : "; target not met");
    s.sqnr_db = f.errors.output_sqnr_db();
    if (ro.metric) s.metric = ro.metric(f.quantized);
    s.kept = s.sqnr_db > best_sqnr && !f.fell_back.empty();
    if (s.kept) {
      best_sqnr = s.sqnr_db;
      best.q = std::move(f.quantized);
      best.rep = std::move(f.report);
      best.e = std::move(f.errors);
    }
    r.fallback = std::move(f);
    s.seconds = seconds_since(start);
    r.steps.push_back(std::move(s));
  }
  r.quantized = std::move(best.q);
  r.report = std::move(best.rep);
  r.errors = std::move(best.e);
  return r;
}

}  // namespace quench::pipeline
