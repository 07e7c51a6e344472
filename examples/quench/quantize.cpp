// quench quantize IN.onnx -o OUT.onnx --profile weight-only [--per-tensor] [--exclude NODE ...]
//
// The weight-only profile: float weights of Conv, ConvTranspose, Gemm and MatMul become int8
// initializers + DequantizeLinear (quench/pipeline/quantize_weights.hpp); activations stay float.
// The profiles with calibrated activations (ort, tensorrt, fp8) come with issue 6's next steps.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "commands.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/quantize_weights.hpp"
#include "quench/version.hpp"

namespace quench_cli {
namespace {

struct quantize_args {
  std::string input, output, profile = "weight-only";
  bool per_tensor = false;
  std::vector<std::string> exclude;
};

void run_quantize(const quantize_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  quench::pipeline::weight_quant_options opt;
  opt.per_channel = !a.per_tensor;
  opt.exclude_nodes = std::set<std::string>(a.exclude.begin(), a.exclude.end());
  const auto report = quench::pipeline::quantize_weights(m, opt);
  // Which tool and settings made the model, as the issue asks (ORT records its own the same way).
  const std::string version = std::to_string(QUENCH_VERSION_MAJOR) + "." + std::to_string(QUENCH_VERSION_MINOR) + "." +
                              std::to_string(QUENCH_VERSION_PATCH);
  m.metadata_props.emplace_back("quench.quantize", "version=" + version + ";profile=" + a.profile +
                                                       ";per_channel=" + (opt.per_channel ? "1" : "0"));
  quench::onnx::save_model(m, a.output);
  const auto in_size = std::filesystem::file_size(a.input), out_size = std::filesystem::file_size(a.output);
  std::printf("%s: %zu weights quantized to int8 (%zu -> %zu bytes of weights); %s %ju -> %s %ju bytes\n", a.profile.c_str(),
              report.quantized.size(), report.bytes_before, report.bytes_after, a.input.c_str(), static_cast<std::uintmax_t>(in_size),
              a.output.c_str(), static_cast<std::uintmax_t>(out_size));
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  static quantize_args a;
  auto* cmd = app.add_subcommand("quantize", "Quantize a model's weights to int8 with DequantizeLinear (weight-only QDQ)");
  cmd->add_option("model", a.input, "ONNX model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--output,-o", a.output, "quantized model")->required();
  cmd->add_option("--profile", a.profile, "weight-only")->capture_default_str()->check(CLI::IsMember({"weight-only"}));
  cmd->add_flag("--per-tensor", a.per_tensor, "one scale per weight instead of one per output channel");
  cmd->add_option("--exclude", a.exclude, "node names to leave in float");
  cmd->callback([] { run_quantize(a); });
}

}  // namespace quench_cli
