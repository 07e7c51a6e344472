#pragma once
// fallback: mixed precision. Give the layers whose quantization hurts the model output most more
// precision — 16-bit activations (opset 21 QDQ int16/uint16) or float — until the output meets a
// target SQNR (or a number of layers has been widened).
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
// until the target holds. With `try_int16`, each such layer first tries 16-bit activations for
// the tensors it reads (weights stay 8-bit, the layer still runs quantized where the runtime can);
// that is kept when it buys nearly what float would (within `int16_tolerance_db`) or when the
// float budget `max_float` is spent. All trials reuse the first calibration's ranges, so the data is
// calibrated once. The float model comes from a factory (a model is move-only): with the ONNX
// layer, reloading the file or a buffer of it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
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
  /// At most this many layers widened (int16 or float); -1: as many as the target needs.
  int max_fallback = -1;
  /// Try 16-bit activations for a layer's inputs before keeping it in float.
  bool try_int16 = false;
  /// int16 is chosen when its output SQNR is at most this much below the float choice's.
  double int16_tolerance_db = 0.5;
  /// At most this many layers in float (-1: no limit of its own); past it only int16 is tried.
  int max_float = -1;
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
  std::vector<std::string> fell_back;          ///< layers widened, in the order chosen
  std::vector<std::string> precision;          ///< for each: "float" or "int16"
  std::vector<double> sqnr_after;              ///< output SQNR after each
  std::vector<std::string> int16_tensors;      ///< activations given 16 bits
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
    return compare_quantized(reference, q, eval, rep.inserted, fo.evaluation);
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
  const std::size_t float_limit = fo.max_float < 0 ? r.sensitivity.size() : static_cast<std::size_t>(fo.max_float);
  std::size_t floats = 0;
  double current = r.initial_sqnr_db;
  struct trial_result {
    quantize_options options;
    model q;
    quantize_report rep;
    model_error_report e;
    double sqnr = -std::numeric_limits<double>::infinity();
    std::vector<std::string> widened;
  };
  auto run_trial = [&](quantize_options t, std::vector<std::string> widened) {
    trial_result x;
    x.q = build(t, x.rep);
    x.e = measure(x.q, x.rep);
    x.sqnr = x.e.output_sqnr_db();
    x.options = std::move(t);
    x.widened = std::move(widened);
    return x;
  };
  for (std::size_t k = 0; k < r.sensitivity.size() && r.fell_back.size() < limit && !good_enough(current); ++k) {
    const std::string& layer = r.sensitivity[k].node;
    std::optional<trial_result> as_float, as_int16;
    if (floats < float_limit) {
      quantize_options t = o;
      t.placement.exclude_nodes.insert(layer);
      as_float = run_trial(std::move(t), {});
    }
    if (fo.try_int16) {
      // The roots of the activations this layer reads, not yet 16-bit.
      std::vector<std::string> tensors;
      for (const planned_activation& a : r.report.plan.activations)
        for (const auto& rd : a.readers)
          if (rd.first == layer) {
            const std::string root = a.share_with.empty() ? a.name : a.share_with;
            auto ov = o.type_overrides.find(root);
            if ((ov == o.type_overrides.end() || ov->second != dtype::int16) &&
                std::find(tensors.begin(), tensors.end(), root) == tensors.end())
              tensors.push_back(root);
          }
      if (!tensors.empty()) {
        quantize_options t = o;
        for (const std::string& name : tensors) t.type_overrides[name] = opt.profile.activation_symmetric ? dtype::int16 : dtype::uint16;
        as_int16 = run_trial(std::move(t), std::move(tensors));
      }
    }
    trial_result* pick = nullptr;
    bool is_float = false;
    if (as_int16 && as_int16->sqnr > current && (!as_float || as_int16->sqnr >= as_float->sqnr - fo.int16_tolerance_db)) {
      pick = &*as_int16;
    } else if (as_float && as_float->sqnr > current) {
      pick = &*as_float;
      is_float = true;
    }
    if (!pick) continue;
    floats += is_float;
    current = pick->sqnr;
    r.fell_back.push_back(layer);
    r.precision.push_back(is_float ? "float" : "int16");
    r.int16_tensors.insert(r.int16_tensors.end(), pick->widened.begin(), pick->widened.end());
    r.sqnr_after.push_back(current);
    o = std::move(pick->options);
    r.quantized = std::move(pick->q);
    r.report = std::move(pick->rep);
    r.errors = std::move(pick->e);
  }
  r.target_met = !has_target || good_enough(current);
  return r;
}

}  // namespace quench::pipeline
