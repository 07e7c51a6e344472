// quench calibrate MODEL.onnx --data [NAME=]PATH ... | --images DIR ... --method minmax|entropy|percentile|mse
//                  [--per-channel] [--batch B] [--shard K/N] [--samples N --shuffle --seed S --skip-bad]
//                  -o stats.json [--table FILE --format F]
// quench merge stats*.json -o all.json [--table FILE --format F]
//
// calibrate writes the calibration state (observers, exactly mergeable) of its shard; merge adds
// states from any number of shards and writes the merged state. Both can also write the range
// table in quench's JSON, TensorRT's calibration cache, ncnn's table or ONNX Runtime's format.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli_io.hpp"
#include "commands.hpp"
#include "data_options.hpp"
#include "progress.hpp"
#include "quench/calib/calibrate.hpp"
#include "quench/core/atomic_file.hpp"
#include "quench/onnx/model_io.hpp"

namespace quench_cli {
namespace {

struct table_args {
  std::string table;
  std::string format = "json";
};

struct calibrate_args {
  std::string model;
  data_args data;
  std::string method = "minmax";
  bool per_channel = false, symmetric = false, quiet = false;
  std::int64_t batch = 8;
  std::string shard = "0/1";
  std::size_t num_bins = 2048, num_quantized_bins = 128;
  double percentile = 99.999;
  int threads = 1;
  std::string output;
  table_args table;
};

struct merge_args {
  std::vector<std::string> inputs;
  std::string output;
  table_args table;
};

void write_table(const quench::calib::calibration_state& state, const table_args& a) {
  if (a.table.empty()) return;
  const auto table = quench::calib::compute_ranges(state);
  std::string text;
  if (a.format == "json") text = quench::calib::write_json(table);
  else if (a.format == "tensorrt") text = quench::calib::write_tensorrt_cache(table);
  else if (a.format == "ncnn") text = quench::calib::write_ncnn_table(table);
  else if (a.format == "ort") text = quench::calib::write_ort_table(table);
  else throw quench::error(quench::errc::invalid_argument, "--format", "expected json, tensorrt, ncnn or ort, found '" + a.format + "'");
  write_text(a.table, text);
  std::printf("%zu ranges (%s) -> %s\n", table.entries().size(), a.format.c_str(), a.table.c_str());
}

/// "K/N" -> (K, N).
std::pair<int, int> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  try {
    if (slash != std::string::npos) return {std::stoi(s.substr(0, slash)), std::stoi(s.substr(slash + 1))};
  } catch (const std::exception&) {
  }
  throw quench::error(quench::errc::invalid_argument, "--shard '" + s + "'", "expected K/N, e.g. 0/4");
}

void run_calibrate(const calibrate_args& a) {
  const quench::model m = quench::onnx::load_model(a.model);
  const auto source_ptr = open_source(a.data, m);
  quench::data::sample_source& source = *source_ptr;
  quench::calib::calibrate_options opt;
  opt.method = quench::calib::parse_method(a.method);
  opt.per_channel = a.per_channel;
  opt.symmetric = a.symmetric;
  opt.batch_size = a.batch;
  opt.num_bins = a.num_bins;
  opt.num_quantized_bins = a.num_quantized_bins;
  opt.percentile = a.percentile;
  opt.executor.threads = a.threads;
  std::tie(opt.shard_index, opt.shard_count) = parse_shard(a.shard);
  if (!a.quiet && ::isatty(2)) opt.progress = show_progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto state = quench::calib::collect(m, source, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.metadata()["model"] = std::filesystem::path(a.model).filename().string();
  state.metadata()["shard"] = a.shard;
  write_text(a.output, state.to_json());
  std::printf("calibrated %s samples of shard %s in %.2f s: %zu tensors (%s) -> %s\n", state.metadata()["samples"].c_str(),
              a.shard.c_str(), seconds, state.size(), a.method.c_str(), a.output.c_str());
  write_table(state, a.table);
}

void run_merge(const merge_args& a) {
  quench::calib::calibration_state all;
  std::int64_t samples = 0;
  for (const auto& path : a.inputs) {
    auto st = quench::calib::calibration_state::from_json(read_text(path), "'" + path + "'");
    if (auto it = st.metadata().find("samples"); it != st.metadata().end()) samples += std::stoll(it->second);
    st.metadata().erase("shard");
    st.metadata().erase("samples");
    all.merge(st);
  }
  all.metadata()["samples"] = std::to_string(samples);
  write_text(a.output, all.to_json());
  std::printf("merged %zu states (%lld samples): %zu tensors -> %s\n", a.inputs.size(), static_cast<long long>(samples), all.size(),
              a.output.c_str());
  write_table(all, a.table);
}

void add_table_options(CLI::App* cmd, table_args& t) {
  cmd->add_option("--table", t.table, "also write the range table to this file");
  cmd->add_option("--format", t.format, "table format: json, tensorrt, ncnn, ort")->capture_default_str();
}

}  // namespace

void add_calibrate_command(CLI::App& app) {
  static calibrate_args a;
  auto* cmd = app.add_subcommand("calibrate", "Observe a model's activations on calibration data; write the mergeable calibration state");
  cmd->add_option("model", a.model, "ONNX model")->required()->check(CLI::ExistingFile);
  add_data_options(cmd, a.data);
  cmd->add_option("--method,-m", a.method, "minmax, entropy, percentile or mse")->capture_default_str();
  cmd->add_flag("--per-channel", a.per_channel, "per-channel activation ranges (axis 1)");
  cmd->add_flag("--symmetric", a.symmetric, "symmetric ranges (minmax), |x| histogram (percentile)");
  cmd->add_option("--batch,-b", a.batch, "samples per run")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--shard", a.shard, "K/N: calibrate the K-th of N equal parts of the data")->capture_default_str();
  cmd->add_option("--num-bins", a.num_bins, "histogram bins (a power of two)")->capture_default_str();
  cmd->add_option("--num-quantized-bins", a.num_quantized_bins, "entropy: quantized bins")->capture_default_str();
  cmd->add_option("--percentile", a.percentile, "percentile method: the kept percentage")->capture_default_str();
  cmd->add_option("--threads", a.threads, "executor threads (results do not depend on it)")->capture_default_str();
  cmd->add_flag("--quiet,-q", a.quiet, "no progress bar");
  cmd->add_option("--output,-o", a.output, "calibration state (JSON)")->required();
  add_table_options(cmd, a.table);
  cmd->callback([] { run_calibrate(a); });
}

void add_merge_command(CLI::App& app) {
  static merge_args a;
  auto* cmd = app.add_subcommand("merge", "Merge calibration states of shards exactly into one");
  cmd->add_option("states", a.inputs, "calibration states written by quench calibrate")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "merged calibration state (JSON)")->required();
  add_table_options(cmd, a.table);
  cmd->callback([] { run_merge(a); });
}

}  // namespace quench_cli
