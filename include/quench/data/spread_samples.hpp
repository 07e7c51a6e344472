#pragma once
// spread_samples: N samples of a source spread evenly over all of it, read in batches.
//
// The recovery steps and the error report look at a few samples (8 for the report, 64 for bias
// correction) out of many. Data is usually ordered: by class, by recording, by the clip its
// windows came from. The first N samples are then one class or one clip. On openWakeWord the
// first 8 of 512 calibration windows were one clip: the report said 28.9 dB where all 512 gave
// 26.2 dB, and the steps were chosen on that clip. Spread samples are a deterministic stratified
// pick: sample k of N is source index floor(k * size / N), so the first and every size/N-th are
// taken and consecutive indices (read as one range) stay together when N is close to size.
//
//     quench::data::for_each_spread_batch(source, 8, 4, [&](quench::data::batch& b) { ... });

#include <cstdint>
#include <functional>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/data/subset_source.hpp"

namespace quench::data {

/// Indices of min(n, size) samples spread evenly over [0, size): k * size / n for k < n, rounded
/// down, strictly increasing; all of 0..size-1 when n >= size.
inline std::vector<std::int64_t> spread_indices(std::int64_t size, std::int64_t n) {
  if (size < 0 || n < 0) throw_error(errc::invalid_argument, "spread_indices", "size and count must be >= 0");
  const std::int64_t keep = n < size ? n : size;
  std::vector<std::int64_t> out(static_cast<std::size_t>(keep));
  if (keep == 0) return out;
  // k * size / keep as k * q + k * r / keep: k * size itself overflows for large sources.
  const std::int64_t q = size / keep, r = size % keep;
  for (std::int64_t k = 0; k < keep; ++k) out[static_cast<std::size_t>(k)] = k * q + k * r / keep;
  return out;
}

/// Calls `f` with batches of at most `batch_size` of the samples spread_indices(source.size(),
/// samples) picks, in source order; returns how many samples it read.
inline std::int64_t for_each_spread_batch(sample_source& source, std::int64_t samples, std::int64_t batch_size,
                                          const std::function<void(batch&)>& f) {
  if (batch_size < 1 || samples < 1) throw_error(errc::invalid_argument, "sample batches", "samples and batch size must be >= 1");
  const std::vector<std::int64_t> index = spread_indices(source.size(), samples);
  const std::int64_t total = static_cast<std::int64_t>(index.size());
  for (std::int64_t first = 0; first < total; first += batch_size) {
    const std::int64_t count = total - first < batch_size ? total - first : batch_size;
    batch b = detail::gather(source, index.data() + first, count);
    f(b);
  }
  return total;
}

}  // namespace quench::data
