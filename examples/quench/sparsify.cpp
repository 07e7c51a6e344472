// quench sparsify IN.onnx -o OUT.onnx [--pattern 2:4] [--permute] [--exclude NAME ...] [--report r.json]
//                 [--any-size] [--op-type OP ...] [--data NAME=FILE.npy ...] [--samples N] [--no-check]
//
// N:M structured sparsity with quench/pipeline/sparsify.hpp: ASP's mask along the input channels of
// every eligible Conv / ConvTranspose / Gemm / MatMul weight, written as zeros into the dense
// model (TensorRT --sparsity=enable picks the 2:4 pattern up). --permute first searches channel
// permutations that keep more magnitude and applies them to the layers that produce the channels
// (the function is unchanged). Prints what was sparsified and skipped (and why), the sparsity,
// parameters and bytes before/after (dense, and as 2:4 values + metadata), and the output SQNR
// of the result against the original in quench's executor.
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_io.hpp"
#include "commands.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/sparsify.hpp"
#include "sparsity_common.hpp"

namespace quench_cli {
namespace {

namespace qp = quench::pipeline;

struct sparsify_args {
  std::string input, output, pattern = "2:4", report;
  bool permute = false, any_size = false, no_check = false, verbose = false;
  std::vector<std::string> exclude, op_types, data;
  std::int64_t samples = 4;
  double time_limit = 60;
  int threads = 1;
};

nlohmann::json report_json(const qp::sparsify_report& r, const sparsify_args& a) {
  nlohmann::json tensors = nlohmann::json::array(), skipped = nlohmann::json::array(), groups = nlohmann::json::array();
  for (const auto& t : r.tensors)
    tensors.push_back({{"name", t.name}, {"node", t.node}, {"op_type", t.op_type}, {"shape", t.dims.dims()}, {"axis", t.axis},
                       {"elements", t.elements}, {"zeros", t.zeros}, {"sparsity", t.sparsity()},
                       {"magnitude_total", t.magnitude_total}, {"magnitude_kept", t.magnitude_kept},
                       {"magnitude_kept_unpermuted", t.magnitude_kept_unpermuted}, {"permuted", t.permuted}});
  for (const auto& s : r.skipped) skipped.push_back({{"name", s.name}, {"node", s.node}, {"reason", s.reason}});
  for (const auto& g : r.permutations)
    groups.push_back({{"sources", g.sources}, {"sinks", g.sinks}, {"channels", g.channels}, {"applied", g.applied},
                      {"reason", g.reason}, {"magnitude_before", g.magnitude_before}, {"magnitude_after", g.magnitude_after},
                      {"swaps", g.swaps}, {"seconds", g.seconds}});
  return {{"input", a.input}, {"output", a.output}, {"pattern", quench::sparsity::to_string(r.pattern)},
          {"parameters", r.parameters}, {"zeros_before", r.zeros_before}, {"zeros_after", r.zeros_after},
          {"sparsity", r.sparsity()}, {"bytes", r.bytes}, {"compressed_bytes", r.compressed_bytes},
          {"tensors", tensors}, {"skipped", skipped}, {"permutations", groups}};
}

void run_sparsify(const sparsify_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  qp::sparsify_options o;
  o.pattern = quench::sparsity::parse_nm_pattern(a.pattern);
  o.permute = a.permute;
  o.exclude = std::set<std::string>(a.exclude.begin(), a.exclude.end());
  if (!a.op_types.empty()) o.op_types = std::set<std::string>(a.op_types.begin(), a.op_types.end());
  if (a.any_size) o.rules = {0, 0};
  o.permutation.time_limit_seconds = a.time_limit;
  const quench::model original = a.no_check ? quench::model{} : quench::onnx::load_model(a.input);
  const auto r = qp::sparsify(m, o);
  quench::onnx::save_model(m, a.output);

  std::printf("sparsify %s: %s -> %s\n", quench::sparsity::to_string(o.pattern).c_str(), a.input.c_str(), a.output.c_str());
  double kept = 0, total = 0, unpermuted = 0;
  for (const auto& t : r.tensors) kept += t.magnitude_kept, total += t.magnitude_total, unpermuted += t.magnitude_kept_unpermuted;
  std::printf("  weights sparsified: %zu, skipped: %zu; retained |w|: %.2f %% of the sparsified weights' L1\n", r.tensors.size(),
              r.skipped.size(), total > 0 ? 100 * kept / total : 100.0);
  if (a.verbose)
    for (const auto& t : r.tensors)
      std::printf("    %s (%s %s) %s: %.1f %% zeros, retained %.2f %%%s\n", t.name.c_str(), t.op_type.c_str(), t.node.c_str(),
                  to_string(t.dims).c_str(), 100 * t.sparsity(), t.magnitude_total > 0 ? 100 * t.magnitude_kept / t.magnitude_total : 100.0,
                  t.permuted ? " (permuted)" : "");
  for (const auto& s : r.skipped) std::printf("    skipped %s (%s): %s\n", s.name.c_str(), s.node.c_str(), s.reason.c_str());
  if (a.permute) {
    std::size_t applied = 0;
    double secs = 0;
    for (const auto& g : r.permutations) applied += g.applied, secs += g.seconds;
    std::printf("  channel permutation: %zu of %zu groups permuted in %.2f s; retained |w| %.2f %% without, %.2f %% with permutation\n",
                applied, r.permutations.size(), secs, total > 0 ? 100 * unpermuted / total : 100.0, total > 0 ? 100 * kept / total : 100.0);
    for (const auto& g : r.permutations)
      if (a.verbose || !g.applied)
        std::printf("    %s -> %s (%lld channels): %s\n", g.sources.empty() ? "?" : g.sources.front().c_str(),
                    g.sinks.empty() ? "?" : g.sinks.front().c_str(), static_cast<long long>(g.channels),
                    g.applied ? ("+" + std::to_string(100 * (g.magnitude_after / g.magnitude_before - 1)) + " % retained").c_str()
                              : g.reason.c_str());
  }
  std::printf("  sparsity: %.2f %% of %lld matrix weights are zero (%.2f %% before)\n", 100 * r.sparsity(),
              static_cast<long long>(r.parameters), r.parameters ? 100.0 * static_cast<double>(r.zeros_before) / static_cast<double>(r.parameters) : 0.0);
  std::printf("  parameters: %lld -> %lld non-zero; bytes: %s dense (unchanged), %s with the sparse weights as 2:4 values + metadata (%.2fx)\n",
              static_cast<long long>(r.parameters - r.zeros_before), static_cast<long long>(r.parameters - r.zeros_after),
              size_text(r.bytes).c_str(), size_text(r.compressed_bytes).c_str(), ratio(static_cast<double>(r.compressed_bytes), static_cast<double>(r.bytes)));
  nlohmann::json j = report_json(r, a);
  if (!a.no_check) j["accuracy"] = print_accuracy(original, m, a.data, a.samples, 1, a.threads);
  if (!a.report.empty()) write_text(a.report, j.dump(2) + "\n");
}

}  // namespace

void add_sparsify_command(CLI::App& app) {
  static sparsify_args a;
  auto* cmd = app.add_subcommand("sparsify", "N:M structured sparsity (2:4 for sparse tensor cores) on Conv/Gemm/MatMul weights");
  cmd->add_option("model", a.input, "ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "sparse model (dense layout, zeros written)")->required();
  cmd->add_option("--pattern", a.pattern, "N:M: keep N of every M input channels")->capture_default_str();
  cmd->add_flag("--permute", a.permute, "search input-channel permutations that keep more magnitude (function unchanged)");
  cmd->add_option("--exclude", a.exclude, "node or weight names left dense");
  cmd->add_option("--op-type", a.op_types, "operators to sparsify (default Conv ConvTranspose Gemm MatMul)");
  cmd->add_flag("--any-size", a.any_size, "drop ASP's tensor-core rule (out % 8, in % 16): any input count divisible by M");
  cmd->add_option("--time-limit", a.time_limit, "seconds per permutation search")->capture_default_str();
  cmd->add_option("--report", a.report, "write the per-tensor report (JSON)");
  cmd->add_option("--data,-d", a.data, "NAME=FILE.npy: samples along axis 0 for the accuracy check (default: random)");
  cmd->add_option("--samples", a.samples, "samples for the accuracy check")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--no-check", a.no_check, "skip the accuracy check");
  cmd->add_option("--threads", a.threads, "executor threads for the accuracy check")->capture_default_str();
  cmd->add_flag("--verbose,-v", a.verbose, "print every weight and permutation group");
  cmd->callback([] { run_sparsify(a); });
}

}  // namespace quench_cli
