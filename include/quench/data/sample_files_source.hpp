#pragma once
// sample_files_source: one sample per file, .npy or .npz, the way per-image or per-utterance
// features are often dumped; files are opened one at a time in read(), so memory stays one batch.
//
//     auto files = quench::data::list_files("features/", {".npy", ".npz"});
//     quench::data::sample_files_source src(files, "input", {{"input", 3}});   // [3, 32, 32] each
//     auto b = src.read(0, 8);                                                  // "input": [8, 3, 32, 32]
//
// A .npy file feeds `input`; a .npz file feeds its arrays by name (with `input` set: the array of
// that name, or its only array). A file holds one sample, with or without a leading axis of 1:
// `sample_ranks` gives an input's sample rank (the model input's rank minus the batch axis), and
// a file of that rank + 1 with a leading 1 is a batch of one. Without a rank a file's shape is the
// sample's. The first file fixes each input's sample shape and dtype; a later file that differs is
// an error naming it.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/core/mapped_file.hpp"
#include "quench/data/file_list.hpp"
#include "quench/data/npz_archive.hpp"
#include "quench/data/sample_source.hpp"

namespace quench::data {

class sample_files_source final : public sample_source {
 public:
  sample_files_source(std::vector<std::filesystem::path> files, std::string input, std::map<std::string, std::int64_t> sample_ranks = {})
      : files_(std::move(files)), input_(std::move(input)), ranks_(std::move(sample_ranks)) {
    if (files_.empty()) throw_error(errc::invalid_argument, "sample_files_source", "needs at least one file");
    for (auto& a : open(0)) inputs_.push_back({a.name, a.type, a.dims});
  }

  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  std::string sample_name(std::int64_t i) const override { return "'" + files_[static_cast<std::size_t>(i)].string() + "'"; }

  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    batch b;
    for (const auto& in : inputs_) {
      std::vector<std::int64_t> dims{count};
      dims.insert(dims.end(), in.dims.begin(), in.dims.end());
      b.emplace_back(in.name, tensor::uninitialized(in.type, shape(dims), in.name));
    }
    for (std::int64_t k = 0; k < count; ++k) {
      const auto arrays = open(first + k);
      for (std::size_t i = 0; i < inputs_.size(); ++i) {
        const std::string ctx = sample_name(first + k) + (arrays.size() > 1 ? " array '" + inputs_[i].name + "'" : std::string());
        const array* a = nullptr;
        for (const auto& x : arrays)
          if (x.name == inputs_[i].name) a = &x;
        if (!a) throw_error(errc::invalid_argument, sample_name(first + k), "expected an array '" + inputs_[i].name + "' like the first file's");
        if (a->type != inputs_[i].type)
          throw_error(errc::dtype_mismatch, ctx, "expected " + to_string(inputs_[i].type) + " like the first file, found " + to_string(a->type));
        if (a->dims != inputs_[i].dims)
          throw_shape_mismatch(ctx, "one sample of shape " + to_string(inputs_[i].dims) + " like the first file", to_string(a->dims));
        tensor& t = b[i].second;
        const std::size_t per = t.nbytes() / static_cast<std::size_t>(count);
        if (per) std::memcpy(t.bytes() + static_cast<std::size_t>(k) * per, a->data, per);
      }
    }
    return b;
  }

 private:
  struct array {
    std::string name;
    dtype type = dtype::undefined;
    shape dims;                      ///< of one sample
    const std::byte* data = nullptr;  ///< into `file`
    std::shared_ptr<const void> file;
  };
  struct input_info {
    std::string name;
    dtype type;
    shape dims;
  };

  /// The arrays of file i, mapped (released when the last array goes).
  std::vector<array> open(std::int64_t i) const {
    const std::filesystem::path& path = files_[static_cast<std::size_t>(i)];
    const std::string ext = detail::lower(path.extension().string());
    std::vector<array> out;
    if (ext == ".npz") {
      auto z = std::make_shared<npz_archive>(path);
      std::vector<const npz_archive::member*> ms;
      if (input_.empty()) {
        for (const auto& m : z->members()) ms.push_back(&m);
      } else {
        const npz_archive::member* m = z->find(input_);
        if (!m && z->members().size() == 1) m = &z->members()[0];
        if (!m) throw_error(errc::invalid_argument, "'" + path.string() + "'", "expected an array '" + input_ + "' or a single array, found " + z->names());
        ms.push_back(m);
      }
      for (const auto* m : ms) {
        array a = parse(z->member_data(*m), static_cast<std::size_t>(m->size), input_.empty() ? m->name : input_,
                        "'" + path.string() + "' array '" + m->name + "'");
        a.file = z;
        out.push_back(std::move(a));
      }
    } else {
      auto f = std::make_shared<mapped_file>(path, "calibration data file");
      if (input_.empty()) throw_error(errc::invalid_argument, "'" + path.string() + "'", "a .npy file needs the name of the graph input it feeds");
      array a = parse(f->data(), f->size(), input_, "'" + path.string() + "'");
      a.file = f;
      out.push_back(std::move(a));
    }
    return out;
  }

  array parse(const std::byte* data, std::size_t size, const std::string& name, const std::string& ctx) const {
    const npy_header h = read_npy_header(data, size, ctx);
    if (h.big_endian) throw_error(errc::invalid_argument, ctx, "big-endian arrays are not supported here; save with '<' byte order");
    const std::size_t need = storage_bytes(h.type, shape(h.dims).numel());
    if (size - h.data_offset < need)
      throw_error(errc::parse_error, ctx, "expected " + std::to_string(need) + " bytes of array data, found " + std::to_string(size - h.data_offset));
    std::vector<std::int64_t> dims = h.dims;
    const auto r = ranks_.find(name);
    if (r != ranks_.end() && static_cast<std::int64_t>(dims.size()) == r->second + 1) {
      if (dims[0] != 1)
        throw_shape_mismatch(ctx, "one sample (rank " + std::to_string(r->second) + ", or a leading axis of 1)", to_string(shape(dims)));
      dims.erase(dims.begin());
    }
    array a;
    a.name = name;
    a.type = h.type;
    a.dims = shape(dims);
    a.data = data + h.data_offset;
    return a;
  }

  std::vector<std::filesystem::path> files_;
  std::string input_;
  std::map<std::string, std::int64_t> ranks_;
  std::vector<input_info> inputs_;
};

}  // namespace quench::data
