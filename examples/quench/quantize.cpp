// quench quantize IN.onnx -o OUT.onnx --data NAME=FILE.npy ... [--profile ort|tensorrt|weight-only|fp8]
//                 [--method minmax|entropy|percentile|mse] [--weight-method minmax|mse] [--per-tensor]
//                 [--exclude NODE ...] [--exclude-tensor T ...] [--op-types Conv,MatMul,...]
//                 [--range T=MIN,MAX ...] [--type T=int16 ...] [--stats FILE] [--report report.json]
//                 [--target-sqnr DB] [--max-fallback K] [--eval-data NAME=FILE.npy ... --labels FILE.npy]
//
// Post-training quantization to an ONNX QDQ model (quench/pipeline/quantize_static.hpp): the
// clean-up passes, calibration with a progress bar, the profile's Q/DQ placement, then a report
// of the error every quantized tensor carries (SQNR, cosine, max error; worst first), optional
// fallback of the most sensitive layers to float, and top-1 accuracy when labels are given.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli_io.hpp"
#include "commands.hpp"
#include "data_options.hpp"
#include "progress.hpp"
#include "quench/adapt/npy.hpp"
#include "quench/calib/calibration_state.hpp"
#include "quench/calib/calibration_table.hpp"
#include "quench/core/atomic_file.hpp"
#include "quench/data/npy_source.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/fallback.hpp"
#include "quench/pipeline/output_range_selection.hpp"
#include "quench/pipeline/recover_auto.hpp"

