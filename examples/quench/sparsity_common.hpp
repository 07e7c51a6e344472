#pragma once
// What `quench sparsify` and `quench prune` share: the accuracy check (output SQNR of the changed
// model against the original in quench's executor, on --data samples or seeded random inputs) and
// size formatting.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_io.hpp"
#include "quench/data/npy_source.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/error_report.hpp"

namespace quench_cli {

/// --data NAME=FILE.npy samples (along axis 0), or `count` seeded normal(0, 1) samples shaped after
/// the graph inputs (symbolic dimensions 1; integer inputs zeros). `batch` is set to the size
/// each model run takes: a fixed leading dimension, else 1.
inline std::unique_ptr<quench::data::sample_source> accuracy_samples(const quench::model& m, const std::vector<std::string>& data,
                                                                     std::int64_t count, std::uint32_t seed, std::int64_t& batch) {
  batch = 1;
  if (!data.empty()) return std::make_unique<quench::data::npy_source>(named_files(data, "--data"));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<std::pair<std::string, quench::tensor>> inputs;
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    if (!v->dims() || v->dims()->empty() || v->dtype() == quench::dtype::undefined)
      throw quench::error(quench::errc::invalid_argument, "input '" + v->name() + "'",
                          "has no known type and shape for random samples; pass it with --data");
    const auto& d0 = v->dims()->front();
    if (inputs.empty()) batch = d0.value ? *d0.value : 1;
    std::vector<std::int64_t> dims{count * batch};
    for (std::size_t i = 1; i < v->dims()->size(); ++i) dims.push_back((*v->dims())[i].value ? *(*v->dims())[i].value : 1);
    quench::tensor t(v->dtype(), quench::shape(dims), v->name());
    if (t.dtype() == quench::dtype::float32)
      for (auto& x : t.view<float>()) x = normal(rng);
    inputs.emplace_back(v->name(), std::move(t));
  }
  return std::make_unique<quench::data::tensor_source>(std::move(inputs));
}

inline std::string sqnr_text(double db) {
  if (std::isinf(db)) return db > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", db);
  return buf;
}

/// Runs both models in the executor on the samples, prints the output SQNR and returns it as JSON.
inline nlohmann::json print_accuracy(const quench::model& original, const quench::model& changed, const std::vector<std::string>& data,
                                     std::int64_t samples, std::uint32_t seed, int threads) {
  std::int64_t batch = 1;
  auto src = accuracy_samples(original, data, samples, seed, batch);
  quench::pipeline::compare_options o;
  o.samples = samples * batch;
  o.batch_size = batch;
  o.executor.threads = threads;
  const auto r = quench::pipeline::compare_models(original, changed, *src, {}, o);
  std::printf("  output SQNR vs the original (%lld %s sample%s, quench executor):", static_cast<long long>(r.samples),
              data.empty() ? "random" : "--data", r.samples == 1 ? "" : "s");
  nlohmann::json j = nlohmann::json::object();
  for (const auto& t : r.outputs) {
    std::printf(" %s %s dB", t.name.c_str(), sqnr_text(t.sqnr_db()).c_str());
    const double db = t.sqnr_db();
    j[t.name] = {{"sqnr_db", std::isfinite(db) ? nlohmann::json(db) : nlohmann::json(sqnr_text(db))},
                 {"cosine", t.cosine()}, {"max_abs_error", t.max_abs_error}};
  }
  std::printf("\n");
  return {{"samples", r.samples}, {"outputs", j}};
}

inline std::string size_text(std::size_t bytes) {
  char buf[32];
  if (bytes >= 1000000) std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  else std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(bytes) / 1e3);
  return buf;
}

inline double ratio(double after, double before) { return before > 0 ? after / before : 1.0; }

}  // namespace quench_cli
