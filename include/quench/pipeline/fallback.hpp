#pragma once
// fallback: keep the layers whose quantization hurts the model output most in float, until the
// output meets a target SQNR (or a number of layers has fallen back).
//
//     quench::pipeline::fallback_options fo;
//     fo.target_sqnr_db = 30;
//     auto r = quench::pipeline::quantize_with_fallback([&] { return quench::onnx::load_model(path); },
//                                                      calib, eval, opt, fo);
//     quench::onnx::save_model(r.model, "model.int8.onnx");
//
// Sensitivity is measured one layer at a time: the model quantized with only that layer in
// float, its output SQNR against the float model on the evaluation samples. Layers are then
// kept in float in order of that SQNR, best first, re-measuring the whole model after each,
// until the target holds. All trials reuse the first calibration's ranges, so the data is
// calibrated once. The float model comes from a factory (a model is move-only): with the ONNX
// layer, reloading the file or a buffer of it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quench/pipeline/error_report.hpp"
#include "quench/pipeline/quantize_static.hpp"

namespace quench::pipeline {

struct fallback_options {
  /// Output SQNR to reach (dB); NaN: only `max_fallback` decides.
  double target_sqnr_db = std::numeric_limits<double>::quiet_NaN();
  /// At most this many layers in float; -1: as many as the target needs.
  int max_fallback = -1;
  compare_options evaluation;
  /// Called after each trial (layer, its SQNR), for progress output.
  std::function<void(const std::string& layer, double sqnr_db, std::size_t done, std::size_t total)> progress;
};

/// One layer's one-at-a-time sensitivity.
struct layer_sensitivity {
  std::string node;
  std::string op_type;
  double sqnr_db = 0;  ///< output SQNR with only this layer in float
};

struct fallback_result {
  model quantized;                 ///< the final QDQ model
  quantize_report report;          ///< of the final model
  model_error_report errors;       ///< of the final model against the float model
  double initial_sqnr_db = 0;      ///< with every layer quantized
  std::vector<layer_sensitivity> sensitivity;  ///< most sensitive first (empty if no search ran)
  std::vector<std::string> fell_back;          ///< layers kept in float, in the order chosen
  std::vector<double> sqnr_after;              ///< output SQNR after each fallback
  bool target_met = true;
};

namespace detail {

inline bool is_fallback_candidate(const std::string& op) {
  return is_matrix_op(op) || is_ort_integer_op(op) || is_pool_op(op) || op == "Add";
}

}  // namespace detail

/// Quantizes the model `load_float()` gives with `opt`, then falls back layers as `fo` asks (see
/// the header comment). `calib` calibrates, `eval` measures (they may be the same source).
inline fallback_result quantize_with_fallback(const std::function<model()>& load_float, data::sample_source& calib,
                                              data::sample_source& eval, const quantize_options& opt, const fallback_options& fo) {
  const model reference = load_float();
  auto build = [&](const quantize_options& o, quantize_report& rep) {
    model m = load_float();
    rep = quantize_static(m, calib, o);
    return m;
  };
  auto measure = [&](const model& q, const quantize_report& rep) {
    return compare_models(reference, q, eval, rep.inserted.dq_of, fo.evaluation);
  };

  fallback_result r;
  r.quantized = build(opt, r.report);
  r.errors = measure(r.quantized, r.report);
  r.initial_sqnr_db = r.errors.output_sqnr_db();
  const bool has_target = !std::isnan(fo.target_sqnr_db);
  auto good_enough = [&](double s) { return has_target && s >= fo.target_sqnr_db; };
  if ((!has_target && fo.max_fallback <= 0) || good_enough(r.initial_sqnr_db) || fo.max_fallback == 0) {
    r.target_met = !has_target || good_enough(r.initial_sqnr_db);
    return r;
  }

  // Later trials reuse these ranges; a tensor a trial newly needs is calibrated then.
  quantize_options base = opt;
  const calib::calibration_table table = r.report.table;
  base.table = &table;
  base.calibrate_missing = true;

  std::unordered_map<std::string, std::string> op_of;
  for (const node* x : r.quantized.main_graph().nodes()) op_of.emplace(x->name(), x->op_type());
  for (const std::string& n : r.report.plan.quantized_nodes) {
    auto it = op_of.find(n);
    if (it != op_of.end() && detail::is_fallback_candidate(it->second)) r.sensitivity.push_back({n, it->second, 0});
  }
  for (std::size_t i = 0; i < r.sensitivity.size(); ++i) {
    quantize_options o = base;
    o.placement.exclude_nodes.insert(r.sensitivity[i].node);
    quantize_report rep;
    const model q = build(o, rep);
    r.sensitivity[i].sqnr_db = measure(q, rep).output_sqnr_db();
    if (fo.progress) fo.progress(r.sensitivity[i].node, r.sensitivity[i].sqnr_db, i + 1, r.sensitivity.size());
  }
  std::stable_sort(r.sensitivity.begin(), r.sensitivity.end(),
                   [](const layer_sensitivity& a, const layer_sensitivity& b) { return a.sqnr_db > b.sqnr_db; });

  // Greedy, in sensitivity order; a layer whose fallback does not raise the output SQNR given the
  // ones already in float (errors interact) is skipped, so the result never gets worse.
  quantize_options o = base;
  const std::size_t limit = fo.max_fallback < 0 ? r.sensitivity.size() : static_cast<std::size_t>(fo.max_fallback);
  double current = r.initial_sqnr_db;
  for (std::size_t k = 0; k < r.sensitivity.size() && r.fell_back.size() < limit && !good_enough(current); ++k) {
    quantize_options trial = o;
    trial.placement.exclude_nodes.insert(r.sensitivity[k].node);
    quantize_report rep;
    model q = build(trial, rep);
    model_error_report e = measure(q, rep);
    const double s = e.output_sqnr_db();
    if (!(s > current)) continue;
    o = trial;
    current = s;
    r.fell_back.push_back(r.sensitivity[k].node);
    r.sqnr_after.push_back(current);
    r.quantized = std::move(q);
    r.report = std::move(rep);
    r.errors = std::move(e);
  }
  r.target_met = !has_target || good_enough(current);
  return r;
}

}  // namespace quench::pipeline
