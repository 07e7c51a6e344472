// quench inspect: what is in an ONNX model (placeholder until the inspect command lands).
#include "commands.hpp"

namespace quench_cli {
void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Show opsets, inputs/outputs, op types and parameters of a model");
  (void)cmd;
}
}  // namespace quench_cli
