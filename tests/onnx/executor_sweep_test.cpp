// Runs every libonnx-testdata case whose ops the executor supports and compares with the stored
// outputs. Prints passed / skipped-as-unsupported / failed and writes the op coverage table to
// build/tests/op_coverage.md.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "quench/onnx/model_io.hpp"
#include "quench/onnx/tensor_proto.hpp"
#include "quench/runtime/executor.hpp"

namespace fs = std::filesystem;
namespace rt = quench::runtime;

namespace {

/// Empty when equal within tolerance; otherwise what differs.
std::string compare(const quench::tensor& want, const quench::tensor& got, double rtol, double atol) {
  if (want.dtype() != got.dtype()) return "dtype " + quench::to_string(got.dtype()) + ", expected " + quench::to_string(want.dtype());
  if (want.shape() != got.shape()) return "shape " + quench::to_string(got.shape()) + ", expected " + quench::to_string(want.shape());
  auto cmp_float = [&](auto tag) -> std::string {
    using T = decltype(tag);
    const auto a = want.view<T>();
    const auto b = got.view<T>();
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
      if (std::isnan(x) && std::isnan(y)) continue;
      if (x == y) continue;
      if (!(std::fabs(x - y) <= atol + rtol * std::fabs(x)))
        return "element " + std::to_string(i) + ": " + std::to_string(y) + ", expected " + std::to_string(x);
    }
    return {};
  };
  switch (want.dtype()) {
    case quench::dtype::float32: return cmp_float(float{});
    case quench::dtype::float64: return cmp_float(double{});
    default:
      return std::memcmp(want.bytes(), got.bytes(), want.nbytes()) == 0 ? std::string() : std::string("bytes differ");
  }
}

struct sweep_result {
  int passed = 0, skipped = 0, failed = 0;
  std::map<std::string, int> op_passed;
  std::map<std::string, int> skip_reasons;
  std::vector<std::string> failures;
};

void run_case(const fs::path& dir, sweep_result& r) {
  const std::string name = fs::relative(dir, QUENCH_ONNX_TESTDATA_DIR).string();
  quench::model m;
  try {
    m = quench::onnx::load_model(dir / "model.onnx");
  } catch (const quench::error& e) {
    ++r.skipped;
    ++r.skip_reasons["model not loadable: " + std::string(quench::errc_name(e.code()))];
    return;
  }
  const auto problems = rt::check(m);
  if (!problems.empty()) {
    ++r.skipped;
    std::set<std::string> ops;
    for (const quench::node* n : m.main_graph().nodes())
      if (!rt::builtin_ops().find(n->domain(), n->op_type(), m.opset(n->domain()))) ops.insert(n->op_type());
    for (const auto& op : ops) ++r.skip_reasons["no kernel: " + op];
    if (ops.empty()) ++r.skip_reasons["unsupported attribute or type"];
    return;
  }
  std::vector<std::string> input_names;
  for (const quench::value* v : m.main_graph().inputs())
    if (!v->is_initializer()) input_names.push_back(v->name());
  std::string failure;
  int sets = 0;
  try {
    rt::executor ex(m);
    for (const auto& set : fs::directory_iterator(dir)) {
      if (!set.is_directory() || set.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
      std::vector<quench::tensor> inputs;
      for (std::size_t i = 0; i < input_names.size(); ++i) {
        const fs::path p = set.path() / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) break;
        inputs.push_back(quench::onnx::read_tensor_file(p.string()));
      }
      std::unordered_map<std::string, const quench::tensor*> feed;
      for (std::size_t i = 0; i < inputs.size(); ++i) feed[input_names[i]] = &inputs[i];
      const auto outs = ex.run(feed);
      for (std::size_t i = 0; i < outs.size(); ++i) {
        const fs::path p = set.path() / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) continue;
        const auto want = quench::onnx::read_tensor_file(p.string());
        const std::string diff = compare(want, outs[i], 1e-4, 1e-5);
        if (!diff.empty() && failure.empty()) failure = "output " + std::to_string(i) + ": " + diff;
      }
      ++sets;
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    ++r.failed;
    r.failures.push_back(name + ": " + failure);
    return;
  }
  ++r.passed;
  std::set<std::string> ops;
  for (const quench::node* n : m.main_graph().nodes()) ops.insert(n->op_type());
  for (const auto& op : ops) ++r.op_passed[op];
  (void)sets;
}

}  // namespace

TEST_CASE("executor sweep over libonnx-testdata node, pytorch-converted, pytorch-operator and simple cases") {
  sweep_result r;
  for (const char* group : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(fs::path(QUENCH_ONNX_TESTDATA_DIR) / group))
      if (fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) run_case(d, r);
  }
  std::ostringstream table;
  table << "# Executor coverage on libonnx-testdata\n\n"
        << r.passed << " cases passed, " << r.skipped << " skipped as unsupported, " << r.failed << " failed.\n\n"
        << "| op | cases passed |\n|---|---|\n";
  for (const auto& kv : r.op_passed) table << "| " << kv.first << " | " << kv.second << " |\n";
  table << "\n| skipped because | cases |\n|---|---|\n";
  for (const auto& kv : r.skip_reasons) table << "| " << kv.first << " | " << kv.second << " |\n";
  std::ofstream(fs::path(QUENCH_TEST_BINARY_DIR) / "op_coverage.md") << table.str();
  MESSAGE(r.passed << " passed, " << r.skipped << " skipped as unsupported, " << r.failed << " failed");
  for (const auto& f : r.failures) MESSAGE("FAILED " << f);
  CHECK(r.failed == 0);
  CHECK(r.passed > 0);
}
