#pragma once
// observe_samples: runs a model over samples spread evenly over a data source, in batches, and shows every
// tensor to an observer. The statistics the recovery steps need (per-channel means for bias
// correction, per-channel maxima for SmoothQuant) are all of this shape.
//
//     quench::recover::observe_samples(model, data, 64, 8, {}, [&](const std::string& name, const quench::tensor& t) { ... });

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "quench/core/error.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/data/spread_samples.hpp"
#include "quench/graph/model.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::recover {

/// Runs `m` on min(samples, source.size()) samples spread evenly over `source`
/// (data::spread_indices) in batches of `batch_size`, calling `watch` for every graph input and
/// produced tensor.
inline void observe_samples(const model& m, data::sample_source& source, std::int64_t samples, std::int64_t batch_size,
                            const runtime::executor_options& eo, const runtime::observer& watch) {
  if (batch_size < 1 || samples < 1) throw_error(errc::invalid_argument, "observe_samples", "samples and batch size must be >= 1");
  runtime::executor ex(m, eo);
  data::for_each_spread_batch(source, samples, batch_size, [&](data::batch& b) {
    std::unordered_map<std::string, const tensor*> feeds;
    for (auto& [name, t] : b) feeds.emplace(name, &t);
    ex.run(feeds, watch);
  });
}

}  // namespace quench::recover
