// quench upgrade IN.onnx -o OUT.onnx --opset N [--verbose]
//
// Moves a model's ai.onnx opset forward (quench/graph/passes/upgrade_opset.hpp): opset 13 for
// per-channel QuantizeLinear, 19 for float8, 21 for int4/int16. Shape inference runs first, so
// known ranks and types keep Softmax single nodes and type the Clip/Pad constants. Prints the
// rewritten nodes per operator (every rewrite with --verbose); a node with no exact counterpart
// at the new opset is an error naming it, and nothing is written.
#include <cstdint>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "quench/graph/passes/upgrade_opset.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/onnx/shape_inference.hpp"

namespace quench_cli {
namespace {

struct upgrade_args {
  std::string input, output;
  std::int64_t opset = 13;
  bool verbose = false;
};

void run_upgrade(const upgrade_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  const std::int64_t from = m.opset("");
  try {
    quench::onnx::infer_shapes(m);
  } catch (const quench::error& e) {
    // Inference only adds knowledge; the pass refuses what it needs and cannot find.
    std::fprintf(stderr, "quench upgrade: shape inference failed, continuing without it: %s\n", e.what());
  }
  const auto r = quench::passes::upgrade_opset(m, a.opset);
  quench::onnx::save_model(m, a.output);
  std::printf("%s: ai.onnx opset %lld -> %lld (ir_version %lld), %zu nodes: %zu rewritten, %zu only moved\n",
              a.output.c_str(), static_cast<long long>(from), static_cast<long long>(a.opset),
              static_cast<long long>(m.ir_version), r.nodes, r.rewrites, r.moved);
  for (const auto& [op, count] : r.rewritten) std::printf("  %-20s %zu\n", op.c_str(), count);
  if (a.verbose)
    for (const auto& line : r.changes) std::printf("  %s\n", line.c_str());
}

}  // namespace

void add_upgrade_command(CLI::App& app) {
  static upgrade_args a;
  auto* cmd = app.add_subcommand("upgrade", "Upgrade a model's ai.onnx opset, rewriting nodes whose operator changed");
  cmd->add_option("model", a.input, "ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "upgraded model")->required();
  cmd->add_option("--opset", a.opset, "target ai.onnx opset (the model's to 21)")->capture_default_str()->check(CLI::Range(1, 21));
  cmd->add_flag("--verbose,-v", a.verbose, "print every rewritten node");
  cmd->callback([] { run_upgrade(a); });
}

}  // namespace quench_cli
