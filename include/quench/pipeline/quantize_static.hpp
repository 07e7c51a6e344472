#pragma once
// quantize_static: a float ONNX model and calibration data in, a QDQ model out — the whole PTQ
// job in one call.
//
//     quench::model m = quench::onnx::load_model("model.onnx");
//     quench::data::npy_source data({{"input", "calib.npy"}});
//     quench::pipeline::quantize_options opt;                       // profile "ort", min-max
//     opt.calibration.method = quench::calib::method::entropy;
//     auto report = quench::pipeline::quantize_static(m, data, opt);
//     quench::onnx::save_model(m, "model.int8.onnx");
//
// Steps: (1) the standard clean-up passes (constants to initializers, Identity/Dropout removal,
// shape-subgraph folding, BatchNorm and Mul/Add folding into Conv/Gemm), so exported models need
// no preparation; (2) one probe run on the first sample to learn which tensors are float;
// (3) the placement (qdq_plan.hpp) for the profile; (4) calibration of only the tensors the plan
// needs (quench/calib/calibrate.hpp), or ranges from a given table (a `quench calibrate` result,
// a TensorRT cache); (5) scales and zero points per activation (ONNX Runtime's rules,
// quench/quant/choose_qparams.hpp), weights per channel (weight_qparams.hpp), biases int32;
// (6) the Q/DQ nodes (insert_qdq.hpp) and a metadata entry "quench.quantize" with quench's
// version and every setting. The same model, data and options give a byte-identical file.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "quench/calib/calibrate.hpp"
#include "quench/calib/calibration_table.hpp"
#include "quench/core/error.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/graph/passes/upgrade_opset.hpp"
#include "quench/pipeline/bias_correction.hpp"
#include "quench/recover/high_bias_absorption.hpp"
#include "quench/pipeline/insert_qdq.hpp"
#include "quench/pipeline/qdq_plan.hpp"
#include "quench/pipeline/quant_profile.hpp"
#include "quench/pipeline/range_selection.hpp"
#include "quench/pipeline/weight_qparams.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/recover/adaround.hpp"
#include "quench/recover/cross_layer_equalization.hpp"
#include "quench/recover/smooth_quant.hpp"
#include "quench/runtime/executor.hpp"
#include "quench/version.hpp"

