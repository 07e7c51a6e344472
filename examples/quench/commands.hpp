#pragma once
// The subcommands of the `quench` command-line tool, one translation unit each.

#include <CLI/CLI.hpp>

namespace quench_cli {

/// Each function adds its subcommand to `app` and sets its callback.
void add_demo_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_calibrate_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_upgrade_command(CLI::App& app);
void add_float16_command(CLI::App& app);
void add_sparsify_command(CLI::App& app);
void add_prune_command(CLI::App& app);
void add_qat_commands(CLI::App& app);  // export-qat, fold

}  // namespace quench_cli
