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

namespace quench_cli {
namespace {

struct quantize_args {
  std::string input, output, profile = "ort";
  data_args data;  // --data / --images and the other data options (data_options.hpp)
  std::vector<std::string> eval_data;
  std::string labels;
  std::string method = "auto", weight_method = "minmax";
  std::string activation_type, weight_type;
  bool cle = false, bias_correction = false;
  bool per_tensor = false, symmetric_activations = false, no_bias = false, no_preprocess = false, quiet = false;
  std::int64_t block_size = 0;
  std::vector<std::string> exclude, exclude_tensors, op_types, ranges, types;
  std::string stats, report, tables;
  double target_sqnr = NAN, smooth_quant = NAN;
  int max_fallback = -1;
  std::int64_t report_samples = 8, batch = 8, show = 5;
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
  if (!a.activation_type.empty()) opt.profile.activation_type = parse_type(a.activation_type, "--activation-type");
  if (a.symmetric_activations) opt.profile.activation_symmetric = true;
  if (!a.weight_type.empty()) opt.profile.weight_type = parse_type(a.weight_type, "--weight-type");
  if (a.block_size) opt.profile.block_size = a.block_size;
  if (a.no_bias) opt.profile.quantize_bias = false;
  opt.preprocess = !a.no_preprocess;
  opt.equalize = a.cle;
  opt.correct_bias = a.bias_correction;
  opt.smooth_quant_alpha = a.smooth_quant;
  opt.placement.exclude_nodes = std::set<std::string>(a.exclude.begin(), a.exclude.end());
  opt.placement.exclude_tensors = std::set<std::string>(a.exclude_tensors.begin(), a.exclude_tensors.end());
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
  fo.evaluation.samples = a.report_samples;
  fo.evaluation.executor.threads = a.threads;
  if (!a.quiet && ::isatty(2))
    fo.progress = [](const std::string& layer, double db, std::size_t done, std::size_t total) {
      std::fprintf(stderr, "\rsensitivity %zu/%zu: %s alone in float -> %s dB          ", done, total, layer.c_str(), db_text(db).c_str());
      if (done == total) std::fprintf(stderr, "\n");
    };

