// quench: quantize and compress ONNX models from the command line.
//
//   quench inspect MODEL.onnx [--json]
//   quench run MODEL.onnx [--input NAME=FILE.npy ...] [--output-dir DIR]
//   quench compare A.onnx B.onnx [--input NAME=FILE.npy ...]
//   quench demo TENSOR.npy
//
// Errors from quench (bad models, bad arguments) print their message and exit with status 1.
// Interrupted (Ctrl-C, SIGTERM), it leaves no partial output file and no temporary behind.

#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "quench/core/atomic_file.hpp"
#include "quench/version.hpp"

int main(int argc, char** argv) {
  // Ctrl-C while an output is being written removes its temporary; outputs appear only whole.
  quench::remove_temporaries_on_signal();
  CLI::App app{"quench: quantize and compress ONNX models"};
  app.set_version_flag("--version", std::to_string(QUENCH_VERSION_MAJOR) + "." + std::to_string(QUENCH_VERSION_MINOR) +
                                        "." + std::to_string(QUENCH_VERSION_PATCH));
  app.require_subcommand(1);
  quench_cli::add_demo_command(app);
  quench_cli::add_inspect_command(app);
  quench_cli::add_run_command(app);
  quench_cli::add_calibrate_command(app);
  quench_cli::add_merge_command(app);
  quench_cli::add_quantize_command(app);
  quench_cli::add_compare_command(app);
  quench_cli::add_upgrade_command(app);
  quench_cli::add_float16_command(app);
  quench_cli::add_sparsify_command(app);
  quench_cli::add_prune_command(app);
  quench_cli::add_qat_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quench: %s\n", e.what());
    return 1;
  }
  return 0;
}
