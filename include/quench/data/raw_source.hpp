#pragma once
// raw_source: raw binary samples of a given shape and dtype, the calibration batch files that
// TensorRT's samples write (`batch.astype(np.float32).tofile(f)`): one file of N samples, one file
// per sample, or any number of files each holding a whole number of samples, read in order.
// Files are read with pread in read(), so memory stays one batch.
//
//     quench::data::raw_source src("input", {"batch0.bin", "batch1.bin"}, {3, 224, 224}, quench::dtype::float32);
//
// Bytes are little-endian, C order, like numpy's tofile on x86 and ARM.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "quench/data/sample_source.hpp"

namespace quench::data {

class raw_source final : public sample_source {
 public:
  /// `sample` is the shape of one sample (no batch axis).
  raw_source(std::string input, std::vector<std::filesystem::path> files, shape sample, dtype type)
      : name_(std::move(input)), files_(std::move(files)), sample_(std::move(sample)), type_(type) {
    const std::string ctx = "raw data for input '" + name_ + "'";
    if (files_.empty()) throw_error(errc::invalid_argument, ctx, "needs at least one file");
    if (type_ == dtype::undefined || type_ == dtype::string) throw_error(errc::unsupported_dtype, ctx, "needs a numeric dtype, found " + to_string(type_));
    for (auto d : sample_)
      if (d <= 0) throw_error(errc::shape_mismatch, ctx, "expected positive sample dimensions, found " + to_string(sample_));
    bytes_ = storage_bytes(type_, sample_.numel());
    if (bytes_ == 0) throw_error(errc::shape_mismatch, ctx, "a sample of shape " + to_string(sample_) + " has no bytes");
    std::int64_t total = 0;
    for (const auto& f : files_) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(f, ec);
      if (ec) throw_error(errc::io_error, "'" + f.string() + "'", "cannot read the raw data file: " + ec.message());
      if (size == 0 || size % bytes_ != 0)
        throw_error(errc::parse_error, "'" + f.string() + "'",
                    "expected a whole number of samples of " + std::to_string(bytes_) + " bytes (" + to_string(sample_) + " " + to_string(type_) +
                        "), found " + std::to_string(size) + " bytes");
      total += static_cast<std::int64_t>(size / bytes_);
      ends_.push_back(total);
    }
  }

  std::int64_t size() const override { return ends_.back(); }

  std::string sample_name(std::int64_t i) const override {
    const std::size_t f = file_of(i);
    const std::int64_t local = i - (f ? ends_[f - 1] : 0);
    return "'" + files_[f].string() + "'" + (ends_[f] - (f ? ends_[f - 1] : 0) > 1 ? " sample " + std::to_string(local) : std::string());
  }

  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    std::vector<std::int64_t> dims{count};
    dims.insert(dims.end(), sample_.begin(), sample_.end());
    tensor t = tensor::uninitialized(type_, shape(dims), name_);
    std::int64_t done = 0;
    while (done < count) {
      const std::int64_t i = first + done;
      const std::size_t f = file_of(i);
      const std::int64_t begin = f ? ends_[f - 1] : 0;
      const std::int64_t n = std::min(count - done, ends_[f] - i);
      read_bytes(files_[f], static_cast<std::uint64_t>(i - begin) * bytes_, t.bytes() + static_cast<std::size_t>(done) * bytes_,
                 static_cast<std::size_t>(n) * bytes_);
      done += n;
    }
    batch b;
    b.emplace_back(name_, std::move(t));
    return b;
  }

 private:
  std::size_t file_of(std::int64_t i) const {
    return static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), i) - ends_.begin());
  }
  static void read_bytes(const std::filesystem::path& path, std::uint64_t offset, std::byte* out, std::size_t n) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error(errc::io_error, "'" + path.string() + "'", "cannot open the raw data file");
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
      if (r <= 0) {
        ::close(fd);
        throw_error(errc::io_error, "'" + path.string() + "'", "cannot read " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                                                                   (r == 0 ? " (the file shrank)" : ""));
      }
      got += static_cast<std::size_t>(r);
    }
    ::close(fd);
  }

  std::string name_;
  std::vector<std::filesystem::path> files_;
  shape sample_;
  dtype type_;
  std::size_t bytes_ = 0;
  std::vector<std::int64_t> ends_;  ///< cumulative sample counts per file
};

}  // namespace quench::data
