#pragma once
// subset_source: a seeded random subset and/or order of another source's samples (--samples N,
// --shuffle, --seed S), deterministic given the seed on every platform.
//
//     quench::data::subset_options o;
//     o.samples = 500;  o.shuffle = true;  o.seed = 7;
//     quench::data::subset_source src(std::make_unique<quench::data::npy_source>(files), o);
//
// The RNG is std::mt19937_64 seeded with `seed` (its output sequence is fixed by the C++
// standard). The order is a Fisher-Yates shuffle run from the last index down, where index i
// swaps with j = r mod (i + 1) for the first draw r of the generator below the largest multiple
// of i + 1 (rejection, so j is unbiased; std::shuffle and std::uniform_int_distribution are not
// specified exactly, so they would differ between standard libraries). `samples` = N keeps the
// first N of that permutation; without `shuffle` those N are then put back in source order, which
// keeps files and pages read in order. Sharding (calibrate --shard K/N) takes contiguous ranges of
// this source, so shards of a shuffled source still cover every chosen sample exactly once.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "quench/data/sample_source.hpp"

namespace quench::data {

struct subset_options {
  std::int64_t samples = -1;  ///< keep this many samples (-1: all)
  bool shuffle = false;       ///< random order instead of the source's
  std::uint64_t seed = 0;
};

namespace detail {
/// 0..n-1 permuted by the documented Fisher-Yates over mt19937_64(seed).
inline std::vector<std::int64_t> seeded_permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const std::uint64_t range = static_cast<std::uint64_t>(i) + 1;
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % range;  // draws >= limit are rejected
    std::uint64_t r;
    do r = rng();
    while (r >= limit);
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(r % range)]);
  }
  return p;
}

/// Reads `indices` of `src` as one batch, one inner read per run of consecutive indices.
inline batch gather(sample_source& src, const std::int64_t* indices, std::int64_t count) {
  batch out;
  std::int64_t done = 0;
  while (done < count) {
    std::int64_t run = 1;
    while (done + run < count && indices[done + run] == indices[done + run - 1] + 1) ++run;
    batch part = src.read(indices[done], run);
    if (done == 0 && run == count) return part;
    if (out.empty())
      for (auto& [name, t] : part) {
        std::vector<std::int64_t> dims(t.shape().begin(), t.shape().end());
        dims[0] = count;
        out.emplace_back(name, tensor::uninitialized(t.dtype(), shape(dims), name));
      }
    for (std::size_t i = 0; i < part.size() && i < out.size(); ++i) {
      const tensor& t = part[i].second;
      const std::size_t per = out[i].second.nbytes() / static_cast<std::size_t>(count);
      if (t.nbytes() != per * static_cast<std::size_t>(run) || t.dtype() != out[i].second.dtype())
        throw_error(errc::shape_mismatch, "input '" + part[i].first + "'",
                    "samples of " + std::to_string(per) + " bytes of " + to_string(out[i].second.dtype()) + " like the first, found " +
                        to_string(t.shape()) + " " + to_string(t.dtype()) + " at " + src.sample_name(indices[done]));
      if (t.nbytes()) std::memcpy(out[i].second.bytes() + static_cast<std::size_t>(done) * per, t.bytes(), t.nbytes());
    }
    done += run;
  }
  return out;
}
}  // namespace detail

/// The samples at `indices` of a source it does not own (which must outlive it), in that order:
/// range selection's halves of the report samples, and what subset_source reads through.
class index_view final : public sample_source {
 public:
  index_view(sample_source& inner, std::vector<std::int64_t> indices) : inner_(&inner), index_(std::move(indices)) {
    const std::int64_t n = inner.size();
    for (std::int64_t i : index_)
      if (i < 0 || i >= n)
        throw_error(errc::invalid_argument, "index_view", "index " + std::to_string(i) + " outside a source of " + std::to_string(n) + " samples");
  }
  std::int64_t size() const override { return static_cast<std::int64_t>(index_.size()); }
  std::string sample_name(std::int64_t i) const override { return inner_->sample_name(index_[static_cast<std::size_t>(i)]); }
  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    return detail::gather(*inner_, index_.data() + first, count);
  }
  /// Index in the inner source of each sample.
  const std::vector<std::int64_t>& indices() const noexcept { return index_; }

 private:
  sample_source* inner_;
  std::vector<std::int64_t> index_;
};

class subset_source final : public sample_source {
 public:
  subset_source(std::unique_ptr<sample_source> inner, const subset_options& o)
      : inner_(std::move(inner)), view_(checked(inner_), pick(checked(inner_), o)) {}

  std::int64_t size() const override { return view_.size(); }
  std::string sample_name(std::int64_t i) const override { return view_.sample_name(i); }
  batch read(std::int64_t first, std::int64_t count) override { return view_.read(first, count); }
  /// Index in the inner source of each sample.
  const std::vector<std::int64_t>& indices() const noexcept { return view_.indices(); }

 private:
  static sample_source& checked(const std::unique_ptr<sample_source>& inner) {
    if (!inner) throw_error(errc::invalid_argument, "subset_source", "needs a source");
    return *inner;
  }
  static std::vector<std::int64_t> pick(const sample_source& inner, const subset_options& o) {
    const std::int64_t n = inner.size();
    if (o.samples < -1 || o.samples == 0)
      throw_error(errc::invalid_argument, "--samples", "expected a positive count, found " + std::to_string(o.samples));
    const std::int64_t keep = o.samples < 0 ? n : std::min(o.samples, n);
    std::vector<std::int64_t> index;
    if (!o.shuffle && keep == n) {
      index.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) index[static_cast<std::size_t>(i)] = i;
      return index;
    }
    index = detail::seeded_permutation(n, o.seed);
    index.resize(static_cast<std::size_t>(keep));
    if (!o.shuffle) std::sort(index.begin(), index.end());
    return index;
  }

  std::unique_ptr<sample_source> inner_;
  index_view view_;  // over *inner_, so declared after it
};

}  // namespace quench::data