namespace quench_cli {
namespace {

struct quantize_args {
  std::string input, output, profile = "ort";
  data_args data;  // --data / --images and the other data options (data_options.hpp)
  std::vector<std::string> eval_data;
  std::string labels;
  std::string method = "auto", weight_method = "minmax";
  std::string activation_type, weight_type;
  bool cle = false, bias_correction = false, bias_correction_data_free = false, absorb_bias = false;
  bool per_tensor = false, reduce_range = false, symmetric_activations = false, no_bias = false, no_preprocess = false, quiet = false;
  bool no_saturation_bounds = false;
  std::int64_t block_size = 0;
  std::vector<std::string> exclude, exclude_tensors, op_types, ranges, types;
  std::string stats, report, tables;
  double target_sqnr = NAN;
  std::string smooth_quant;
  int max_fallback = -1, max_float = -1;
  bool int16 = false, adaround = false;
  std::int64_t adaround_iterations = 10000;
  std::string recover = "none", select = "mse";
  std::int64_t report_samples = 0, batch = 8, show = 5;  // report_samples 0: 8, or 32 with --recover auto
  std::size_t num_bins = 2048, num_quantized_bins = 128;
  double percentile = 99.999;
  int threads = 1;
};

/// "T=A,B" pairs of --range.
std::map<std::string, quench::calib::range> parse_ranges(const std::vector<std::string>& specs) {
  std::map<std::string, quench::calib::range> out;
  for (const auto& s : specs) {
    const auto eq = s.rfind('=');
    const auto comma = s.rfind(',');
    bool ok = eq != std::string::npos && eq > 0 && comma != std::string::npos && comma > eq;
    quench::calib::range r{};
    if (ok) {
      try {
        std::size_t used = 0;
        r.min = std::stod(s.substr(eq + 1, comma - eq - 1), &used);
        ok = used == comma - eq - 1;
        r.max = std::stod(s.substr(comma + 1), &used);
        ok = ok && used == s.size() - comma - 1 && std::isfinite(r.min) && std::isfinite(r.max) && r.min <= r.max;
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) throw quench::error(quench::errc::invalid_argument, "--range '" + s + "'", "expected TENSOR=MIN,MAX with finite MIN <= MAX");
    out[s.substr(0, eq)] = r;
  }
  return out;
}

quench::dtype parse_type(const std::string& s, const std::string& what) {
  static const std::map<std::string, quench::dtype> names{
      {"int8", quench::dtype::int8},   {"uint8", quench::dtype::uint8}, {"int16", quench::dtype::int16},
      {"uint16", quench::dtype::uint16}, {"int4", quench::dtype::int4},  {"uint4", quench::dtype::uint4},
      {"float8e4m3fn", quench::dtype::float8e4m3fn}, {"fp8", quench::dtype::float8e4m3fn}, {"float8e5m2", quench::dtype::float8e5m2}};
  auto it = names.find(s);
  if (it == names.end())
    throw quench::error(quench::errc::invalid_argument, what + " '" + s + "'", "expected int8, uint8, int16, uint16, int4, uint4, float8e4m3fn or float8e5m2");
  return it->second;
}

/// Ranges from `quench calibrate`/`merge` (state or table JSON), ONNX Runtime's calibration
/// JSON, or a TensorRT calibration cache, told apart by their content.
quench::calib::calibration_table read_stats(const std::string& path) {
  const std::string text = read_text(path);
  const std::string what = "'" + path + "'";
  if (text.rfind("TRT-", 0) == 0) return quench::calib::read_tensorrt_cache(text).table;
  if (text.find("\"quench.calibration_state\"") != std::string::npos)
    return quench::calib::compute_ranges(quench::calib::calibration_state::from_json(text, what));
  if (text.find("\"quench.calibration_table\"") != std::string::npos) return quench::calib::read_json(text, what);
  return quench::calib::read_ort_table(text);
}

std::string db_text(double v) {
  char buf[32];
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

double json_number(double v) { return std::isfinite(v) ? v : (v > 0 ? 1e308 : -1e308); }

/// Top-1 accuracy of output 0 over `source`'s samples against integer labels.
double top1(const quench::model& m, quench::data::sample_source& source, const quench::tensor& labels, int threads) {
  quench::runtime::executor_options eo;
  eo.threads = threads;
  quench::runtime::executor ex(m, eo);
  const std::int64_t n = source.size();
  if (labels.rank() != 1 || labels.shape()[0] != n)
    throw quench::error(quench::errc::shape_mismatch, "--labels", "expected " + std::to_string(n) + " labels (one per evaluation sample), found shape " +
                                                                    quench::to_string(labels.shape()));
  auto label = [&](std::int64_t i) -> std::int64_t {
    switch (labels.dtype()) {
      case quench::dtype::int64: return labels.view<std::int64_t>()[static_cast<std::size_t>(i)];
      case quench::dtype::int32: return labels.view<std::int32_t>()[static_cast<std::size_t>(i)];
      default: throw quench::error(quench::errc::unsupported_dtype, "--labels", "expected int64 or int32 labels, found " + quench::to_string(labels.dtype()));
    }
  };
  std::int64_t correct = 0;
  for (std::int64_t first = 0; first < n; first += 64) {
    const std::int64_t count = std::min<std::int64_t>(64, n - first);
    auto b = source.read(first, count);
    std::unordered_map<std::string, const quench::tensor*> feeds;
    for (auto& [name, t] : b) feeds.emplace(name, &t);
    auto out = ex.run(feeds);
    const quench::tensor& y = out.at(0);
    if (y.dtype() != quench::dtype::float32 || y.rank() != 2 || y.shape()[0] != count)
      throw quench::error(quench::errc::shape_mismatch, "output 0", "expected float32 [batch, classes] logits for --labels, found " + quench::to_string(y.shape()));
    const auto v = y.view<float>();
    const std::int64_t classes = y.shape()[1];
    for (std::int64_t i = 0; i < count; ++i) {
      const float* row = v.data() + i * classes;
      const std::int64_t arg = std::max_element(row, row + classes) - row;
      correct += arg == label(first + i);
    }
  }
  return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

void run_quantize(const quantize_args& a) {
  const auto t0 = std::chrono::steady_clock::now();
  quench::pipeline::quantize_options opt;
  opt.profile = quench::pipeline::profile_by_name(a.profile);
  if (a.per_tensor) opt.profile.per_channel = false;
  if (a.reduce_range) opt.profile.weight_reduce_range = true;
  if (!a.activation_type.empty()) opt.profile.activation_type = parse_type(a.activation_type, "--activation-type");
  if (a.symmetric_activations) opt.profile.activation_symmetric = true;
  if (!a.weight_type.empty()) opt.profile.weight_type = parse_type(a.weight_type, "--weight-type");
  if (a.block_size) opt.profile.block_size = a.block_size;
  if (a.no_bias) opt.profile.quantize_bias = false;
  opt.preprocess = !a.no_preprocess;
  opt.equalize = a.cle;
  opt.correct_bias = a.bias_correction;
  opt.correct_bias_data_free = a.bias_correction_data_free;
  opt.absorb_high_bias = a.absorb_bias;
  if (a.smooth_quant == "auto") {
    opt.smooth_quant_search = true;
  } else if (!a.smooth_quant.empty()) {
    std::size_t used = 0;
    try {
      opt.smooth_quant_alpha = std::stod(a.smooth_quant, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != a.smooth_quant.size() || !(opt.smooth_quant_alpha >= 0 && opt.smooth_quant_alpha <= 1))
      throw quench::error(quench::errc::invalid_argument, "--smooth-quant '" + a.smooth_quant + "'", "expected an alpha in [0, 1] or auto");
  }
  opt.placement.exclude_nodes = std::set<std::string>(a.exclude.begin(), a.exclude.end());
  opt.placement.exclude_tensors = std::set<std::string>(a.exclude_tensors.begin(), a.exclude_tensors.end());
  opt.placement.saturation_bounds = !a.no_saturation_bounds;
  opt.placement.op_types = std::set<std::string>(a.op_types.begin(), a.op_types.end());
  opt.range_overrides = parse_ranges(a.ranges);
  for (const auto& s : a.types) {
    const auto eq = s.rfind('=');
    if (eq == std::string::npos || eq == 0) throw quench::error(quench::errc::invalid_argument, "--type '" + s + "'", "expected TENSOR=TYPE");
    opt.type_overrides[s.substr(0, eq)] = parse_type(s.substr(eq + 1), "--type");
  }
  opt.select_ranges = a.method == "auto";
  if (!opt.select_ranges) opt.calibration.method = quench::calib::parse_method(a.method);
  opt.calibration.batch_size = a.batch;
  opt.calibration.num_bins = a.num_bins;
  opt.calibration.num_quantized_bins = a.num_quantized_bins;
  opt.calibration.percentile = a.percentile;
  opt.calibration.executor.threads = a.threads;
  opt.weights = quench::pipeline::parse_weight_method(a.weight_method);
  opt.adaround = a.adaround && a.recover != "auto";  // --recover auto runs it as one of its steps
  opt.adaround_options.iterations = a.adaround_iterations;
  if (a.adaround && !a.quiet && ::isatty(2))
    opt.adaround_options.progress = [](const quench::recover::adaround_progress& p) {
      if (p.iteration % 500 != 0 && p.iteration != p.iterations) return;
      std::fprintf(stderr, "\rAdaRound layer %zu/%zu %-28s %6lld/%lld  loss %.4g   ", p.layer + 1, p.layers, p.name.c_str(),
                   static_cast<long long>(p.iteration), static_cast<long long>(p.iterations), p.loss);
      if (p.layer + 1 == p.layers && p.iteration == p.iterations) std::fprintf(stderr, "\n");
    };
  quench::calib::calibration_table stats;
  if (!a.stats.empty()) {
    stats = read_stats(a.stats);
    opt.table = &stats;
  }
  if (!a.quiet && ::isatty(2)) opt.progress = show_progress;

  const bool weights_only = opt.profile.placement == quench::pipeline::qdq_placement::weights;
  if (!weights_only && a.data.empty())
    throw quench::error(quench::errc::invalid_argument, "profile '" + a.profile + "'", "calibrates activations: give --data [NAME=]PATH or --images DIR");
  // Each trial gets its own copy of the float model: loading maps external data instead of
  // copying it, and works past protobuf's 2 GiB (a serialized copy would not).
  auto load_float = [&] { return quench::onnx::load_model(a.input); };
  std::unique_ptr<quench::data::sample_source> calib, eval;
  if (!a.data.empty()) calib = open_source(a.data, load_float());
  if (!a.eval_data.empty()) eval = open_eval_source(a.eval_data, a.data, load_float());
  quench::data::sample_source* measure = eval ? eval.get() : calib.get();

  quench::pipeline::fallback_options fo;
  fo.target_sqnr_db = a.target_sqnr;
  fo.max_fallback = a.max_fallback;
  // --recover auto chooses its steps and ranges on these samples: on 8 it kept range choices that
  // only those 8 liked (openWakeWord: 28.2 dB on them, 26.1 dB on held-out clips; 32: 27.7, 26.5).
  fo.evaluation.samples = a.report_samples > 0 ? a.report_samples : a.recover == "auto" ? 32 : 8;
  fo.evaluation.executor.threads = a.threads;
  if (!a.quiet && ::isatty(2))
    fo.progress = [](const std::string& layer, double db, std::size_t done, std::size_t total) {
      std::fprintf(stderr, "\rsensitivity %zu/%zu: %s alone in float -> %s dB          ", done, total, layer.c_str(), db_text(db).c_str());
      if (done == total) std::fprintf(stderr, "\n");
    };

  fo.try_int16 = a.int16;
  fo.max_float = a.max_float;
  const bool interactive = !a.quiet && ::isatty(2);

  // --select output: each activation's range method by the model output, then used as a table.
  quench::pipeline::output_selection_result selection;
  if (a.select == "output") {
    if (!opt.select_ranges || opt.table || weights_only || !calib)
      throw quench::error(quench::errc::invalid_argument, "--select output",
                          "chooses among calibrated candidates: needs --method auto, --data and no --stats");
    quench::pipeline::output_selection_options so;
    so.evaluation = fo.evaluation;
    if (interactive)
      so.progress = [](const std::string& t, std::size_t done, std::size_t total) {
        std::fprintf(stderr, "\rrange by output %zu/%zu: %-40s", done, total, t.c_str());
        if (done == total) std::fprintf(stderr, "\n");
      };
    selection = quench::pipeline::select_ranges_by_output(load_float, *calib, *measure, opt, so);
    opt.table = &selection.table;
    std::printf("ranges by output SQNR: %zu of %zu activations changed method, output SQNR %s -> %s dB (%zu trials)\n", selection.changed_methods(),
                selection.choices.size(), db_text(selection.sqnr_before_db).c_str(), db_text(selection.sqnr_after_db).c_str(), selection.trials);
  }

  quench::pipeline::fallback_result r;
  std::vector<quench::pipeline::recover_step> steps;
  double recover_float_metric = NAN;
  if (a.recover == "auto") {
    if (weights_only || !calib)
      throw quench::error(quench::errc::invalid_argument, "--recover auto", "needs a profile that quantizes activations and --data");
    quench::pipeline::recover_options ro;
    ro.fallback = fo;
    // TensorRT has no 16-bit activations; elsewhere 16 bits are tried before float.
    ro.fallback.try_int16 = a.profile != "tensorrt";
    ro.fallback.progress = nullptr;
    ro.evaluation = fo.evaluation;
    ro.adaround = a.adaround;
    ro.adaround_options = opt.adaround_options;
    std::unique_ptr<quench::tensor> labels;
    if (!a.labels.empty() && eval) {
      labels = std::make_unique<quench::tensor>(quench::read_npy(a.labels));
      ro.metric = [&](const quench::model& m) { return top1(m, *eval, *labels, a.threads); };
    }
    if (interactive) ro.progress = [](const std::string& step) { std::fprintf(stderr, "recover: %s ...\n", step.c_str()); };
    auto rr = quench::pipeline::quantize_recover_auto(load_float, *calib, *measure, opt, ro);
    r.quantized = std::move(rr.quantized);
    r.report = std::move(rr.report);
    r.errors = std::move(rr.errors);
    r.initial_sqnr_db = rr.plain_sqnr_db;
    steps = std::move(rr.steps);
    recover_float_metric = rr.float_metric;
    if (!steps.empty() && steps.back().name == "mixed precision" && steps.back().kept) {
      r.fell_back = rr.fallback.fell_back;
      r.precision = rr.fallback.precision;
      r.sqnr_after = rr.fallback.sqnr_after;
      r.int16_tensors = rr.fallback.int16_tensors;
      r.sensitivity = rr.fallback.sensitivity;
      r.target_met = rr.fallback.target_met;
    } else {
      r.target_met = std::isnan(a.target_sqnr) || r.errors.output_sqnr_db() >= a.target_sqnr;
    }
  } else if (weights_only && !measure) {
    r.quantized = load_float();
    r.report = quench::pipeline::quantize_static(r.quantized, opt);
  } else {
    r = quench::pipeline::quantize_with_fallback(load_float, calib ? *calib : *measure, *measure, opt, fo);
  }
  quench::onnx::save_model(r.quantized, a.output);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto& rep = r.report;
  const auto in_size = std::filesystem::file_size(a.input), out_size = std::filesystem::file_size(a.output);
  if (rep.opset_before != r.quantized.opset())
    std::printf("opset %lld -> %lld (the profile needs it): %zu nodes rewritten, %zu moved\n", static_cast<long long>(rep.opset_before),
                static_cast<long long>(r.quantized.opset()), rep.upgrade.rewrites, rep.upgrade.moved);
  if (!rep.equalization.pairs.empty())
    std::printf("cross-layer equalization: %zu layer pairs in %d passes\n", rep.equalization.pairs.size(), rep.equalization.passes);
  if (!rep.smoothing.activations.empty()) {
    std::printf("SmoothQuant: %zu activations smoothed\n", rep.smoothing.activations.size());
    for (const auto& c : rep.smoothing.search) std::printf("  %-40s alpha %.1f (searched)\n", c.tensor.c_str(), c.alpha);
  }
  if (!rep.adaround.layers.empty()) {
    std::size_t flipped = 0, elements = 0;
    double seconds_ar = 0, nearest = 0, learned = 0;
    for (const auto& l : rep.adaround.layers) {
      flipped += l.flipped, elements += l.elements, seconds_ar += l.seconds;
      nearest += l.mse_nearest, learned += l.mse_adaround;
    }
    std::printf("AdaRound: %zu layers in %.1f s, %zu of %zu weights rounded the other way; layer output MSE %.4g -> %.4g (sum)\n",
                rep.adaround.layers.size(), seconds_ar + rep.adaround.collect_seconds, flipped, elements, nearest, learned);
  }
  if (!rep.absorption.pairs.empty()) {
    double largest = 0;
    for (const auto& p : rep.absorption.pairs) largest = std::max(largest, p.largest);
    std::printf("high-bias absorption: %zu layer pairs (largest shift %.4g)\n", rep.absorption.pairs.size(), largest);
  }
  if (!rep.bias_correction.layers.empty()) {
    double largest = 0;
    for (const auto& l : rep.bias_correction.layers) largest = std::max(largest, l.max_shift);
    if (rep.bias_correction.data_free)
      std::printf("data-free bias correction: %zu layers from BatchNorm statistics (largest shift %.4g)\n", rep.bias_correction.layers.size(),
                  largest);
    else
      std::printf("bias correction: %zu layers in %d passes (largest shift %.4g)\n", rep.bias_correction.layers.size(), rep.bias_correction.passes,
                  largest);
  }
  const std::size_t widened_16 = static_cast<std::size_t>(std::count(r.precision.begin(), r.precision.end(), "int16"));
  const std::size_t in_float = r.fell_back.size() - std::min(widened_16, r.fell_back.size());
  std::printf("%s: %zu activations, %zu weights, %zu int32 biases quantized; %zu Relu/Clip absorbed; %zu layer(s) kept in float",
              rep.profile.c_str(), rep.inserted.activations.size(), rep.inserted.weights.size(), rep.inserted.biases.size(),
              rep.plan.absorbed.size(), in_float);
  if (widened_16) std::printf(", %zu with 16-bit inputs", widened_16);
  std::printf("\n");
  std::printf("model: %s %ju bytes -> %s %ju bytes (%.2fx); weights %zu -> %zu bytes\n", a.input.c_str(), static_cast<std::uintmax_t>(in_size),
              a.output.c_str(), static_cast<std::uintmax_t>(out_size), static_cast<double>(in_size) / static_cast<double>(out_size),
              rep.inserted.weight_bytes_before, rep.inserted.weight_bytes_after);
  if (rep.inserted.bias_overflows) std::printf("warning: %zu bias values clipped to the int32 range\n", rep.inserted.bias_overflows);

  if (measure) {
    std::printf("error on %lld sample(s): output SQNR %s dB", static_cast<long long>(r.errors.samples), db_text(r.errors.output_sqnr_db()).c_str());
    if (!r.fell_back.empty() || !steps.empty()) std::printf(" (%s dB plain)", db_text(r.initial_sqnr_db).c_str());
    std::printf("\n");
    if (!steps.empty()) {
      const bool metric = !std::isnan(recover_float_metric);
      std::printf("recovery steps (each kept only if the output SQNR rises):\n  %-26s %9s %8s %8s  %-5s %s\n", "step", "SQNR dB",
                  metric ? "top-1 %" : "", "seconds", "kept", "what it did");
      if (metric) std::printf("  %-26s %9s %8.2f %8s\n", "float", "", 100 * recover_float_metric, "");
      for (const auto& s : steps) {
        char m[32] = "";
        if (metric && !std::isnan(s.metric)) std::snprintf(m, sizeof m, "%.2f", 100 * s.metric);
        std::printf("  %-26s %9s %8s %8.2f  %-5s %s\n", s.name.c_str(), s.ran ? db_text(s.sqnr_db).c_str() : "-", m, s.seconds,
                    !s.ran ? "-" : (s.kept ? "yes" : "no"), s.detail.c_str());
      }
      std::printf("result: %s dB vs %s dB plain%s\n", db_text(r.errors.output_sqnr_db()).c_str(), db_text(r.initial_sqnr_db).c_str(),
                  r.errors.output_sqnr_db() > r.initial_sqnr_db ? "" : " (plain kept: no step helped)");
    }
    if (!r.fell_back.empty()) {
      std::printf("kept in float or given 16-bit inputs (most sensitive first):\n");
      for (std::size_t i = 0; i < r.fell_back.size(); ++i)
        std::printf("  %-40s %-6s output SQNR then %s dB\n", r.fell_back[i].c_str(),
                    i < r.precision.size() ? r.precision[i].c_str() : "float", db_text(r.sqnr_after[i]).c_str());
    }
    if (!std::isnan(a.target_sqnr) && !r.target_met)
      std::printf("warning: target %.2f dB not met with %zu layer(s) widened (%zu in float, %zu with 16-bit inputs)\n", a.target_sqnr,
                  r.fell_back.size(), in_float, widened_16);
    const std::size_t shown = std::min<std::size_t>(r.errors.tensors.size(), static_cast<std::size_t>(std::max<std::int64_t>(a.show, 0)));
    if (shown) {
      std::printf("worst %zu of %zu quantized tensors (against the float tensor within its planned bounds):\n  %-44s %9s %9s %12s\n", shown, r.errors.tensors.size(), "tensor", "SQNR dB", "cosine",
                  "max |err|");
      for (std::size_t i = 0; i < shown; ++i) {
        const auto& t = r.errors.tensors[i];
        std::printf("  %-44s %9s %9.5f %12.5g\n", t.name.c_str(), db_text(t.sqnr_db()).c_str(), t.cosine(), t.max_abs_error);
      }
    }
  }
  double acc_float = NAN, acc_quant = NAN;
  if (!a.labels.empty()) {
    if (!eval) throw quench::error(quench::errc::invalid_argument, "--labels", "needs --eval-data with the samples the labels belong to");
    const quench::tensor labels = quench::read_npy(a.labels);
    acc_float = top1(load_float(), *eval, labels, a.threads);
    acc_quant = top1(r.quantized, *eval, labels, a.threads);
    std::printf("top-1 on %lld samples: float %.2f%%, quantized %.2f%% (%+.2f points)\n", static_cast<long long>(eval->size()), 100 * acc_float,
                100 * acc_quant, 100 * (acc_quant - acc_float));
  }
  std::printf("done in %.2f s\n", seconds);

  if (!a.tables.empty()) {
    write_text(a.tables, quench::calib::write_json(rep.table));
  }
  if (!a.report.empty()) {
    nlohmann::json j;
    j["format"] = "quench.quantize_report";
    j["settings"] = rep.settings;
    j["profile"] = rep.profile;
    j["model_bytes"] = {{"before", in_size}, {"after", out_size}};
    j["weight_bytes"] = {{"before", rep.inserted.weight_bytes_before}, {"after", rep.inserted.weight_bytes_after}};
    j["absorbed"] = rep.plan.absorbed;
    j["quantized_nodes"] = rep.plan.quantized_nodes;
    j["weights"] = rep.inserted.weights;
    j["biases"] = rep.inserted.biases;
    std::map<std::string, const quench::pipeline::tensor_error*> err;
    for (const auto& e : r.errors.tensors) err[e.name] = &e;
    auto stats_json = [](const quench::pipeline::tensor_error& e) {
      return nlohmann::json{{"sqnr_db", json_number(e.sqnr_db())}, {"cosine", e.cosine()}, {"max_abs_error", e.max_abs_error},
                            {"elements", e.elements}, {"nonfinite", e.nonfinite}};
    };
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : rep.tensors) {
      nlohmann::json x{{"name", t.name}, {"range_of", t.range_of}, {"method", t.method}, {"range", {t.range.min, t.range.max}},
                       {"type", quench::to_string(t.type)}, {"scale", t.scale}, {"zero_point", t.zero_point}};
      if (!t.shared_with.empty()) x["shared_with"] = t.shared_with;
      if (!t.candidates.empty()) {
        nlohmann::json c = nlohmann::json::array();
        for (const auto& k : t.candidates) c.push_back({{"method", k.method}, {"range", {k.range.min, k.range.max}}, {"mse", k.error}});
        x["candidates"] = c;
      }
      if (auto it = err.find(t.range_of); it != err.end()) x["error"] = stats_json(*it->second);
      tensors.push_back(x);
    }
    j["tensors"] = tensors;
    auto error_list = [&](const std::vector<quench::pipeline::tensor_error>& errors) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& e : errors) {
        nlohmann::json x = stats_json(e);
        x["name"] = e.name;
        x["compared"] = e.compared;
        list.push_back(x);
      }
      return list;
    };
    j["worst_first"] = error_list(r.errors.tensors);
    j["outputs"] = error_list(r.errors.outputs);
    j["samples"] = r.errors.samples;
    nlohmann::json fb{{"initial_output_sqnr_db", json_number(r.initial_sqnr_db)}, {"target_met", r.target_met}};
    if (!std::isnan(a.target_sqnr)) fb["target_sqnr_db"] = a.target_sqnr;
    nlohmann::json kept = nlohmann::json::array();
    for (std::size_t i = 0; i < r.fell_back.size(); ++i)
      kept.push_back({{"node", r.fell_back[i]}, {"precision", i < r.precision.size() ? r.precision[i] : "float"},
                      {"output_sqnr_db_after", json_number(r.sqnr_after[i])}});
    fb["kept_in_float"] = kept;
    nlohmann::json sens = nlohmann::json::array();
    for (const auto& s : r.sensitivity)
      sens.push_back({{"node", s.node}, {"op_type", s.op_type}, {"output_sqnr_db_alone_in_float", json_number(s.sqnr_db)}});
    fb["sensitivity"] = sens;
    j["fallback"] = fb;
    j["fallback"]["int16_tensors"] = r.int16_tensors;
    if (!std::isnan(acc_float)) j["top1"] = {{"float", acc_float}, {"quantized", acc_quant}};
    if (!steps.empty()) {
      nlohmann::json st = nlohmann::json::array();
      for (const auto& s : steps) {
        nlohmann::json x{{"step", s.name}, {"detail", s.detail}, {"ran", s.ran}, {"kept", s.kept}, {"seconds", s.seconds}};
        if (s.ran) x["output_sqnr_db"] = json_number(s.sqnr_db);
        if (!std::isnan(s.metric)) x["metric"] = s.metric;
        st.push_back(x);
      }
      j["recover"] = {{"steps", st}, {"plain_output_sqnr_db", json_number(r.initial_sqnr_db)}};
    }
    if (!selection.choices.empty()) {
      nlohmann::json ch = nlohmann::json::array();
      for (const auto& c : selection.choices) {
        nlohmann::json by = nlohmann::json::object();
        for (const auto& [m, db] : c.sqnr_db) by[m] = json_number(db);
        ch.push_back({{"tensor", c.tensor}, {"mse_choice", c.mse_method}, {"choice", c.method}, {"output_sqnr_db", by}});
      }
      j["select_output"] = {{"before_db", json_number(selection.sqnr_before_db)}, {"after_db", json_number(selection.sqnr_after_db)},
                            {"choices", ch}};
    }
    write_text(a.report, j.dump(2) + "\n");
  }
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  static quantize_args a;
  auto* cmd = app.add_subcommand("quantize", "Post-training quantization to an ONNX QDQ model (ONNX Runtime, TensorRT, weight-only, FP8)");
  cmd->add_option("model", a.input, "float ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "quantized model")->required();
  add_data_options(cmd, a.data);
  cmd->add_option("--profile,-p", a.profile, "ort, tensorrt, weight-only or fp8")->capture_default_str()->check(
      CLI::IsMember({"ort", "tensorrt", "weight-only", "fp8"}));
  cmd->add_option("--method,-m", a.method,
                  "activation ranges: auto (per tensor, the method with the smallest quantization error), minmax, entropy, percentile or mse")
      ->capture_default_str();
  cmd->add_option("--weight-method", a.weight_method, "weight ranges: minmax or mse (per-channel clipping search)")->capture_default_str();
  cmd->add_flag("--per-tensor", a.per_tensor, "one scale per weight instead of one per output channel");
  cmd->add_flag("--reduce-range", a.reduce_range,
                "7-bit int8 weights ([-64, 64], ORT's reduce_range): for ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI, "
                "whose int16 pair sums saturate with full-range weights");
  cmd->add_option("--activation-type", a.activation_type, "override the profile's activation type (uint8, int8, ...)");
  cmd->add_flag("--symmetric-activations", a.symmetric_activations, "symmetric activation ranges (zero point 0 for int8)");
  cmd->add_option("--weight-type", a.weight_type, "override the profile's weight type (int8, uint8, int4, uint4 with --block-size)");
  cmd->add_option("--block-size", a.block_size, "blocked weights (weight-only int4/uint4, opset 21): elements per block");
  cmd->add_flag("--float-bias", a.no_bias, "keep biases in float (no int32 bias DequantizeLinear)");
  cmd->add_flag("--cle", a.cle, "cross-layer equalization of Conv/Gemm pairs before quantizing (helps per-tensor weights most)");
  cmd->add_flag("--bias-correction", a.bias_correction, "correct each quantized Conv/Gemm's bias so its output means match the float model's");
  cmd->add_flag("--absorb-bias", a.absorb_bias,
                "DFQ high-bias absorption: what a Relu after a folded BatchNorm always passes moves into the next layer's bias (nearly exact)");
  cmd->add_flag("--bias-correction-data-free", a.bias_correction_data_free,
                "correct the biases without data, from the folded BatchNorm statistics before each layer (DFQ); for weight-only models too");
  cmd->add_option("--smooth-quant", a.smooth_quant,
                  "SmoothQuant for MatMul/Gemm activations with outlier channels: an alpha (e.g. 0.5), or auto (alpha searched per layer)");
  cmd->add_flag("--no-preprocess", a.no_preprocess, "skip the clean-up passes (constants, BatchNorm folding, ...)");
  cmd->add_flag("--no-saturation-bounds", a.no_saturation_bounds,
                "calibrated ranges as they are, not narrowed to what the consumers can tell apart (Relu, Clip, Max/Min with a constant, behind LeakyRelu)");
  cmd->add_option("--exclude", a.exclude, "node names to keep in float");
  cmd->add_option("--exclude-tensor", a.exclude_tensors, "tensor names never to quantize");
  cmd->add_option("--op-types", a.op_types, "quantize only nodes of these op types")->delimiter(',');
  cmd->add_option("--range", a.ranges, "TENSOR=MIN,MAX: use this range instead of the calibrated one");
  cmd->add_option("--type", a.types, "TENSOR=TYPE: quantize this activation to another type (e.g. int16, opset 21)");
  cmd->add_option("--stats", a.stats, "ranges from a file instead of calibrating: quench calibrate/merge output, an ORT calibration JSON or a TensorRT cache")
      ->check(CLI::ExistingFile);
  cmd->add_option("--save-table", a.tables, "write the ranges used as a quench calibration table (JSON)");
  cmd->add_option("--report", a.report, "write the per-tensor error report (JSON)");
  cmd->add_option("--report-samples", a.report_samples,
                  "samples for the error report, fallback and --recover auto's choices, spread over the data (default 8; 32 with --recover auto)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--show", a.show, "tensors listed in the summary (worst SQNR first)")->capture_default_str();
  cmd->add_option("--target-sqnr", a.target_sqnr, "keep the most sensitive layers in float until the output SQNR reaches this (dB)");
  cmd->add_option("--max-fallback", a.max_fallback, "at most this many layers widened (int16 inputs or float)");
  cmd->add_flag("--adaround", a.adaround, "AdaRound: learn each weight's rounding (up or down) from the layer outputs on the calibration data");
  cmd->add_option("--adaround-iterations", a.adaround_iterations, "AdaRound iterations per layer")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--int16", a.int16, "mixed precision: try 16-bit activations (opset 21) for a sensitive layer before float");
  cmd->add_option("--max-float", a.max_float, "mixed precision: at most this many layers in float (then only int16)");
  cmd->add_option("--recover", a.recover,
                  "auto: try CLE, MSE weight ranges, bias correction, [AdaRound], mixed precision; keep each only if the output SQNR rises")
      ->capture_default_str()->check(CLI::IsMember({"auto", "none"}));
  cmd->add_option("--select", a.select,
                  "with --method auto: choose each activation's range by its own quantization error (mse) or by the model output SQNR (output)")
      ->capture_default_str()->check(CLI::IsMember({"mse", "output"}));
  cmd->add_option("--eval-data", a.eval_data, "[NAME=]PATH like --data (npy, npz, directory, list, raw, images): samples for the report and accuracy (default: the calibration data)");
  cmd->add_option("--labels", a.labels, "FILE.npy: integer labels of the --eval-data samples; prints top-1 of both models")->check(CLI::ExistingFile);
  cmd->add_option("--batch,-b", a.batch, "calibration samples per run")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--num-bins", a.num_bins, "histogram bins")->capture_default_str();
  cmd->add_option("--num-quantized-bins", a.num_quantized_bins, "entropy: quantized bins")->capture_default_str();
  cmd->add_option("--percentile", a.percentile, "percentile method: the kept percentage")->capture_default_str();
  cmd->add_option("--threads", a.threads, "executor threads (results do not depend on it)")->capture_default_str();
  cmd->add_flag("--quiet,-q", a.quiet, "no progress bar");
  cmd->callback([] { run_quantize(a); });
}

}  // namespace quench_cli
