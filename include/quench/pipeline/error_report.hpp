#pragma once
// error_report: how far a quantized model's tensors are from the float model's, tensor by tensor,
// on a few samples run side by side in the executor. For every pair (float tensor, tensor of the
// quantized model with the same meaning, e.g. "x" and "x_DequantizeLinear_Output") and for every
// graph output: SQNR in dB (10 log10 of signal energy over error energy), cosine similarity and
// the largest absolute error, accumulated over all samples. Sorted worst SQNR first, which is
// where a user looks when accuracy drops.
//
//     auto r = quench::pipeline::compare_quantized(float_model, qdq_model, data, report.inserted);
//     for (const auto& t : r.tensors) std::printf("%s %.1f dB\n", t.name.c_str(), t.sqnr_db);
//
// Samples run one batch at a time; the float model's tensors of interest are kept for one batch
// only, so memory is one batch of activations per model.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/data/spread_samples.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/insert_qdq.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::pipeline {

/// Error statistics of one tensor (float reference x, quantized y).
struct tensor_error {
  std::string name;      ///< the float model's tensor
  std::string compared;  ///< the quantized model's tensor
  std::int64_t elements = 0;
  double signal = 0, noise = 0, dot = 0, candidate_energy = 0, max_abs_error = 0;
  std::int64_t nonfinite = 0;  ///< elements where either model gave NaN/Inf

  /// 10 log10(sum x^2 / sum (x - y)^2); +inf when equal, -inf for a zero signal with errors.
  double sqnr_db() const {
    if (nonfinite > 0) return -std::numeric_limits<double>::infinity();
    if (noise == 0) return std::numeric_limits<double>::infinity();
    if (signal == 0) return -std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(signal / noise);
  }
  double cosine() const {
    if (signal == 0 && candidate_energy == 0) return 1.0;
    if (signal == 0 || candidate_energy == 0) return 0.0;
    return dot / std::sqrt(signal * candidate_energy);
  }

  void add(const float* x, const float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const double a = x[i], b = y[i];
      if (!std::isfinite(a) || !std::isfinite(b)) {
        ++nonfinite;
        continue;
      }
      const double d = a - b;
      signal += a * a;
      noise += d * d;
      dot += a * b;
      candidate_energy += b * b;
      max_abs_error = std::max(max_abs_error, std::fabs(d));
    }
    elements += static_cast<std::int64_t>(n);
  }
  /// Adds the statistics of the same tensor on other samples.
  void merge(const tensor_error& o) {
    signal += o.signal;
    noise += o.noise;
    dot += o.dot;
    candidate_energy += o.candidate_energy;
    max_abs_error = std::max(max_abs_error, o.max_abs_error);
    nonfinite += o.nonfinite;
    elements += o.elements;
  }
};

struct model_error_report {
  std::vector<tensor_error> tensors;  ///< the pairs asked for, worst SQNR first
  std::vector<tensor_error> outputs;  ///< graph outputs, in graph order
  std::int64_t samples = 0;
  /// The worst output SQNR (the model's figure of merit for fallback decisions).
  double output_sqnr_db() const {
    double w = std::numeric_limits<double>::infinity();
    for (const auto& t : outputs) w = std::min(w, t.sqnr_db());
    return w;
  }
};

struct compare_options {
  std::int64_t samples = 8;     ///< N samples spread evenly over the source (all if fewer)
  std::int64_t batch_size = 1;  ///< samples per run
  runtime::executor_options executor;
};

