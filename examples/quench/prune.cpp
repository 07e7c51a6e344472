// quench prune IN.onnx -o OUT.onnx --amount 0.3 [--structured [--dim 0] [--norm 2]] [--global] [--random [--seed S]]
//              [--remove-channels | --silence-channels] [--round-to 8] [--exclude NAME ...] [--op-type OP ...] [--report r.json]
//              [--data NAME=FILE.npy ...] [--samples N] [--no-check]
//
// Pruning with quench/pipeline/prune.hpp, masks as torch.nn.utils.prune computes them. --amount
// is a count when written as an integer ("7") and a fraction when written with a point or an
// exponent ("0.3", "1.0"), as torch tells an int from a float. Unstructured L1 per weight by
// default; --global ranks all weights together; --random picks at random (seeded);
// --structured prunes whole slices by Ln norm along --dim (0 = output channels, 1 = input
// channels, in PyTorch's convention). --remove-channels deletes the pruned output channels from
// the graph -- with the matching bias, BatchNormalization and consumer input channels, through
// residual Adds where all branches agree -- so the saved model is smaller and faster;
// --silence-channels zeroes the same channels instead (same outputs, same shapes). Removal keeps a
// multiple of --round-to channels per group (default 8): kernels block channels by 8 or 16, and a
// layer of 45 channels can run slower than one of 64. Prints the
// sparsity, parameters and bytes before/after, and the output SQNR against the original.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_io.hpp"
#include "commands.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/prune.hpp"
#include "sparsity_common.hpp"

namespace quench_cli {
namespace {

namespace qp = quench::pipeline;

struct prune_args {
  std::string input, output, amount, norm = "2", report;
  bool structured = false, global = false, random = false, remove = false, silence = false, no_check = false, verbose = false;
  int dim = 0, threads = 1;
  std::int64_t round_to = 8;
  std::uint64_t seed = 0;
  std::vector<std::string> exclude, op_types, data;
  std::int64_t samples = 4;
};

/// "7" -> a count; "0.3", "1.0", "5e-1" -> a fraction (torch: int vs float).
quench::prune::prune_amount parse_amount(const std::string& s) {
  std::size_t used = 0;
  if (s.find_first_of(".eE") == std::string::npos) {
    long long n = 0;
    try {
      n = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty())
      throw quench::error(quench::errc::invalid_argument, "--amount '" + s + "'", "expected a count (7) or a fraction (0.3)");
    return quench::prune::prune_amount::count(n);
  }
  double f = 0;
  try {
    f = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size()) throw quench::error(quench::errc::invalid_argument, "--amount '" + s + "'", "expected a count (7) or a fraction (0.3)");
  return quench::prune::prune_amount::fraction(f);
}

double parse_norm(const std::string& s) {
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "fro") return 2;
  std::size_t used = 0;
  double n = std::nan("");
  try {
    n = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty()) throw quench::error(quench::errc::invalid_argument, "--norm '" + s + "'", "expected a number, inf, -inf or fro");
  return n;
}

std::string method_text(const qp::prune_options& o, const prune_args& a) {
  std::string s;
  if (o.structured) s = "structured L" + a.norm + " on " + (o.dim == 0 ? "output channels" : o.dim == 1 ? "input channels" : "dim " + std::to_string(o.dim));
  else if (o.global) s = "global unstructured L1";
  else if (o.random) s = "unstructured random (seed " + std::to_string(o.seed) + ")";
  else s = "unstructured L1";
  s += ", amount " + to_string(o.amount);
  if (o.removal == qp::channel_removal::remove) s += ", channels removed";
  if (o.removal == qp::channel_removal::silence) s += ", channels silenced";
  return s;
}

void run_prune(const prune_args& a) {
  qp::prune_options o;
  o.amount = parse_amount(a.amount);
  o.structured = a.structured || a.remove || a.silence;
  o.dim = a.dim;
  o.norm = parse_norm(a.norm);
  o.global = a.global;
  o.random = a.random;
  o.seed = a.seed;
  if (a.remove && a.silence) throw quench::error(quench::errc::invalid_argument, "--remove-channels", "cannot be combined with --silence-channels");
  o.removal = a.remove ? qp::channel_removal::remove : a.silence ? qp::channel_removal::silence : qp::channel_removal::none;
  o.channel_multiple = a.round_to;
  o.exclude = std::set<std::string>(a.exclude.begin(), a.exclude.end());
  if (!a.op_types.empty()) o.op_types = std::set<std::string>(a.op_types.begin(), a.op_types.end());
  quench::model m = quench::onnx::load_model(a.input);
  const quench::model original = a.no_check ? quench::model{} : quench::onnx::load_model(a.input);
  const auto r = qp::prune(m, o);
  quench::onnx::save_model(m, a.output);

  std::printf("prune (%s): %s -> %s\n", method_text(o, a).c_str(), a.input.c_str(), a.output.c_str());
  std::int64_t zeros = 0, elements = 0;
  for (const auto& w : r.weights) zeros += w.zeros, elements += w.elements;
  if (o.removal == qp::channel_removal::remove)
    std::printf("  weights resized: %zu, skipped: %zu\n", r.weights.size(), r.skipped.size());
  else
    std::printf("  weights pruned: %zu (%.2f %% zeros), skipped: %zu\n", r.weights.size(),
                elements ? 100.0 * static_cast<double>(zeros) / static_cast<double>(elements) : 0.0, r.skipped.size());
  if (a.verbose)
    for (const auto& w : r.weights)
      std::printf("    %s (%s %s) %s -> %s: %.1f %% zeros\n", w.name.c_str(), w.op_type.c_str(), w.node.c_str(),
                  to_string(w.dims_before).c_str(), to_string(w.dims_after).c_str(), 100 * w.sparsity());
  for (const auto& s : r.skipped) std::printf("    skipped %s (%s): %s\n", s.name.c_str(), s.node.c_str(), s.reason.c_str());
  if (o.removal != qp::channel_removal::none) {
    std::size_t applied = 0;
    for (const auto& g : r.groups) applied += g.applied;
    std::printf("  channel groups: %zu of %zu pruned\n", applied, r.groups.size());
    for (const auto& g : r.groups)
      if (a.verbose || g.applied || !g.reason.empty())
        std::printf("    %s%s -> %s: %lld -> %lld channels%s%s\n", g.sources.empty() ? "?" : g.sources.front().c_str(),
                    g.sources.size() > 1 ? (" (+" + std::to_string(g.sources.size() - 1) + ")").c_str() : "",
                    g.sinks.empty() ? "(no consumer)" : g.sinks.front().c_str(), static_cast<long long>(g.channels_before),
                    static_cast<long long>(g.channels_after), g.reason.empty() ? "" : ": ", g.reason.c_str());
  }
  std::printf("  parameters: %lld -> %lld (%.2fx), non-zero %lld -> %lld (%.2fx)\n", static_cast<long long>(r.parameters_before),
              static_cast<long long>(r.parameters_after), ratio(static_cast<double>(r.parameters_after), static_cast<double>(r.parameters_before)),
              static_cast<long long>(r.nonzero_before), static_cast<long long>(r.nonzero_after),
              ratio(static_cast<double>(r.nonzero_after), static_cast<double>(r.nonzero_before)));
  const auto file_before = std::filesystem::file_size(a.input), file_after = std::filesystem::file_size(a.output);
  std::printf("  bytes: tensors %s -> %s (%.2fx), file %s -> %s\n", size_text(r.bytes_before).c_str(), size_text(r.bytes_after).c_str(),
              ratio(static_cast<double>(r.bytes_after), static_cast<double>(r.bytes_before)), size_text(file_before).c_str(),
              size_text(file_after).c_str());

  nlohmann::json weights = nlohmann::json::array(), skipped = nlohmann::json::array(), groups = nlohmann::json::array();
  for (const auto& w : r.weights)
    weights.push_back({{"name", w.name}, {"node", w.node}, {"op_type", w.op_type}, {"shape_before", w.dims_before.dims()},
                       {"shape_after", w.dims_after.dims()}, {"elements", w.elements}, {"zeros", w.zeros}, {"sparsity", w.sparsity()}});
  for (const auto& s : r.skipped) skipped.push_back({{"name", s.name}, {"node", s.node}, {"reason", s.reason}});
  for (const auto& g : r.groups)
    groups.push_back({{"sources", g.sources}, {"sinks", g.sinks}, {"channels_before", g.channels_before},
                      {"channels_after", g.channels_after}, {"applied", g.applied}, {"reason", g.reason}});
  nlohmann::json j = {{"input", a.input}, {"output", a.output}, {"method", method_text(o, a)},
                      {"parameters_before", r.parameters_before}, {"parameters_after", r.parameters_after},
                      {"nonzero_before", r.nonzero_before}, {"nonzero_after", r.nonzero_after},
                      {"bytes_before", r.bytes_before}, {"bytes_after", r.bytes_after},
                      {"weights", weights}, {"skipped", skipped}, {"groups", groups}};
  if (!a.no_check) j["accuracy"] = print_accuracy(original, m, a.data, a.samples, 1, a.threads);
  if (!a.report.empty()) write_text(a.report, j.dump(2) + "\n");
}

}  // namespace

