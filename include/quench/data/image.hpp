#pragma once
// image: decoded pixels, interleaved, in the channel order cv2.imread returns (BGR for colour).
// It is what decode_image (image_decode.hpp, needs quench::image) produces and what preprocess
// (preprocess.hpp, header-only) consumes; users who decode with their own library fill it too.
//
//     quench::data::image img{480, 640, 3, quench::dtype::uint8, std::move(bgr_bytes)};

#include <cstdint>
#include <string>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"

namespace quench::data {

/// `height * width * channels` samples of `type` (uint8, or uint16 in native byte order), rows
/// top to bottom, channels interleaved: 1 = gray, 3 = B, G, R (like cv2.imread).
struct image {
  std::int64_t height = 0, width = 0, channels = 0;
  dtype type = dtype::uint8;
  std::vector<std::uint8_t> pixels;

  std::size_t sample_bytes() const noexcept { return type == dtype::uint16 ? 2 : 1; }
};

namespace detail {
/// Checks that `img` is consistent before a kernel walks its bytes.
inline void check_image(const image& img, const std::string& context) {
  if (img.type != dtype::uint8 && img.type != dtype::uint16)
    throw_error(errc::unsupported_dtype, context, "expected uint8 or uint16 pixels, found " + to_string(img.type));
  if (img.height <= 0 || img.width <= 0 || img.channels <= 0 || img.channels > 4)
    throw_error(errc::shape_mismatch, context,
                "expected a non-empty image with 1 to 4 channels, found " + std::to_string(img.height) + "x" +
                    std::to_string(img.width) + "x" + std::to_string(img.channels));
  const auto need = static_cast<std::uint64_t>(img.height) * static_cast<std::uint64_t>(img.width) *
                    static_cast<std::uint64_t>(img.channels) * img.sample_bytes();
  if (img.pixels.size() != need)
    throw_error(errc::shape_mismatch, context,
                "expected " + std::to_string(need) + " pixel bytes, found " + std::to_string(img.pixels.size()));
}
}  // namespace detail

}  // namespace quench::data
