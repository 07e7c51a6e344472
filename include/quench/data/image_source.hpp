#pragma once
// image_source: one graph input fed from image files, one file per sample, decoded and
// preprocessed lazily in read() so that memory stays one batch however many files there are.
// Part of the optional quench::image target (it decodes with image_decode.hpp).
//
//     quench::data::preprocess_options o = quench::data::preprocess_from_json(
//         R"({"shape": [3, 224, 224], "resize": "short_crop", "resize_short": 256,
//             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})", "--preprocess");
//     quench::data::image_source src("input", {"a.jpg", "b.png"}, o);
//     quench::data::batch b = src.read(0, 2);   // "input": [2, 3, 224, 224] float32

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "quench/data/image_decode.hpp"
#include "quench/data/preprocess.hpp"
#include "quench/data/sample_source.hpp"

namespace quench::data {

class image_source final : public sample_source {
 public:
  /// Files are decoded in the given order; a target of 1 channel decodes them as grayscale
  /// (IMREAD_GRAYSCALE), else as BGR (IMREAD_COLOR). Options are checked here, files in read().
  image_source(std::string input_name, std::vector<std::filesystem::path> files, preprocess_options o)
      : name_(std::move(input_name)), files_(std::move(files)), options_(std::move(o)) {
    detail::check_options(options_, "image_source for input '" + name_ + "'");
    if (files_.empty()) throw_error(errc::invalid_argument, "image_source for input '" + name_ + "'", "needs at least one image file");
  }

  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }

  /// Samples [first, first + count) as one tensor [count, C, H, W] (or [count, H, W, C]).
  /// A file that cannot be decoded, or does not fit the options, throws naming the file.
  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    const std::int64_t C = options_.channels, H = options_.height, W = options_.width;
    std::vector<std::int64_t> dims = options_.out_layout == layout::nchw ? std::vector<std::int64_t>{count, C, H, W}
                                                                          : std::vector<std::int64_t>{count, H, W, C};
    tensor out = tensor::uninitialized(options_.out_type, shape(dims), name_);
    const std::size_t per = out.nbytes() / static_cast<std::size_t>(count > 0 ? count : 1);
    decode_options d;
    d.grayscale = C == 1;
    for (std::int64_t i = 0; i < count; ++i) {
      const std::filesystem::path& f = files_[static_cast<std::size_t>(first + i)];
      const tensor one = preprocess(decode_image(f, d), options_, "image '" + f.string() + "'");
      std::memcpy(out.bytes() + static_cast<std::size_t>(i) * per, one.bytes(), per);
    }
    batch b;
    b.emplace_back(name_, std::move(out));
    return b;
  }

  const std::string& input_name() const noexcept { return name_; }
  const std::vector<std::filesystem::path>& files() const noexcept { return files_; }
  const preprocess_options& options() const noexcept { return options_; }

 private:
  std::string name_;
  std::vector<std::filesystem::path> files_;
  preprocess_options options_;
};

}  // namespace quench::data
