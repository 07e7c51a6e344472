// quench demo: placeholder until the converters land.
#include "commands.hpp"

namespace quench_cli {
void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Convert a bundled tensor to every format and report the error");
  (void)cmd;
}
}  // namespace quench_cli
