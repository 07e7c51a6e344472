// quench compare A.onnx B.onnx [--input NAME=FILE.npy ...]: runs both models on the same inputs
// and prints, per output, max abs error, cosine similarity and SQNR — what quantizing cost.
// With --data / --images (any source of data_options.hpp) both models run over every sample in
// batches, with a progress bar, and the figures cover all of them.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "commands.hpp"
#include "data_options.hpp"
#include "progress.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/runtime/executor.hpp"
#include "run_inputs.hpp"

#include <unistd.h>

namespace quench_cli {
namespace {

struct compare_args {
  std::string a, b;
  std::vector<std::string> inputs;
  std::uint32_t seed = 0;
  std::int64_t dim = 1;
  data_args data;
  std::int64_t batch = 8;
  bool quiet = false;
};

/// Error sums of one output over every sample seen.
struct output_error {
  std::string name;
  double max_abs = 0, dot = 0, nx = 0, ny = 0, noise = 0;
  void add(const std::vector<double>& x, const std::vector<double>& y) {
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double e = x[k] - y[k];
      max_abs = std::max(max_abs, std::fabs(e));
      dot += x[k] * y[k];
      nx += x[k] * x[k];
      ny += y[k] * y[k];
      noise += e * e;
    }
  }
  void print() const {
    const double cosine = (nx > 0 && ny > 0) ? dot / std::sqrt(nx * ny) : (nx == ny ? 1.0 : 0.0);
    const double sqnr = noise > 0 ? 10 * std::log10(nx / noise) : INFINITY;
    std::printf("%-24s %14.6g %12.8f %10.2f\n", name.c_str(), max_abs, cosine, sqnr);
  }
};

std::vector<double> as_doubles(const quench::tensor& t) {
  std::vector<double> out(t.size());
  switch (t.dtype()) {
    case quench::dtype::float32: {
      const auto v = t.view<float>();
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = v[i];
      break;
    }
    case quench::dtype::float16: {
      const auto v = t.view<quench::float16>();
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i]);
      break;
    }
    case quench::dtype::int64: {
      const auto v = t.view<std::int64_t>();
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(v[i]);
      break;
    }
    default:
      throw quench::error(quench::errc::unsupported_dtype, quench::tensor_context(t.name()),
                          "compare handles float, float16 and int64 outputs, found " + quench::to_string(t.dtype()));
  }
  return out;
}

void check_same(const std::vector<quench::tensor>& oa, const std::vector<quench::tensor>& ob) {
  if (oa.size() != ob.size())
    throw quench::error(quench::errc::shape_mismatch, "outputs", "A has " + std::to_string(oa.size()) + ", B has " + std::to_string(ob.size()));
  for (std::size_t i = 0; i < oa.size(); ++i)
    if (oa[i].shape() != ob[i].shape())
      throw quench::error(quench::errc::shape_mismatch, "output '" + oa[i].name() + "'",
                          "A is " + quench::to_string(oa[i].shape()) + ", B is " + quench::to_string(ob[i].shape()));
}

/// Both models over every sample of the data options, batch by batch.
void compare_on_data(const compare_args& a, const quench::model& ma, const quench::model& mb) {
  data_args d = a.data;
  d.seed = a.seed;
  const auto source = open_source(d, ma);
  quench::runtime::executor ea(ma), eb(mb);
  std::vector<output_error> errors;
  const std::int64_t n = source->size();
  const auto start = std::chrono::steady_clock::now();
  const bool bar = !a.quiet && ::isatty(2);
  for (std::int64_t first = 0; first < n; first += a.batch) {
    const std::int64_t count = std::min(a.batch, n - first);
    const quench::data::batch b = source->read(first, count);
    std::unordered_map<std::string, const quench::tensor*> feed;
    for (const auto& [name, t] : b) feed.emplace(name, &t);
    const auto oa = ea.run(feed);
    const auto ob = eb.run(feed);
    check_same(oa, ob);
    if (errors.empty())
      for (const auto& t : oa) errors.push_back({t.name()});
    for (std::size_t i = 0; i < oa.size(); ++i) errors[i].add(as_doubles(oa[i]), as_doubles(ob[i]));
    if (bar) show_progress({first + count, n, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  }
  std::printf("%lld samples\n%-24s %14s %12s %10s\n", static_cast<long long>(n), "output", "max |A - B|", "cosine", "SQNR dB");
  for (const auto& e : errors) e.print();
}

void compare_models(const compare_args& a) {
  const quench::model ma = quench::onnx::load_model(a.a);
  const quench::model mb = quench::onnx::load_model(a.b);
  if (!a.data.empty()) {
    if (!a.inputs.empty()) throw quench::error(quench::errc::invalid_argument, "--input", "give either --input files or --data / --images");
    compare_on_data(a, ma, mb);
    return;
  }
  auto inputs = read_inputs(a.inputs);
  add_random_inputs(ma, inputs, a.seed, a.dim);
  quench::runtime::executor ea(ma), eb(mb);
  const auto oa = ea.run(feed_of(inputs));
  const auto ob = eb.run(feed_of(inputs));
  if (oa.size() != ob.size())
    throw quench::error(quench::errc::shape_mismatch, "outputs", "A has " + std::to_string(oa.size()) + ", B has " + std::to_string(ob.size()));
  std::printf("%-24s %14s %12s %10s\n", "output", "max |A - B|", "cosine", "SQNR dB");
  for (std::size_t i = 0; i < oa.size(); ++i) {
    if (oa[i].shape() != ob[i].shape())
      throw quench::error(quench::errc::shape_mismatch, "output '" + oa[i].name() + "'",
                          "A is " + quench::to_string(oa[i].shape()) + ", B is " + quench::to_string(ob[i].shape()));
    const auto x = as_doubles(oa[i]);
    const auto y = as_doubles(ob[i]);
    double max_abs = 0, dot = 0, nx = 0, ny = 0, noise = 0;
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double e = x[k] - y[k];
      max_abs = std::max(max_abs, std::fabs(e));
      dot += x[k] * y[k];
      nx += x[k] * x[k];
      ny += y[k] * y[k];
      noise += e * e;
    }
    const double cosine = (nx > 0 && ny > 0) ? dot / std::sqrt(nx * ny) : (nx == ny ? 1.0 : 0.0);
    const double sqnr = noise > 0 ? 10 * std::log10(nx / noise) : INFINITY;
    std::printf("%-24s %14.6g %12.8f %10.2f\n", oa[i].name().c_str(), max_abs, cosine, sqnr);
  }
}

}  // namespace

void add_compare_command(CLI::App& app) {
  static compare_args a;
  auto* cmd = app.add_subcommand("compare", "Run two models on the same inputs and report how their outputs differ");
  cmd->add_option("a", a.a, "reference model (e.g. the float original)")->required()->check(CLI::ExistingFile);
  cmd->add_option("b", a.b, "model to compare (e.g. the quantized one)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input,-i", a.inputs, "NAME=FILE.npy for a graph input (others get seeded random data)");
  cmd->add_option("--seed", a.seed, "seed for random inputs")->capture_default_str();
  cmd->add_option("--dim", a.dim, "value of symbolic dimensions in random inputs")->capture_default_str();
  add_data_options(cmd, a.data, {false, false});
  cmd->add_option("--batch,-b", a.batch, "samples per run with --data / --images")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--quiet,-q", a.quiet, "no progress bar");
  cmd->callback([] { compare_models(a); });
}

}  // namespace quench_cli