namespace detail {

/// `bounds`: the reference is clamped to [first, second] first (nullptr: compared as it is).
inline void accumulate(tensor_error& e, const tensor& x, const tensor& y, const std::pair<float, float>* bounds = nullptr) {
  if (x.shape() != y.shape())
    throw_error(errc::shape_mismatch, tensor_context(e.name),
                "the models give different shapes: " + to_string(x.shape()) + " and " + to_string(y.shape()));
  if (!bounds) {
    e.add(x.view<float>().data(), y.view<float>().data(), x.size());
    return;
  }
  std::vector<float> clamped(x.view<float>().begin(), x.view<float>().end());
  for (float& v : clamped)  // NaN stays NaN, and is counted as non-finite
    v = v < bounds->first ? bounds->first : v > bounds->second ? bounds->second : v;
  e.add(clamped.data(), y.view<float>().data(), x.size());
}

/// compare_models, with the reference tensor of each pair in `bounds` (by candidate tensor)
/// clamped to its interval.
inline model_error_report compare_models(const model& reference, const model& candidate, data::sample_source& source,
                                         const std::map<std::string, std::string>& pairs,
                                         const std::map<std::string, std::pair<float, float>>& bounds, const compare_options& opt) {
  if (opt.batch_size < 1 || opt.samples < 1) throw_error(errc::invalid_argument, "compare_models", "samples and batch size must be >= 1");
  runtime::executor ref(reference, opt.executor), cand(candidate, opt.executor);
  std::unordered_map<std::string, std::string> ref_to_cand;
  for (const auto& [c, r] : pairs) ref_to_cand[r] = c;
  std::map<std::string, tensor_error> errors;  // by candidate tensor
  for (const auto& [c, r] : pairs) {
    tensor_error e;
    e.name = r;
    e.compared = c;
    errors.emplace(c, e);
  }
  std::vector<tensor_error> outputs;
  for (const std::string& name : ref.output_names()) {
    tensor_error e;
    e.name = e.compared = name;
    outputs.push_back(e);
  }
  model_error_report report;
  report.samples = data::for_each_spread_batch(source, opt.samples, opt.batch_size, [&](data::batch& b) {
    std::unordered_map<std::string, const tensor*> feeds;
    for (auto& [name, t] : b) feeds.emplace(name, &t);
    std::unordered_map<std::string, tensor> kept;  // reference tensors of this batch, by candidate name
    auto ref_out = ref.run(feeds, [&](const std::string& name, const tensor& t) {
      auto it = ref_to_cand.find(name);
      if (it != ref_to_cand.end() && t.dtype() == dtype::float32) kept.emplace(it->second, t.share());
    });
    auto cand_out = cand.run(feeds, [&](const std::string& name, const tensor& t) {
      auto it = kept.find(name);
      if (it == kept.end() || t.dtype() != dtype::float32) return;
      auto b = bounds.find(name);
      accumulate(errors.at(name), it->second, t, b == bounds.end() ? nullptr : &b->second);
      kept.erase(it);
    });
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const auto& names = cand.output_names();
      auto at = std::find(names.begin(), names.end(), outputs[i].name);
      if (at == names.end()) throw_error(errc::invalid_argument, "output '" + outputs[i].name + "'", "the quantized model has no output of that name");
      const tensor& x = ref_out[i];
      const tensor& y = cand_out[static_cast<std::size_t>(at - names.begin())];
      if (x.dtype() == dtype::float32 && y.dtype() == dtype::float32) accumulate(outputs[i], x, y);
    }
  });
  for (auto& [name, e] : errors)
    if (e.elements > 0) report.tensors.push_back(e);
  std::stable_sort(report.tensors.begin(), report.tensors.end(),
                   [](const tensor_error& a, const tensor_error& b) { return a.sqnr_db() < b.sqnr_db(); });
  report.outputs = std::move(outputs);
  return report;
}

}  // namespace detail

/// Runs `reference` and `candidate` on the same samples and compares each pair of
/// `pairs` (candidate tensor -> reference tensor) and the graph outputs (matched by name).
/// Pairs whose tensors are not float32 or never appear are skipped.
inline model_error_report compare_models(const model& reference, const model& candidate, data::sample_source& source,
                                         const std::map<std::string, std::string>& pairs, const compare_options& opt = {}) {
  return detail::compare_models(reference, candidate, source, pairs, {}, opt);
}

/// The same for a QDQ model against the float model it came from: the pairs are the insertion's
/// DQ outputs, and each float tensor is clamped to its quantizer's planned bounds first
/// (qdq_insert_report::bounds). Saturation bounds cut values no consumer tells apart (below -2
/// before tf2onnx's LeakyRelu(0.2) -> Max(x, -0.4)); compared unclamped, such a tensor shows
/// the cut as error (5 dB on openWakeWord's second Conv) although no output changes.
inline model_error_report compare_quantized(const model& reference, const model& candidate, data::sample_source& source,
                                            const qdq_insert_report& inserted, const compare_options& opt = {}) {
  return detail::compare_models(reference, candidate, source, inserted.dq_of, inserted.bounds, opt);
}

}  // namespace quench::pipeline