void add_prune_command(CLI::App& app) {
  static prune_args a;
  auto* cmd = app.add_subcommand("prune", "Prune weights (torch.nn.utils.prune masks) and optionally remove pruned channels");
  cmd->add_option("model", a.input, "ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "pruned model")->required();
  cmd->add_option("--amount", a.amount, "a count (7) or a fraction (0.3) of the units to prune")->required();
  cmd->add_flag("--structured", a.structured, "prune whole slices by Ln norm instead of single weights");
  cmd->add_option("--dim", a.dim, "structured: 0 = output channels, 1 = input channels")->capture_default_str();
  cmd->add_option("--norm", a.norm, "structured: n of the Ln norm (1, 2, inf, -inf, any p > 0)")->capture_default_str();
  cmd->add_flag("--global", a.global, "one L1 ranking over all weights (unstructured)");
  cmd->add_flag("--random", a.random, "prune at random (unstructured, seeded)");
  cmd->add_option("--seed", a.seed, "seed for --random")->capture_default_str();
  cmd->add_flag("--remove-channels", a.remove, "delete pruned output channels from the graph (implies --structured --dim 0)");
  cmd->add_flag("--silence-channels", a.silence, "zero the channels --remove-channels would delete, keeping shapes");
  cmd->add_option("--round-to", a.round_to, "channel removal keeps a multiple of this many channels (1: exactly the amount)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--exclude", a.exclude, "node or weight names left as they are");
  cmd->add_option("--op-type", a.op_types, "operators to prune (default Conv ConvTranspose Gemm MatMul)");
  cmd->add_option("--report", a.report, "write the report (JSON)");
  cmd->add_option("--data,-d", a.data, "NAME=FILE.npy: samples along axis 0 for the accuracy check (default: random)");
  cmd->add_option("--samples", a.samples, "samples for the accuracy check")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--no-check", a.no_check, "skip the accuracy check");
  cmd->add_option("--threads", a.threads, "executor threads for the accuracy check")->capture_default_str();
  cmd->add_flag("--verbose,-v", a.verbose, "print every weight and channel group");
  cmd->callback([] { run_prune(a); });
}

}  // namespace quench_cli
