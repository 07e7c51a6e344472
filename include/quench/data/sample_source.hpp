#pragma once
// sample_source: calibration and evaluation data as random-access samples for named graph inputs.
//
// A source knows how many samples it has and reads any contiguous range of them as one batch:
// for every graph input, a tensor whose leading axis holds the samples. Random access is what
// makes batching, sharding (--shard K/N takes a contiguous range) and resuming trivial, and lets a
// source read lazily so that memory stays one batch however many samples there are.
//
//     auto src = quench::data::tensor_source({{"input", std::move(images)}});  // [N, 3, 224, 224]
//     quench::data::batch b = src->read(0, 8);                                  // samples 0..7

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"

namespace quench::data {

/// One tensor per graph input, each holding the same number of samples along axis 0.
using batch = std::vector<std::pair<std::string, tensor>>;

class sample_source {
 public:
  virtual ~sample_source() = default;
  /// Number of samples.
  virtual std::int64_t size() const = 0;
  /// Samples [first, first + count), 0 <= first, first + count <= size().
  virtual batch read(std::int64_t first, std::int64_t count) = 0;
  /// What sample `i` is, for error messages and skip reports: a file name where there is one.
  virtual std::string sample_name(std::int64_t i) const { return "sample " + std::to_string(i); }
};

namespace detail {
inline void check_range(const sample_source& s, std::int64_t first, std::int64_t count) {
  if (first < 0 || count < 0 || first + count > s.size())
    throw_error(errc::invalid_argument, "sample source",
                "samples [" + std::to_string(first) + ", " + std::to_string(first + count) + ") are outside [0, " +
                    std::to_string(s.size()) + ")");
}

/// Samples [first, first + count) of a tensor with a leading sample axis, copied.
inline tensor slice_samples(const std::byte* base, dtype type, const shape& s, std::int64_t first, std::int64_t count,
                            const std::string& name) {
  std::vector<std::int64_t> dims(s.begin(), s.end());
  dims[0] = count;
  tensor out = tensor::uninitialized(type, shape(dims), name);
  const std::size_t per_sample = out.nbytes() / static_cast<std::size_t>(count > 0 ? count : 1);
  if (out.nbytes()) std::memcpy(out.bytes(), base + static_cast<std::size_t>(first) * per_sample, out.nbytes());
  return out;
}
}  // namespace detail

/// Samples held in memory: one tensor per input, all with the same leading dimension.
class tensor_source final : public sample_source {
 public:
  explicit tensor_source(std::vector<std::pair<std::string, tensor>> inputs) : inputs_(std::move(inputs)) {
    if (inputs_.empty()) throw_error(errc::invalid_argument, "tensor_source", "needs at least one input");
    for (const auto& [name, t] : inputs_) {
      if (t.rank() < 1) throw_error(errc::shape_mismatch, "input '" + name + "'", "expected a leading sample axis, found a scalar");
      if (t.shape()[0] != inputs_[0].second.shape()[0])
        throw_shape_mismatch("input '" + name + "'", std::to_string(inputs_[0].second.shape()[0]) + " samples like '" + inputs_[0].first + "'",
                             std::to_string(t.shape()[0]));
    }
  }
  std::int64_t size() const override { return inputs_[0].second.shape()[0]; }
  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    batch b;
    for (const auto& [name, t] : inputs_)
      b.emplace_back(name, detail::slice_samples(t.bytes(), t.dtype(), t.shape(), first, count, name));
    return b;
  }

 private:
  std::vector<std::pair<std::string, tensor>> inputs_;
};

/// Samples produced by a function: `read(first, count)` must return the batch for that range
/// (a generator, a decoder pipeline, a network stream with its own cache).
class callback_source final : public sample_source {
 public:
  callback_source(std::int64_t size, std::function<batch(std::int64_t first, std::int64_t count)> read)
      : size_(size), read_(std::move(read)) {
    if (size_ < 0) throw_error(errc::invalid_argument, "callback_source", "a negative sample count");
  }
  std::int64_t size() const override { return size_; }
  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    return read_(first, count);
  }

 private:
  std::int64_t size_;
  std::function<batch(std::int64_t, std::int64_t)> read_;
};

}  // namespace quench::data