namespace quench::pipeline {

struct quantize_options {
  quant_profile profile = profile_by_name("ort");
  /// Op types to quantize, nodes and tensors to keep in float.
  plan_options placement;
  /// Choose each activation's range among min-max, percentile, entropy and MSE by the error it
  /// causes (range_selection.hpp), from one histogram per tensor. Off: `calibration.method` for all.
  bool select_ranges = true;
  /// Activation calibration: method (minmax, entropy, percentile, mse; used when select_ranges is
  /// off) and its parameters, batch size, executor threads, progress callback. `tensors` is set by
  /// quantize_static.
  calib::calibrate_options calibration;
  weight_method weights = weight_method::minmax;
  /// Upgrade the model's opset when the profile needs a newer one (per-channel QDQ 13, float8 19,
  /// 16-bit and 4-bit QDQ 21) instead of refusing it.
  bool upgrade_opset = true;
  /// Cross-layer equalization after the clean-up (recover/cross_layer_equalization.hpp): evens out
  /// per-channel weight ranges across Conv/Gemm pairs; pays most with per-tensor weights.
  bool equalize = false;
  /// Empirical bias correction after the Q/DQ insertion (bias_correction.hpp): per-channel output
  /// means of every quantized Conv/Gemm matched to the float model's on calibration samples.
  bool correct_bias = false;
  /// Data-free bias correction instead (correct_biases_data_free): each Conv/Gemm after a folded
  /// BatchNorm corrects its bias from that BatchNorm's statistics, without running any data.
  bool correct_bias_data_free = false;
  /// DFQ's high-bias absorption after CLE (recover/high_bias_absorption.hpp): the part of a folded
  /// BatchNorm's output that a Relu always passes moves into the next layer's bias. Not exactly
  /// function-preserving (values below mean - 3 stddev, zero-padded borders).
  bool absorb_high_bias = false;
  /// SmoothQuant's migration strength for MatMul/Gemm activations with outlier channels
  /// (recover/smooth_quant.hpp); NaN: off.
  double smooth_quant_alpha = std::numeric_limits<double>::quiet_NaN();
  /// SmoothQuant with alpha chosen per activation from a grid by its consumers' quantized output
  /// error (recover::choose_alphas); on even when smooth_quant_alpha is NaN.
  bool smooth_quant_search = false;
  bias_correction_options bias_correction;
  /// AdaRound (recover/adaround.hpp): every planned weight not in `weight_params` rounded up or down
  /// to reconstruct its layer's output on the calibration samples, with the scales weight_qparams
  /// chooses. Costs minutes on a mobile CNN at the default 10000 iterations per layer.
  bool adaround = false;
  recover::adaround_options adaround_options;
  /// Run passes::standard_passes first (models exported with weights in Constant nodes or with
  /// BatchNormalization need it; a model already prepared is left as it is).
  bool preprocess = true;
  /// Per-tensor overrides of the calibrated range (float model names).
  std::map<std::string, calib::range> range_overrides;
  /// Per-tensor activation types (int8, uint8, int16, uint16; 16-bit needs opset 21).
  std::map<std::string, dtype> type_overrides;
  /// Scales and zero points decided elsewhere (a QAT run's trained parameters, AdaRound), by float
  /// model tensor name: activations skip calibration; weights (initializer names) keep these
  /// qparams and, when `weight_values` has them, these integer values.
  std::map<std::string, qparams> activation_params;
  std::map<std::string, qparams> weight_params;
  std::map<std::string, std::shared_ptr<const tensor>> weight_values;
  /// Ranges to use instead of calibrating (tensors missing from it are an error, or calibrated
  /// with `calibrate_missing`). Not owned.
  const calib::calibration_table* table = nullptr;
  bool calibrate_missing = false;
  /// Called after each calibration batch.
  std::function<void(const calib::calibrate_progress&)> progress;
};

/// One quantized activation in the report.
struct quantized_tensor {
  std::string name;      ///< the float model's tensor
  std::string range_of;  ///< where its range came from (an absorbed Relu's output, itself, ...)
  std::string shared_with;
  std::string method;  ///< "minmax", "entropy", ..., "override", "table", "fixed", "given", "shared"
  calib::range range;
  dtype type = dtype::uint8;
  float scale = 1.f;
  std::int32_t zero_point = 0;
  /// With select_ranges: every method's range and error, best first.
  std::vector<range_candidate> candidates;
};

struct quantize_report {
  std::string profile;
  std::int64_t opset_before = 0;  ///< the model's opset as given
  passes::upgrade_report upgrade;  ///< what the opset upgrade did (nothing when none was needed)
  passes::standard_report preprocess;
  recover::equalize_report equalization;  ///< empty unless quantize_options::equalize
  recover::absorption_report absorption;   ///< empty unless quantize_options::absorb_high_bias
  bias_correction_report bias_correction;  ///< empty unless quantize_options::correct_bias
  recover::smooth_quant_report smoothing;  ///< empty unless quantize_options::smooth_quant_alpha
  /// With quantize_options::adaround: each layer's result, and the qparams and integer values used
  /// (pass them as weight_params / weight_values to rebuild without optimizing again).
  recover::adaround_result adaround;
  std::map<std::string, qparams> adaround_params;
  qdq_plan plan;
  qdq_insert_report inserted;
  std::vector<quantized_tensor> tensors;
  /// The ranges used (calibrated, or the given table's), for writing with calibration_table's formats.
  calib::calibration_table table;
  std::int64_t calibration_samples = 0;
  std::string settings;  ///< what went into the metadata entry
};

namespace detail {

/// Gives every node a name that is unique in the model: plans refer to nodes by name, and exported
/// models sometimes leave names empty or repeat them.
inline void name_all_nodes(graph& g) {
  std::set<std::string> seen;
  for (node* n : g.nodes()) {
    if (!n->name().empty() && seen.insert(n->name()).second) continue;
    std::string base = n->name().empty() ? n->op_type() : n->name();
    std::string candidate;
    for (int k = 0;; ++k) {
      candidate = base + "_" + std::to_string(k);
      if (!seen.count(candidate)) break;
    }
    n->set_name(candidate);
    seen.insert(candidate);
  }
}

/// The float32 activations of one run on the first sample (graph inputs and node outputs).
inline std::unordered_set<std::string> float_activations(const model& m, data::sample_source& source,
                                                         const runtime::executor_options& eo) {
  if (source.size() < 1) throw_error(errc::invalid_argument, "calibration data", "has no samples");
  runtime::executor ex(m, eo);
  data::batch b = source.read(0, 1);
  std::unordered_map<std::string, const tensor*> feeds;
  for (auto& [name, t] : b) feeds.emplace(name, &t);
  std::unordered_set<std::string> out;
  ex.run(feeds, [&](const std::string& name, const tensor& t) {
    if (t.dtype() == dtype::float32) out.insert(name);
  });
  return out;
}

inline std::string settings_text(const quantize_options& o, const std::string& method) {
  const quant_profile& p = o.profile;
  std::string s = "version=" + std::to_string(QUENCH_VERSION_MAJOR) + "." + std::to_string(QUENCH_VERSION_MINOR) + "." +
                  std::to_string(QUENCH_VERSION_PATCH);
  s += ";profile=" + p.name + ";activations=" + to_string(p.activation_type) + (p.activation_symmetric ? "/symmetric" : "/asymmetric");
  s += ";weights=" + to_string(p.weight_type) + (p.weight_symmetric ? "/symmetric" : "/asymmetric");
  s += std::string(";per_channel=") + (p.per_channel ? "1" : "0") + ";bias_int32=" + (p.quantize_bias ? "1" : "0");
  s += ";method=" + method + ";weight_method=" + (o.weights == weight_method::mse ? "mse" : "minmax");
  if (o.equalize) s += ";cle=1";
  if (o.correct_bias) s += ";bias_correction=1";
  if (o.correct_bias_data_free) s += ";bias_correction=data_free";
  if (o.absorb_high_bias) s += ";high_bias_absorption=1";
  if (!std::isnan(o.smooth_quant_alpha)) s += ";smooth_quant_alpha=" + calib::detail::number_text(o.smooth_quant_alpha);
  if (o.smooth_quant_search) s += ";smooth_quant_search=1";
  if (o.adaround) s += ";adaround=1;adaround_iterations=" + std::to_string(o.adaround_options.iterations);
  if (!o.weight_params.empty()) s += ";given_weights=" + std::to_string(o.weight_params.size());
  if (p.block_size) s += ";block_size=" + std::to_string(p.block_size);
  auto list = [&](const char* key, const std::set<std::string>& v) {
    if (v.empty()) return;
    s += std::string(";") + key + "=";
    bool first = true;
    for (const auto& x : v) {
      s += (first ? "" : ",") + x;
      first = false;
    }
  };
  list("op_types", o.placement.op_types);
  list("exclude_nodes", o.placement.exclude_nodes);
  list("exclude_tensors", o.placement.exclude_tensors);
  if (!o.placement.saturation_bounds) s += ";saturation_bounds=0";
  for (const auto& [t, r] : o.range_overrides) s += ";range[" + t + "]=" + calib::detail::number_text(r.min) + "," + calib::detail::number_text(r.max);
  for (const auto& [t, d] : o.type_overrides) s += ";type[" + t + "]=" + to_string(d);
  return s;
}

/// The data source of the weight-only profile, which reads none.
class no_samples final : public data::sample_source {
 public:
  std::int64_t size() const override { return 0; }
  data::batch read(std::int64_t, std::int64_t) override {
    throw_error(errc::invalid_argument, "weight-only quantization", "reads no samples");
  }
};

inline void check_activation_type(dtype t, std::int64_t opset, const std::string& what) {
  const bool eight = t == dtype::int8 || t == dtype::uint8;
  const bool sixteen = t == dtype::int16 || t == dtype::uint16;
  if (!eight && !sixteen && !is_float8(t))
    throw_error(errc::unsupported_dtype, what, "expected int8, uint8, int16, uint16 or a float8 type, found " + to_string(t));
  if (sixteen && opset < 21)
    throw_error(errc::invalid_model, what, to_string(t) + " QuantizeLinear needs opset 21, the model imports " + std::to_string(opset));
  if (is_float8(t) && opset < 19)
    throw_error(errc::invalid_model, what, to_string(t) + " QuantizeLinear needs opset 19, the model imports " + std::to_string(opset));
}

}  // namespace detail

/// Quantizes `m` in place (see the header comment) and says what it did.
inline quantize_report quantize_static(model& m, data::sample_source& source, const quantize_options& opt) {
  const quant_profile& profile = opt.profile;
  quantize_report report;
  // Per-channel weights need DequantizeLinear's axis (13).
  std::int64_t needed = std::max<std::int64_t>(profile.min_opset, profile.per_channel ? 13 : 10);
  auto sixteen_bit = [](dtype t) { return t == dtype::int16 || t == dtype::uint16; };
  for (const auto& kv : opt.type_overrides)
    if (sixteen_bit(kv.second)) needed = std::max<std::int64_t>(needed, 21);
  if (profile.placement != qdq_placement::weights && sixteen_bit(profile.activation_type)) needed = std::max<std::int64_t>(needed, 21);
  if (profile.block_size > 0 || is_sub_byte(profile.weight_type) || profile.weight_type == dtype::int16 || profile.weight_type == dtype::uint16)
    needed = std::max<std::int64_t>(needed, 21);
  if (is_float8(profile.activation_type) || is_float8(profile.weight_type)) needed = std::max<std::int64_t>(needed, 19);
  report.opset_before = m.opset();
  if (opt.upgrade_opset && m.opset() > 0 && m.opset() < needed) report.upgrade = passes::upgrade_opset(m, needed);
  const std::int64_t opset = m.opset();
  if (opset < profile.min_opset)
    throw_error(errc::invalid_model, "profile '" + profile.name + "'",
                "needs opset " + std::to_string(profile.min_opset) + " or newer, the model imports " + std::to_string(opset) +
                    " (upgrade it first: quench upgrade)");
  if (profile.placement != qdq_placement::weights) detail::check_activation_type(profile.activation_type, opset, "activations");
  for (const auto& [t, d] : opt.type_overrides) detail::check_activation_type(d, opset, tensor_context(t));
  if (profile.weight_type != dtype::int8 && profile.weight_type != dtype::uint8 && !is_float8(profile.weight_type) &&
      !(is_sub_byte(profile.weight_type) && opset >= 21) &&  // per tensor, per channel (W4A8) or blocked
      !((profile.weight_type == dtype::int16 || profile.weight_type == dtype::uint16) && opset >= 21))
    throw_error(errc::unsupported_dtype, "weights",
                to_string(profile.weight_type) + " weights need " + std::string("opset 21") +
                    " (the model imports " + std::to_string(opset) + ")");
  if (profile.block_size > 0 && opset < 21)
    throw_error(errc::invalid_model, "weights", "blocked DequantizeLinear needs opset 21, the model imports " + std::to_string(opset));

  report.profile = profile.name;
  graph& g = m.main_graph();
  if (opt.preprocess) report.preprocess = passes::standard_passes(g, opset);
  detail::name_all_nodes(g);
  g.topological_sort();
  const bool weights_only = profile.placement == qdq_placement::weights;
  if (opt.correct_bias && opt.correct_bias_data_free)
    throw_error(errc::invalid_argument, "bias correction", "choose empirical or data-free bias correction, not both");
  if (opt.correct_bias && source.size() == 0)
    throw_error(errc::invalid_argument, "bias correction", "measures layer outputs on calibration data: give samples (--data)");
  // The folded BatchNorms' output statistics, for data-free bias correction; equalization
  // rescales the channels they describe.
  passes::batch_norm_statistics bn_stats = report.preprocess.bn_statistics;
  if (opt.equalize) {
    report.equalization = recover::equalize(m);
    std::unordered_map<std::string, const node*> by_name;
    for (const node* n : g.nodes()) by_name.emplace(n->name(), n);
    for (const recover::equalized_pair& e : report.equalization.pairs) {
      auto pn = by_name.find(e.producer);
      const node* producer = pn == by_name.end() ? nullptr : pn->second;
      auto it = producer && producer->output(0) ? bn_stats.find(producer->output(0)->name()) : bn_stats.end();
      if (it == bn_stats.end()) continue;
      if (it->second.mean.size() != e.output_scale.size()) {
        bn_stats.erase(it);
        continue;
      }
      for (std::size_t c = 0; c < e.output_scale.size(); ++c) {
        it->second.mean[c] *= e.output_scale[c];
        it->second.stddev[c] *= std::fabs(e.output_scale[c]);
      }
    }
  }
  if (opt.absorb_high_bias) report.absorption = recover::absorb_high_biases(m, bn_stats);
  if ((!std::isnan(opt.smooth_quant_alpha) || opt.smooth_quant_search) && !weights_only) {
    recover::smooth_quant_options so;
    if (!std::isnan(opt.smooth_quant_alpha)) so.alpha = opt.smooth_quant_alpha;
    so.executor = opt.calibration.executor;
    const auto targets = recover::smooth_quant_targets(m);
    std::vector<recover::alpha_choice> search;
    if (opt.smooth_quant_search) {
      recover::alpha_search_options as;
      as.per_channel_weights = profile.per_channel;
      as.symmetric_activations = profile.activation_symmetric;
      search = recover::choose_alphas(m, source, targets, so, as);
      for (const auto& c : search) so.alphas[c.tensor] = c.alpha;
    }
    const auto stats = recover::activation_channel_absmax(m, source, targets, so);
    report.smoothing = recover::smooth_quant(m, stats, so);
    if (!report.smoothing.activations.empty()) bn_stats.clear();  // it may have rescaled a layer they describe
    report.smoothing.search = std::move(search);
  }

  const auto floats = weights_only ? std::unordered_set<std::string>{} : detail::float_activations(m, source, opt.calibration.executor);
  report.plan = plan_qdq(m, profile, floats, opt.placement);
  const qdq_plan& plan = report.plan;

  // Ranges: the table's, or calibration of exactly the tensors the plan needs.
  std::string method = opt.select_ranges ? "auto" : calib::method_name(opt.calibration.method);
  calib::calibration_table ranges;
  std::map<std::string, std::vector<range_candidate>> candidates;
  std::map<std::string, dtype> type_of;  // calibrated tensor -> the type its activation gets
  for (const planned_activation& a : plan.activations) {
    auto tt = opt.type_overrides.find(a.name);
    type_of[a.range_of] = tt != opt.type_overrides.end() ? tt->second : profile.activation_type;
  }
  // Ranges of `names` from the data: by the error of each method (one signed histogram per
  // tensor, every method's range from it), or by the one method asked for.
  auto calibrate_tensors = [&](const std::vector<std::string>& names) {
    calib::calibrate_options co = opt.calibration;
    co.tensors = names;
    co.per_channel = false;  // QDQ activations take one scale
    co.progress = opt.progress;
    if (!opt.select_ranges) {
      const calib::calibration_result r = calib::calibrate(m, source, co);
      for (const auto& e : r.table.entries()) ranges.add(e);
      return;
    }
    co.method = calib::method::entropy;  // the signed histogram observer
    const calib::calibration_state st = calib::collect(m, source, co);
    for (const std::string& t : names) {
      auto it = st.observers().find(t);
      if (it == st.observers().end()) continue;
      const auto* h = std::get_if<calib::histogram_observer>(&it->second);
      if (!h || h->channels() == 0) continue;  // no finite value: reported below
      auto c = range_candidates(h->histogram(), type_of.at(t), profile.activation_symmetric);
      calib::tensor_calibration e;
      e.name = t;
      e.observer = "histogram";
      e.method = c.front().method;
      e.range = c.front().range;
      e.nonfinite = calib::observer_nonfinite(it->second);
      ranges.add(e);
      candidates[t] = std::move(c);
    }
  };
  std::vector<std::string> wanted;
  std::set<std::string> fixed_roots;  // calibrated tensors whose every activation has fixed qparams
  for (const planned_activation& a : plan.activations)
    if (a.share_with.empty() && opt.activation_params.count(a.name)) fixed_roots.insert(a.range_of);
  for (const planned_activation& a : plan.activations)
    if (a.share_with.empty() && !opt.activation_params.count(a.name)) fixed_roots.erase(a.range_of);
  for (const std::string& t : plan.calibrated_tensors())
    if (!opt.range_overrides.count(t) && !fixed_roots.count(t)) wanted.push_back(t);
  if (weights_only) {
    method = "none";
  } else if (opt.table) {
    method = "table";
    std::vector<std::string> missing;
    for (const std::string& t : wanted) {
      if (const calib::tensor_calibration* e = opt.table->find(t))
        ranges.add(*e);
      else if (opt.calibrate_missing)
        missing.push_back(t);
      else
        throw_error(errc::invalid_argument, tensor_context(t), "is quantized but the calibration table has no range for it");
    }
    if (!missing.empty()) calibrate_tensors(missing);
  } else if (!wanted.empty()) {
    calibrate_tensors(wanted);
    report.calibration_samples = source.size();
  }
  report.table = ranges;

  std::map<std::string, qparams> params;
  for (const planned_activation& a : plan.activations) {
    quantized_tensor qt;
    qt.name = a.name;
    qt.range_of = a.range_of;
    qt.shared_with = a.share_with;
    auto tt = opt.type_overrides.find(a.name);
    qt.type = tt != opt.type_overrides.end() ? tt->second : profile.activation_type;
    if (!a.share_with.empty()) {
      qt.method = "shared";
    } else if (auto fp = opt.activation_params.find(a.name); fp != opt.activation_params.end()) {
      const qparams& p = fp->second;
      if (p.scales.size() != 1)
        throw_error(errc::invalid_argument, tensor_context(a.name), "fixed activation qparams must be per tensor");
      detail::check_activation_type(p.type, opset, tensor_context(a.name));
      params[a.name] = p;
      qt.method = "given";
      const integer_range q = full_range(p.type);
      qt.range = {(q.min - p.zero_point(0)) * static_cast<double>(p.scales[0]), (q.max - p.zero_point(0)) * static_cast<double>(p.scales[0])};
    } else {
      if (a.fixed_unit_range) {
        qt.range = {0.0, 1.0};
        qt.method = "fixed";
      } else if (auto ov = opt.range_overrides.find(a.range_of); ov != opt.range_overrides.end()) {
        qt.range = ov->second;
        qt.method = "override";
      } else if (const calib::tensor_calibration* e = ranges.find(a.range_of)) {
        qt.range = e->range;
        qt.method = method == "auto" || method == "table" ? e->method : method;
        if (qt.method.empty()) qt.method = method;
        if (auto c = candidates.find(a.range_of); c != candidates.end()) qt.candidates = c->second;
      } else {
        // Calibration never saw a finite value of it (every sample NaN, or an empty tensor).
        throw_error(errc::invalid_value, tensor_context(a.range_of), "calibration found no finite values to choose a range from");
      }
      qt.range.min = std::max(qt.range.min, static_cast<double>(a.lower_bound));
      qt.range.max = std::min(qt.range.max, static_cast<double>(a.upper_bound));
      if (qt.range.min > qt.range.max) qt.range.max = qt.range.min;
      range_options ro;
      ro.symmetric = profile.activation_symmetric;
      try {
        params[a.name] = choose_qparams(static_cast<float>(qt.range.min), static_cast<float>(qt.range.max), qt.type, ro);
      } catch (const error& e) {
        throw error(e.code(), tensor_context(a.range_of), e.what());
      }
    }
    report.tensors.push_back(std::move(qt));
  }
  // Shared tensors report their root's parameters.
  std::map<std::string, calib::range> root_range;
  for (const quantized_tensor& qt : report.tensors)
    if (qt.shared_with.empty()) root_range[qt.name] = qt.range;
  for (quantized_tensor& qt : report.tensors) {
    const qparams& p = params.at(qt.shared_with.empty() ? qt.name : qt.shared_with);
    qt.scale = p.scales[0];
    qt.zero_point = p.zero_point(0);
    qt.type = p.type;
    if (!qt.shared_with.empty()) qt.range = root_range.at(qt.shared_with);
  }

  weight_options wo;
  wo.type = profile.weight_type;
  wo.symmetric = profile.weight_symmetric;
  wo.reduce_range = profile.weight_reduce_range;
  wo.method = opt.weights;
  wo.block_size = profile.block_size;
  wo.fixed_params = opt.weight_params;
  wo.fixed_values = opt.weight_values;
  if (opt.adaround) {
    if (profile.block_size > 0) throw_error(errc::invalid_argument, "AdaRound", "blocked weights are not supported; use per-channel weights");
    if (source.size() < 1) throw_error(errc::invalid_argument, "AdaRound", "needs calibration samples");
    std::unordered_map<std::string, const node*> by_name;
    for (const node* n : g.nodes()) by_name.emplace(n->name(), n);
    std::vector<recover::adaround_target> targets;
    for (const planned_weight& pw : plan.weights) {
      const value* w = by_name.at(pw.node)->input(pw.input);
      if (wo.fixed_params.count(w->name()) || report.adaround_params.count(w->name())) continue;
      weight_qparams_options o;
      o.type = wo.type;
      o.symmetric = wo.symmetric;
      o.reduce_range = wo.reduce_range;
      o.method = wo.method;
      o.axis = pw.axis;
      recover::adaround_target t;
      t.node = pw.node;
      t.input = pw.input;
      t.params = weight_qparams(*w->initializer(), o);
      report.adaround_params[w->name()] = t.params;
      targets.push_back(std::move(t));
    }
    recover::adaround_options ao = opt.adaround_options;
    ao.executor = opt.calibration.executor;
    report.adaround = recover::adaround(m, source, targets, ao);
    for (const auto& [name, p] : report.adaround_params) wo.fixed_params[name] = p;
    for (const auto& [name, v] : report.adaround.values) wo.fixed_values[name] = v;
  }
  // Bias correction measures the float layers' output means now, before the model changes.
  std::map<std::string, std::vector<double>> float_means;
  if (opt.correct_bias) {
    std::vector<std::string> outputs;
    std::unordered_map<std::string, const node*> by_name;
    for (const node* n : g.nodes()) by_name.emplace(n->name(), n);
    for (const std::string& name : plan.quantized_nodes) {
      const node* n = by_name.at(name);
      if ((n->is("Conv") || n->is("ConvTranspose") || n->is("Gemm")) && n->output(0)) outputs.push_back(n->output(0)->name());
    }
    bias_correction_options bo = opt.bias_correction;
    bo.executor = opt.calibration.executor;
    float_means = layer_output_means(m, source, outputs, bo);
  }
  kernel_sums float_sums;
  if (opt.correct_bias_data_free) {
    std::vector<std::string> layers;
    std::unordered_map<std::string, const node*> by_name;
    for (const node* n : g.nodes()) by_name.emplace(n->name(), n);
    for (const planned_weight& pw : plan.weights)
      if (pw.input == 1 && (by_name.at(pw.node)->is("Conv") || by_name.at(pw.node)->is("Gemm"))) layers.push_back(pw.node);
    float_sums = layer_kernel_sums(m, layers);
  }
  report.inserted = insert_qdq(m, plan, params, wo);
  if (opt.correct_bias_data_free) report.bias_correction = correct_biases_data_free(m, float_sums, bn_stats, profile.quantize_bias);
  if (opt.correct_bias) {
    bias_correction_options bo = opt.bias_correction;
    bo.executor = opt.calibration.executor;
    bo.add_int32_bias = profile.quantize_bias;
    report.bias_correction = correct_biases(m, float_means, source, bo);
  }
  report.settings = detail::settings_text(opt, method);
  for (auto it = m.metadata_props.begin(); it != m.metadata_props.end();)
    it = it->first == "quench.quantize" ? m.metadata_props.erase(it) : it + 1;
  m.metadata_props.emplace_back("quench.quantize", report.settings);
  return report;
}

/// The weight-only profile needs no data: weights become integer + DequantizeLinear.
///
///     auto opt = quench::pipeline::quantize_options{};
///     opt.profile = quench::pipeline::profile_by_name("weight-only");
///     quench::pipeline::quantize_static(m, opt);
inline quantize_report quantize_static(model& m, const quantize_options& opt) {
  if (opt.profile.placement != qdq_placement::weights)
    throw_error(errc::invalid_argument, "profile '" + opt.profile.name + "'", "quantizes activations and needs calibration data");
  detail::no_samples none;
  return quantize_static(m, none, opt);
}

}  // namespace quench::pipeline
