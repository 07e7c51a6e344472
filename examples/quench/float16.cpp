// quench float16 IN.onnx -o OUT.onnx [--bf16] [--keep-io-types] [--block-op OP ...] [--block-node NAME ...]
//                [--auto-block [--data NAME=FILE.npy ...] [--max-error E]] [--compute all|weights-only]
//                [--overflow keep|clamp] [--underflow subnormal|zero|normal] [--no-default-blocks]
//
// Converts a model to float16 (or bfloat16) with quench/pipeline/float16.hpp and prints what it
// did: initializers converted, values clamped, Casts inserted, nodes kept float32 and why, size
// before and after. --auto-block runs the float32 model on the --data samples (the k-th file given
// for an input belongs to sample k; seeded random inputs when none are given) and keeps the nodes
// whose half version overflows or diverges in float32.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "commands.hpp"
#include "quench/adapt/npy.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/float16.hpp"
#include "quench/version.hpp"
#include "run_inputs.hpp"

namespace quench_cli {
namespace {

namespace qp = quench::pipeline;

struct float16_args {
  std::string input, output, compute, overflow = "keep", underflow = "subnormal";
  bool bf16 = false, keep_io = false, auto_block = false, no_default_blocks = false;
  std::vector<std::string> block_ops, block_nodes, data;
  double max_error = 0.01;
};

/// NAME=FILE.npy arguments as samples: the k-th file given for a name goes to sample k.
std::vector<std::map<std::string, quench::tensor>> read_samples(const std::vector<std::string>& specs) {
  std::vector<std::map<std::string, quench::tensor>> samples;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw quench::error(quench::errc::invalid_argument, "--data '" + s + "'", "expected NAME=FILE.npy");
    const std::string name = s.substr(0, eq);
    std::size_t k = 0;
    while (k < samples.size() && samples[k].count(name)) ++k;
    if (k == samples.size()) samples.emplace_back();
    samples[k].emplace(name, quench::read_npy(s.substr(eq + 1)));
  }
  return samples;
}

std::string megabytes(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

/// The model file and, when it has one, the external data file quench writes beside it.
std::uintmax_t saved_bytes(const std::filesystem::path& p) {
  std::uintmax_t n = std::filesystem::file_size(p);
  std::error_code ec;
  const auto data = p.parent_path() / (p.filename().string() + ".data");
  if (std::filesystem::exists(data, ec)) n += std::filesystem::file_size(data, ec);
  return n;
}

void run_float16(const float16_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  qp::float16_options opt;
  opt.keep_io_types = a.keep_io;
  if (a.no_default_blocks || !a.block_ops.empty()) {
    std::set<std::string> ops = a.no_default_blocks ? std::set<std::string>{} : qp::default_op_block_list();
    ops.insert(a.block_ops.begin(), a.block_ops.end());
    opt.op_block_list = std::move(ops);
  }
  opt.node_block_list = std::set<std::string>(a.block_nodes.begin(), a.block_nodes.end());
  if (!a.compute.empty()) opt.compute = a.compute == "all" ? qp::half_compute::all : qp::half_compute::weights_only;
  opt.overflow = a.overflow == "clamp" ? qp::half_overflow::clamp : qp::half_overflow::keep_float32;
  opt.underflow = a.underflow == "zero"     ? qp::half_underflow::zero
                  : a.underflow == "normal" ? qp::half_underflow::smallest_normal
                                            : qp::half_underflow::smallest_subnormal;
  if (!a.data.empty() && !a.auto_block)
    throw quench::error(quench::errc::invalid_argument, "--data", "samples are only used by --auto-block");
  std::vector<std::map<std::string, quench::tensor>> samples;
  if (a.auto_block) {
    samples = read_samples(a.data);
    if (samples.empty()) {
      samples.emplace_back();
      add_random_inputs(m, samples.back(), 1, 1);
      std::printf("auto-block: no --data given, using one seeded normal(0, 1) sample (symbolic dimensions = 1)\n");
    }
    for (const auto& s : samples) opt.auto_block.samples.push_back(feed_of(s));
    opt.auto_block.max_relative_error = a.max_error;
  }

  const auto r = a.bf16 ? qp::convert_bfloat16(m, opt) : qp::convert_float16(m, opt);
  const char* type = a.bf16 ? "bfloat16" : "float16";
  // Which tool and settings made the model, replacing an earlier record (converting again must
  // not grow the metadata).
  const std::string version = std::to_string(QUENCH_VERSION_MAJOR) + "." + std::to_string(QUENCH_VERSION_MINOR) + "." +
                              std::to_string(QUENCH_VERSION_PATCH);
  const std::string record = "version=" + version + ";type=" + type + ";keep_io_types=" + (a.keep_io ? "1" : "0") +
                             ";compute=" + (r.compute == qp::half_compute::all ? "all" : "weights-only");
  bool replaced = false;
  for (auto& kv : m.metadata_props)
    if (kv.first == "quench.float16") {
      kv.second = record;
      replaced = true;
    }
  if (!replaced) m.metadata_props.emplace_back("quench.float16", record);
  quench::onnx::save_model(m, a.output);

  std::printf("%s: %s -> %s (%s, compute %s%s)\n", type, a.input.c_str(), a.output.c_str(), type,
              r.compute == qp::half_compute::all ? "all" : "weights only", a.keep_io ? ", float32 inputs and outputs" : "");
  std::printf("  initializers converted: %zu, constants converted: %zu, nodes in %s: %zu\n", r.initializers_converted,
              r.constants_converted, type, r.nodes_converted);
  std::printf("  values clamped: %zu, tiny values set per --underflow %s: %zu\n", r.values_clamped, a.underflow.c_str(),
              r.values_underflow);
  for (const auto& n : r.out_of_range)
    std::printf("    %s: %zu beyond the range (max |x| %.3g)%s, %zu tiny\n", n.tensor.c_str(), n.overflow,
                static_cast<double>(n.max_abs), n.kept_float32 ? ", kept float32" : "", n.underflow);
  std::printf("  Casts inserted: %zu, removed: %zu\n", r.casts_inserted, r.casts_removed);
  std::printf("  nodes blocked (kept float32): %zu\n", r.blocked.size());
  for (const auto& b : r.blocked) std::printf("    %s (%s): %s\n", b.node.c_str(), b.op_type.c_str(), b.reason.c_str());
  if (a.auto_block) {
    std::printf("  auto-block: %zu node(s) on %zu sample(s)\n", r.auto_blocked.size(), samples.size());
    for (std::size_t k = 0; k < r.simulated_before.size() && k < r.simulated_after.size(); ++k) {
      const auto& b = r.simulated_before[k];
      const auto& f = r.simulated_after[k];
      std::printf("    simulated output '%s': cosine %.6f -> %.6f, max rel diff %.3g -> %.3g, non-finite %zu -> %zu\n",
                  b.output.c_str(), b.cosine, f.cosine, b.max_rel_diff, f.max_rel_diff, b.nonfinite, f.nonfinite);
    }
  }
  const auto in_size = saved_bytes(a.input), out_size = saved_bytes(a.output);
  std::printf("  size: tensors %s -> %s (%.2fx); file %ju -> %ju bytes (%.2fx)\n", megabytes(r.bytes_before).c_str(),
              megabytes(r.bytes_after).c_str(), r.bytes_before ? static_cast<double>(r.bytes_after) / static_cast<double>(r.bytes_before) : 1.0,
              static_cast<std::uintmax_t>(in_size), static_cast<std::uintmax_t>(out_size),
              in_size ? static_cast<double>(out_size) / static_cast<double>(in_size) : 1.0);
}

}  // namespace

void add_float16_command(CLI::App& app) {
  static float16_args a;
  auto* cmd = app.add_subcommand("float16", "Convert a model to float16 (or bfloat16) with Casts where it must stay float32");
  cmd->add_option("model", a.input, "ONNX model (float32)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "converted model")->required();
  cmd->add_flag("--bf16", a.bf16, "convert to bfloat16 (opset 13+; weights only unless --compute all)");
  cmd->add_flag("--keep-io-types", a.keep_io, "keep graph inputs and outputs float32, with Casts at the boundary");
  cmd->add_option("--block-op", a.block_ops, "op types to keep in float32, besides the default list");
  cmd->add_flag("--no-default-blocks", a.no_default_blocks, "start from an empty op block list instead of the default one");
  cmd->add_option("--block-node", a.block_nodes, "node names to keep in float32");
  cmd->add_flag("--auto-block", a.auto_block, "keep nodes whose half version overflows or diverges on the samples in float32");
  cmd->add_option("--data", a.data, "samples for --auto-block: NAME=FILE.npy, repeated per input (k-th file of a name = sample k)");
  cmd->add_option("--max-error", a.max_error, "--auto-block: largest relative error of a node's output")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--compute", a.compute, "all: nodes compute in half (float16 default); weights-only: only weights stored in half (bfloat16 default)")
      ->check(CLI::IsMember({"all", "weights-only"}));
  cmd->add_option("--overflow", a.overflow, "constants beyond the half range: keep (float32, and their readers) or clamp")
      ->capture_default_str()
      ->check(CLI::IsMember({"keep", "clamp"}));
  cmd->add_option("--underflow", a.underflow, "non-zero constants that round to zero: subnormal (smallest subnormal), zero or normal (smallest normal)")
      ->capture_default_str()
      ->check(CLI::IsMember({"subnormal", "zero", "normal"}));
  cmd->callback([] { run_float16(a); });
}

}  // namespace quench_cli