  quench::pipeline::fallback_result r;
  if (weights_only && !measure) {
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
  if (!rep.smoothing.activations.empty())
    std::printf("SmoothQuant: %zu activations smoothed\n", rep.smoothing.activations.size());
  if (!rep.bias_correction.layers.empty()) {
    double largest = 0;
    for (const auto& l : rep.bias_correction.layers) largest = std::max(largest, l.max_shift);
    std::printf("bias correction: %zu layers in %d passes (largest shift %.4g)\n", rep.bias_correction.layers.size(), rep.bias_correction.passes,
                largest);
  }
  std::printf("%s: %zu activations, %zu weights, %zu int32 biases quantized; %zu Relu/Clip absorbed; %zu layer(s) kept in float\n",
              rep.profile.c_str(), rep.inserted.activations.size(), rep.inserted.weights.size(), rep.inserted.biases.size(),
              rep.plan.absorbed.size(), r.fell_back.size());
  std::printf("model: %s %ju bytes -> %s %ju bytes (%.2fx); weights %zu -> %zu bytes\n", a.input.c_str(), static_cast<std::uintmax_t>(in_size),
              a.output.c_str(), static_cast<std::uintmax_t>(out_size), static_cast<double>(in_size) / static_cast<double>(out_size),
              rep.inserted.weight_bytes_before, rep.inserted.weight_bytes_after);
  if (rep.inserted.bias_overflows) std::printf("warning: %zu bias values clipped to the int32 range\n", rep.inserted.bias_overflows);

  if (measure) {
    std::printf("error on %lld sample(s): output SQNR %s dB", static_cast<long long>(r.errors.samples), db_text(r.errors.output_sqnr_db()).c_str());
    if (!r.fell_back.empty()) std::printf(" (%s dB before fallback)", db_text(r.initial_sqnr_db).c_str());
    std::printf("\n");
    if (!r.fell_back.empty()) {
      std::printf("kept in float (most sensitive first):\n");
      for (std::size_t i = 0; i < r.fell_back.size(); ++i)
        std::printf("  %-40s output SQNR then %s dB\n", r.fell_back[i].c_str(), db_text(r.sqnr_after[i]).c_str());
    }
    if (!std::isnan(a.target_sqnr) && !r.target_met)
      std::printf("warning: target %.2f dB not met with %zu layer(s) in float\n", a.target_sqnr, r.fell_back.size());
    const std::size_t shown = std::min<std::size_t>(r.errors.tensors.size(), static_cast<std::size_t>(std::max<std::int64_t>(a.show, 0)));
    if (shown) {
      std::printf("worst %zu of %zu quantized tensors:\n  %-44s %9s %9s %12s\n", shown, r.errors.tensors.size(), "tensor", "SQNR dB", "cosine",
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
      kept.push_back({{"node", r.fell_back[i]}, {"output_sqnr_db_after", json_number(r.sqnr_after[i])}});
    fb["kept_in_float"] = kept;
    nlohmann::json sens = nlohmann::json::array();
    for (const auto& s : r.sensitivity)
      sens.push_back({{"node", s.node}, {"op_type", s.op_type}, {"output_sqnr_db_alone_in_float", json_number(s.sqnr_db)}});
    fb["sensitivity"] = sens;
    j["fallback"] = fb;
    if (!std::isnan(acc_float)) j["top1"] = {{"float", acc_float}, {"quantized", acc_quant}};
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
  cmd->add_option("--activation-type", a.activation_type, "override the profile's activation type (uint8, int8, ...)");
  cmd->add_flag("--symmetric-activations", a.symmetric_activations, "symmetric activation ranges (zero point 0 for int8)");
  cmd->add_option("--weight-type", a.weight_type, "override the profile's weight type (int8, uint8, int4, uint4 with --block-size)");
  cmd->add_option("--block-size", a.block_size, "blocked weights (weight-only int4/uint4, opset 21): elements per block");
  cmd->add_flag("--float-bias", a.no_bias, "keep biases in float (no int32 bias DequantizeLinear)");
  cmd->add_flag("--cle", a.cle, "cross-layer equalization of Conv/Gemm pairs before quantizing (helps per-tensor weights most)");
  cmd->add_flag("--bias-correction", a.bias_correction, "correct each quantized Conv/Gemm's bias so its output means match the float model's");
  cmd->add_option("--smooth-quant", a.smooth_quant, "SmoothQuant with this alpha (e.g. 0.5) for MatMul/Gemm activations with outlier channels");
  cmd->add_flag("--no-preprocess", a.no_preprocess, "skip the clean-up passes (constants, BatchNorm folding, ...)");
  cmd->add_option("--exclude", a.exclude, "node names to keep in float");
  cmd->add_option("--exclude-tensor", a.exclude_tensors, "tensor names never to quantize");
  cmd->add_option("--op-types", a.op_types, "quantize only nodes of these op types")->delimiter(',');
  cmd->add_option("--range", a.ranges, "TENSOR=MIN,MAX: use this range instead of the calibrated one");
  cmd->add_option("--type", a.types, "TENSOR=TYPE: quantize this activation to another type (e.g. int16, opset 21)");
  cmd->add_option("--stats", a.stats, "ranges from a file instead of calibrating: quench calibrate/merge output, an ORT calibration JSON or a TensorRT cache")
      ->check(CLI::ExistingFile);
  cmd->add_option("--save-table", a.tables, "write the ranges used as a quench calibration table (JSON)");
  cmd->add_option("--report", a.report, "write the per-tensor error report (JSON)");
  cmd->add_option("--report-samples", a.report_samples, "samples for the error report and fallback")->capture_default_str();
  cmd->add_option("--show", a.show, "tensors listed in the summary (worst SQNR first)")->capture_default_str();
  cmd->add_option("--target-sqnr", a.target_sqnr, "keep the most sensitive layers in float until the output SQNR reaches this (dB)");
  cmd->add_option("--max-fallback", a.max_fallback, "at most this many layers in float");
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
