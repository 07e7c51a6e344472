// quench run MODEL.onnx [--input NAME=FILE.npy ...] [--output-dir DIR]: runs a model on the
// reference CPU executor and writes every output as DIR/<output name>.npy.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/runtime/executor.hpp"
#include "run_inputs.hpp"

namespace quench_cli {
namespace {

struct run_args {
  std::string model;
  std::vector<std::string> inputs;
  std::string output_dir = ".";
  std::uint32_t seed = 0;
  std::int64_t dim = 1;
  int threads = 1;
};

/// Output names may contain '/' or ':' (exporters like them); file names may not.
std::string file_name_for(std::string name) {
  for (char& c : name)
    if (c == '/' || c == '\\' || c == ':') c = '_';
  return name + ".npy";
}

void run_model(const run_args& a) {
  const quench::model m = quench::onnx::load_model(a.model);
  auto inputs = read_inputs(a.inputs);
  add_random_inputs(m, inputs, a.seed, a.dim);
  quench::runtime::executor_options opts;
  opts.threads = a.threads;
  quench::runtime::executor ex(m, opts);
  const auto outs = ex.run(feed_of(inputs));
  std::filesystem::create_directories(a.output_dir);
  for (const auto& t : outs) {
    const auto path = std::filesystem::path(a.output_dir) / file_name_for(t.name());
    quench::write_npy(path, t);
    std::printf("%s: %s %s -> %s\n", t.name().c_str(), quench::to_string(t.dtype()).c_str(),
                quench::to_string(t.shape()).c_str(), path.string().c_str());
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  static run_args a;
  auto* cmd = app.add_subcommand("run", "Run a model on the reference CPU executor and write its outputs as .npy");
  cmd->add_option("model", a.model, "ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input,-i", a.inputs, "NAME=FILE.npy for a graph input (others get seeded random data)");
  cmd->add_option("--output-dir,-o", a.output_dir, "where to write <output>.npy")->capture_default_str();
  cmd->add_option("--seed", a.seed, "seed for random inputs")->capture_default_str();
  cmd->add_option("--dim", a.dim, "value of symbolic dimensions in random inputs")->capture_default_str();
  cmd->add_option("--threads", a.threads, "threads for Conv/MatMul (results do not depend on it)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->callback([] { run_model(a); });
}

}  // namespace quench_cli
