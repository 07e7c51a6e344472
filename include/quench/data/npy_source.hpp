#pragma once
// npy_source: .npy files with a leading sample axis, one per graph input, memory-mapped and read
// one batch at a time: a 20 GB calibration array costs the memory of one batch.
//
//     quench::data::npy_source src({{"input", "calib_images.npy"}});   // [N, 3, 224, 224] float32
//     auto b = src.read(64, 32);                                        // samples 64..95

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/core/mapped_file.hpp"
#include "quench/data/sample_source.hpp"

namespace quench::data {

class npy_source final : public sample_source {
 public:
  /// (graph input name, .npy path) pairs; every array needs the same leading dimension.
  explicit npy_source(const std::vector<std::pair<std::string, std::filesystem::path>>& files) {
    if (files.empty()) throw_error(errc::invalid_argument, "npy_source", "needs at least one input file");
    for (const auto& [name, path] : files) {
      input in;
      in.name = name;
      in.path = path.string();
      in.file = std::make_shared<mapped_file>(path, "calibration data file");
      const std::string ctx = "'" + in.path + "'";
      const npy_header h = read_npy_header(in.file->data(), in.file->size(), ctx);
      if (h.dims.empty()) throw_error(errc::shape_mismatch, ctx, "expected an array with a leading sample axis, found a scalar");
      if (h.big_endian) throw_error(errc::invalid_argument, ctx, "big-endian arrays are not supported here; save with '<' byte order");
      in.type = h.type;
      in.dims = shape(h.dims);
      in.offset = h.data_offset;
      const std::size_t need = storage_bytes(h.type, in.dims.numel());
      if (in.file->size() < h.data_offset || in.file->size() - h.data_offset < need)
        throw_error(errc::parse_error, ctx, "expected " + std::to_string(need) + " bytes of array data, found " +
                                                std::to_string(in.file->size() - std::min(in.file->size(), h.data_offset)));
      if (!inputs_.empty() && in.dims[0] != inputs_[0].dims[0])
        throw_shape_mismatch(ctx, std::to_string(inputs_[0].dims[0]) + " samples like '" + inputs_[0].path + "'",
                             std::to_string(in.dims[0]));
      inputs_.push_back(std::move(in));
    }
  }

  std::int64_t size() const override { return inputs_[0].dims[0]; }

  std::string sample_name(std::int64_t i) const override {
    return "'" + inputs_[0].path + "' sample " + std::to_string(i);
  }

  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    batch b;
    for (const input& in : inputs_) {
      tensor t = detail::slice_samples(in.file->data() + in.offset, in.type, in.dims, first, count, in.name);
      // The pages just copied are not needed again soon: they leave the resident set.
      in.file->release_streamed(in.offset + static_cast<std::size_t>(first) * (t.nbytes() / static_cast<std::size_t>(count ? count : 1)), t.nbytes());
      b.emplace_back(in.name, std::move(t));
    }
    return b;
  }

 private:
  struct input {
    std::string name, path;
    std::shared_ptr<mapped_file> file;
    dtype type = dtype::undefined;
    shape dims;
    std::size_t offset = 0;
  };
  std::vector<input> inputs_;
};

}  // namespace quench::data
