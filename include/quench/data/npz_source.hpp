#pragma once
// npz_source: a NumPy .npz archive (np.savez) with one array per graph input, each with a leading
// sample axis; the arrays are memory-mapped inside the archive and read one batch at a time, and
// the pages of each batch are released, so memory stays one batch however large the file is.
//
//     np.savez("calib.npz", input_ids=ids, attention_mask=mask)        # [N, 128] int64 each
//     quench::data::npz_source all("calib.npz");                        // every array, by name
//     quench::data::npz_source one("calib.npz", {{"input", "images"}}); // graph input <- array
//
// Compressed archives (np.savez_compressed) are refused with an error saying so: see
// npz_archive.hpp for why.

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/data/npz_archive.hpp"
#include "quench/data/sample_source.hpp"

namespace quench::data {

class npz_source final : public sample_source {
 public:
  /// Every array of the archive, each feeding the graph input of its name.
  explicit npz_source(const std::filesystem::path& path) : archive_(std::make_shared<npz_archive>(path)) {
    for (const auto& m : archive_->members()) add(m.name, m);
  }
  /// (graph input, array name) pairs; an unknown array name is an error listing the archive's.
  npz_source(const std::filesystem::path& path, const std::vector<std::pair<std::string, std::string>>& inputs)
      : archive_(std::make_shared<npz_archive>(path)) {
    if (inputs.empty()) throw_error(errc::invalid_argument, "npz_source", "needs at least one input");
    for (const auto& [input_name, array] : inputs) {
      const npz_archive::member* m = archive_->find(array);
      if (!m) throw_error(errc::invalid_argument, "'" + archive_->path() + "'", "expected an array '" + array + "', found " + archive_->names());
      add(input_name, *m);
    }
  }

  std::int64_t size() const override { return inputs_[0].dims[0]; }

  std::string sample_name(std::int64_t i) const override { return "'" + archive_->path() + "' sample " + std::to_string(i); }

  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    batch b;
    for (const input& in : inputs_) {
      const std::byte* base = archive_->file()->data() + in.offset;
      tensor t = detail::slice_samples(base, in.type, in.dims, first, count, in.name);
      // As npy_source: the pages just copied leave the resident set.
      archive_->file()->release_streamed(in.offset + static_cast<std::size_t>(first) * (t.nbytes() / static_cast<std::size_t>(count ? count : 1)),
                                t.nbytes());
      b.emplace_back(in.name, std::move(t));
    }
    return b;
  }

  const npz_archive& archive() const noexcept { return *archive_; }

 private:
  struct input {
    std::string name;
    dtype type = dtype::undefined;
    shape dims;
    std::size_t offset = 0;  ///< of the first element in the archive file
  };

  void add(const std::string& name, const npz_archive::member& m) {
    const std::string ctx = "'" + archive_->path() + "' array '" + m.name + "'";
    const std::byte* data = archive_->member_data(m);
    const npy_header h = read_npy_header(data, static_cast<std::size_t>(m.size), ctx);
    if (h.dims.empty()) throw_error(errc::shape_mismatch, ctx, "expected an array with a leading sample axis, found a scalar");
    if (h.big_endian) throw_error(errc::invalid_argument, ctx, "big-endian arrays are not supported here; save with '<' byte order");
    input in;
    in.name = name;
    in.type = h.type;
    in.dims = shape(h.dims);
    in.offset = static_cast<std::size_t>(m.offset) + h.data_offset;
    const std::size_t need = storage_bytes(h.type, in.dims.numel());
    if (m.size < h.data_offset || m.size - h.data_offset < need)
      throw_error(errc::parse_error, ctx, "expected " + std::to_string(need) + " bytes of array data, found " +
                                              std::to_string(m.size < h.data_offset ? 0 : m.size - h.data_offset));
    if (!inputs_.empty() && in.dims[0] != inputs_[0].dims[0])
      throw_shape_mismatch(ctx, std::to_string(inputs_[0].dims[0]) + " samples like array for '" + inputs_[0].name + "'", std::to_string(in.dims[0]));
    inputs_.push_back(std::move(in));
  }

  std::shared_ptr<npz_archive> archive_;
  std::vector<input> inputs_;
};

}  // namespace quench::data
