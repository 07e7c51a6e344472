// quench export-qat MODEL.onnx --params qat.json [--profile ort|tensorrt] -o OUT.onnx
// quench fold QAT.onnx [--profile ort|tensorrt] -o OUT.onnx [--params-out qat.json]
//
// export-qat writes a float model as a QDQ model with the trained parameters of a QAT run
// (quench/pipeline/qat_export.hpp, the JSON format is described there): no calibration data,
// weights as integer initializers computed as the fake quant rounded them.
// fold turns a QAT model exported with its fake quants (torch.onnx.export of FakeQuantize
// modules: Q -> DQ on float weights) into integer weights + DQ and drops redundant Q/DQ pairs,
// changing no output (quench/pipeline/fold_qdq.hpp); with --profile it re-targets the model to
// that profile's placement with the same parameters. --params-out writes the parameters read from
// the model. Files are written through a temporary name and a rename.
#include <cstdio>
#include <string>

#include "cli_io.hpp"
#include "commands.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/pipeline/fold_qdq.hpp"
#include "quench/pipeline/qat_export.hpp"

namespace quench_cli {
namespace {

struct export_args {
  std::string input, params, profile = "ort", output;
};

struct fold_args {
  std::string input, profile, output, params_out;
};

std::size_t node_count(const quench::model& m, const char* op) {
  std::size_t n = 0;
  for (const quench::node* x : m.main_graph().nodes()) n += x->is(op);
  return n;
}

void run_export(const export_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  const auto params = quench::pipeline::qat_params_from_json(read_text(a.params), "'" + a.params + "'");
  quench::pipeline::export_options o;
  o.profile = quench::pipeline::profile_by_name(a.profile);
  const auto r = quench::pipeline::export_qat(m, params, o);
  quench::onnx::save_model(m, a.output);
  std::printf("%s: profile %s, %zu activations and %zu weights with the trained parameters, %zu QuantizeLinear, opset %lld\n",
              a.output.c_str(), a.profile.c_str(), r.quantize.tensors.size(), r.quantize.inserted.weights.size(),
              node_count(m, "QuantizeLinear"), static_cast<long long>(m.opset()));
  for (const auto& [t, from] : r.borrowed) std::printf("  %s takes the parameters of %s (same grid)\n", t.c_str(), from.c_str());
  for (const auto& t : r.clipped) std::printf("  %s: Clip to its narrow quant range before QuantizeLinear\n", t.c_str());
  for (const auto& t : r.unused) std::printf("  unused (the profile leaves it float): %s\n", t.c_str());
}

void run_fold(const fold_args& a) {
  quench::model m = quench::onnx::load_model(a.input);
  if (!a.params_out.empty()) write_text(a.params_out, quench::pipeline::to_json(quench::pipeline::extract_qat_params(m)));
  quench::pipeline::fold_options o;
  if (!a.profile.empty()) o.profile = quench::pipeline::profile_by_name(a.profile);
  const auto r = quench::pipeline::fold_qdq(m, o);
  quench::onnx::save_model(m, a.output);
  if (r.retarget)
    std::printf("%s: re-targeted to %s, %zu QuantizeLinear, initializers %zu -> %zu bytes\n", a.output.c_str(), a.profile.c_str(),
                node_count(m, "QuantizeLinear"), r.initializer_bytes_before, r.initializer_bytes_after);
  else
    std::printf("%s: %zu weights folded to integers, %zu redundant Q/DQ pairs removed, initializers %zu -> %zu bytes\n",
                a.output.c_str(), r.weights_folded, r.pairs_removed, r.initializer_bytes_before, r.initializer_bytes_after);
}

}  // namespace

void add_qat_commands(CLI::App& app) {
  static export_args e;
  auto* ex = app.add_subcommand("export-qat", "Write a float model as QDQ with the trained parameters of a QAT run (JSON)");
  ex->add_option("model", e.input, "float ONNX model")->required()->check(CLI::ExistingFile);
  ex->add_option("--params", e.params, "QAT parameters (JSON, see quench/pipeline/qat_export.hpp)")->required()->check(CLI::ExistingFile);
  ex->add_option("--profile", e.profile, "placement and types")->capture_default_str()->check(CLI::IsMember({"ort", "tensorrt"}));
  ex->add_option("--output,-o", e.output, "QDQ model")->required();
  ex->callback([] { run_export(e); });

  static fold_args f;
  auto* fo = app.add_subcommand("fold", "Fold a QAT model's weight Q/DQ into integer weights, drop redundant pairs, re-target");
  fo->add_option("model", f.input, "QDQ model (e.g. torch.onnx.export of a QAT model)")->required()->check(CLI::ExistingFile);
  fo->add_option("--profile", f.profile, "re-target to this placement")->check(CLI::IsMember({"ort", "tensorrt"}));
  fo->add_option("--output,-o", f.output, "folded model")->required();
  fo->add_option("--params-out", f.params_out, "write the parameters read from the model (JSON)");
  fo->callback([] { run_fold(f); });
}

}  // namespace quench_cli
