#pragma once
// preprocess: one decoded image to one network input tensor, the way the usual Python pipelines
// do it with cv2 and numpy, so calibration sees exactly the tensors deployment will:
//
//     img = cv2.imread(path)                                  # BGR uint8 (decode_image)
//     img = cv2.resize(img, (W, H), interpolation=interp)     # on uint8 (resize.hpp)
//     img = img[:, :, ::-1]                                   # order = rgb
//     x = (img.astype(np.float32) * scale - mean) / std       # float32 arithmetic, per channel
//     x = x.transpose(2, 0, 1)                                # layout = nchw
//
//     quench::data::preprocess_options o;                     // 3x224x224 RGB, x / 255
//     o.mean = {0.485f, 0.456f, 0.406f};
//     o.std = {0.229f, 0.224f, 0.225f};
//     quench::tensor x = quench::data::preprocess(img, o, "cat.jpg");   // [3, 224, 224] float32
//
// Header-only and free of decoder libraries: decoding lives in image_decode.hpp (quench::image).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/image.hpp"
#include "quench/data/resize.hpp"

namespace quench::data {

/// How the image reaches the target height x width.
enum class resize_mode {
  exact,       ///< cv2.resize to (W, H), aspect ratio not kept
  short_crop,  ///< shorter side to resize_short (default max(H, W)), longer side scaled and rounded
               ///< half up, then the centre H x W crop (offsets floor((new - target) / 2))
  keep_pad,    ///< PaddleOCR recogniser (resize_norm_img): height H, width min(W, ceil(H * w / h)),
               ///< right-padded to W with pad_value
};
enum class channel_order { rgb, bgr };
enum class layout { nchw, nhwc };

struct preprocess_options {
  std::int64_t channels = 3, height = 224, width = 224;  ///< target C, H, W; C = 1 decodes as grayscale
  resize_mode resize = resize_mode::exact;
  interpolation interp = interpolation::linear;
  channel_order order = channel_order::rgb;  ///< of the output channels (decoded pixels are BGR)
  /// float32 output: x = pixel * scale, then (x - mean[c]) / std[c], or with `norm` set (ncnn's
  /// form) (x - mean[c]) * norm[c]; c is the output channel. One value applies to every channel.
  float scale = 1.f / 255.f;
  std::vector<float> mean{0, 0, 0}, std{1, 1, 1};
  std::vector<float> norm;
  /// keep_pad: the value of padded pixels in the output, i.e. after normalization (PaddleOCR pads
  /// the normalized tensor with 0); for uint8 output rounded and clamped to 0..255.
  float pad_value = 0.f;
  layout out_layout = layout::nchw;
  dtype out_type = dtype::float32;  ///< float32, or uint8 (resized pixels, no normalization)
  std::int64_t resize_short = 0;    ///< short_crop: shorter side before the crop; 0 = max(H, W)
  /// Resize float32 pixel values (cv2.resize on img.astype(np.float32)) instead of uint8 ones;
  /// always so for 16-bit images.
  bool resize_float = false;
};

namespace detail {

inline void check_per_channel(const std::vector<float>& v, std::int64_t channels, const char* name, bool nonzero,
                              const std::string& context) {
  // A grayscale target accepts three equal values: the defaults are written per RGB channel.
  const bool gray_defaults = channels == 1 && v.size() == 3 && v[0] == v[1] && v[1] == v[2];
  if (v.size() != 1 && v.size() != static_cast<std::size_t>(channels) && !gray_defaults)
    throw_invalid_argument(context, std::string(name) + " with 1 or " + std::to_string(channels) + " values",
                           std::to_string(v.size()) + " values");
  for (float x : v)
    if (!std::isfinite(x) || (nonzero && x == 0.f))
      throw_error(errc::invalid_value, context, std::string(name) + " values must be finite" + (nonzero ? " and non-zero" : ""));
}

inline void check_options(const preprocess_options& o, const std::string& context) {
  if (o.channels != 1 && o.channels != 3)
    throw_invalid_argument(context, "1 (grayscale) or 3 channels in the target shape", std::to_string(o.channels));
  if (o.height <= 0 || o.width <= 0 || o.height > (1 << 24) || o.width > (1 << 24))
    throw_invalid_argument(context, "a target height and width in [1, 2^24]",
                           std::to_string(o.height) + "x" + std::to_string(o.width));
  if (o.out_type != dtype::float32 && o.out_type != dtype::uint8)
    throw_error(errc::unsupported_dtype, context, "expected float32 or uint8 output, found " + to_string(o.out_type));
  if (o.resize_short < 0 || o.resize_short > (1 << 24))
    throw_invalid_argument(context, "resize_short in [0, 2^24]", std::to_string(o.resize_short));
  if (!std::isfinite(o.scale) || !std::isfinite(o.pad_value)) throw_error(errc::invalid_value, context, "scale and pad_value must be finite");
  check_per_channel(o.mean, o.channels, "mean", false, context);
  if (o.norm.empty()) check_per_channel(o.std, o.channels, "std", true, context);
  else check_per_channel(o.norm, o.channels, "norm", false, context);
}

/// The resized size and the crop origin of a `h` x `w` image.
struct resize_plan {
  std::int64_t rh, rw, top = 0, left = 0, valid_w;  // valid_w: output columns taken from the image
};

inline resize_plan plan_resize(std::int64_t h, std::int64_t w, const preprocess_options& o, const std::string& context) {
  const std::int64_t H = o.height, W = o.width;
  switch (o.resize) {
    case resize_mode::exact: return {H, W, 0, 0, W};
    case resize_mode::short_crop: {
      const std::int64_t s = o.resize_short > 0 ? o.resize_short : std::max(H, W);
      resize_plan p{0, 0, 0, 0, W};
      if (h <= w) p.rh = s, p.rw = (w * s * 2 + h) / (2 * h);
      else p.rw = s, p.rh = (h * s * 2 + w) / (2 * w);
      if (p.rh < H || p.rw < W)
        throw_invalid_argument(context, "a resized image that covers the " + std::to_string(H) + "x" + std::to_string(W) + " crop",
                               std::to_string(p.rh) + "x" + std::to_string(p.rw) + " (resize_short " + std::to_string(s) + ")");
      if (p.rh > (1 << 24) || p.rw > (1 << 24)) throw_invalid_argument(context, "a resized side <= 2^24", std::to_string(std::max(p.rh, p.rw)));
      p.top = (p.rh - H) / 2;
      p.left = (p.rw - W) / 2;
      return p;
    }
    case resize_mode::keep_pad: {
      // PaddleOCR: ratio = w / float(h); ceil(imgH * ratio) in double, capped at imgW.
      const double want = std::ceil(static_cast<double>(H) * (static_cast<double>(w) / static_cast<double>(h)));
      const std::int64_t rw = want > static_cast<double>(W) ? W : std::max<std::int64_t>(1, static_cast<std::int64_t>(want));
      return {H, rw, 0, 0, rw};
    }
  }
  throw_invalid_argument(context, "a known resize mode", std::to_string(static_cast<int>(o.resize)));
}

inline float pick(const std::vector<float>& v, std::int64_t c) noexcept { return v.size() == 1 ? v[0] : v[static_cast<std::size_t>(c)]; }

}  // namespace detail

/// One image to one sample: [C, H, W] (nchw) or [H, W, C] (nhwc) of out_type. Errors name `context`
/// (usually the file): a channel count that is not the target's, bad options.
inline tensor preprocess(const image& img, const preprocess_options& o, const std::string& context) {
  detail::check_options(o, context);
  detail::check_image(img, context);
  const std::int64_t C = o.channels, H = o.height, W = o.width;
  if (img.channels != C)
    throw_shape_mismatch(context, std::to_string(C) + "-channel pixels for the target shape [" + std::to_string(C) + ", " +
                                      std::to_string(H) + ", " + std::to_string(W) + "]",
                         std::to_string(img.channels) + " channels");
  const bool u8_out = o.out_type == dtype::uint8;
  if (u8_out && img.type != dtype::uint8)
    throw_error(errc::dtype_mismatch, context, "uint8 output needs 8-bit pixels, found " + to_string(img.type));
  const detail::resize_plan p = detail::plan_resize(img.height, img.width, o, context);
  const bool in_float = img.type == dtype::uint16 || (o.resize_float && !u8_out);

  // Resized pixels, interleaved, rh x rw x C.
  const std::size_t n = static_cast<std::size_t>(p.rh * p.rw * C);
  std::vector<std::uint8_t> r8;
  std::vector<float> rf;
  if (in_float) {
    const std::size_t m = static_cast<std::size_t>(img.height * img.width * C);
    std::vector<float> src(m);
    if (img.type == dtype::uint16) {
      const auto* s = reinterpret_cast<const std::uint16_t*>(img.pixels.data());
      for (std::size_t i = 0; i < m; ++i) {
        std::uint16_t v;
        std::memcpy(&v, s + i, 2);
        src[i] = static_cast<float>(v);
      }
    } else {
      for (std::size_t i = 0; i < m; ++i) src[i] = static_cast<float>(img.pixels[i]);
    }
    rf.resize(n);
    resize(src.data(), img.height, img.width, C, rf.data(), p.rh, p.rw, o.interp);
  } else {
    r8.resize(n);
    resize(img.pixels.data(), img.height, img.width, C, r8.data(), p.rh, p.rw, o.interp);
  }

  std::vector<std::int64_t> dims = o.out_layout == layout::nchw ? std::vector<std::int64_t>{C, H, W} : std::vector<std::int64_t>{H, W, C};
  tensor out = tensor::uninitialized(o.out_type, shape(dims), context);
  // Output element (y, x, c) at these strides.
  const std::int64_t sc = o.out_layout == layout::nchw ? H * W : 1, sy = o.out_layout == layout::nchw ? W : W * C,
                     sx = o.out_layout == layout::nchw ? 1 : C;
  const bool swap = C == 3 && o.order == channel_order::rgb;
  float* of = u8_out ? nullptr : out.view<float>().data();
  std::uint8_t* o8 = u8_out ? out.view<std::uint8_t>().data() : nullptr;
  for (std::int64_t c = 0; c < C; ++c) {
    const std::int64_t from = swap ? 2 - c : c;
    const float mean = detail::pick(o.mean, c);
    const bool use_norm = !o.norm.empty();
    const float div = use_norm ? 1.f : detail::pick(o.std, c), mul = use_norm ? detail::pick(o.norm, c) : 1.f;
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t x = 0; x < W; ++x) {
        const std::size_t at = static_cast<std::size_t>(c * sc + y * sy + x * sx);
        const bool inside = x < p.valid_w;
        const std::size_t i = static_cast<std::size_t>(((y + p.top) * p.rw + (x + p.left)) * C + from);
        if (u8_out) {
          o8[at] = inside ? r8[i] : detail::saturate_u8(o.pad_value);
          continue;
        }
        float v = o.pad_value;
        if (inside) {
          // Rounded before the mean is subtracted, as numpy does (no FMA with -march=native).
          v = detail::unfused((in_float ? rf[i] : static_cast<float>(r8[i])) * o.scale);
          v = use_norm ? (v - mean) * mul : (v - mean) / div;
        }
        of[at] = v;
      }
  }
  return out;
}

namespace detail {
template <class E>
E json_enum(const quench::detail::json_value& v, const std::string& ctx, std::initializer_list<std::pair<const char*, E>> names) {
  const std::string& s = v.as_string(ctx);
  std::string all;
  for (const auto& [name, e] : names) {
    if (s == name) return e;
    all += (all.empty() ? "\"" : ", \"") + std::string(name) + "\"";
  }
  throw_invalid_argument(ctx, "one of " + all, "\"" + s + "\"");
}
inline std::vector<float> json_floats(const quench::detail::json_value& v, const std::string& ctx) {
  std::vector<float> out;
  if (v.is_number()) return {static_cast<float>(v.as_double(ctx))};
  for (const quench::detail::json_value& x : v.as_array(ctx)) out.push_back(static_cast<float>(x.as_double(ctx)));
  return out;
}
}  // namespace detail

/// Options from a JSON object, e.g.
/// `{"shape": [3, 224, 224], "resize": "short_crop", "resize_short": 256, "interp": "linear",
///   "order": "rgb", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
///   "std": [0.229, 0.224, 0.225], "layout": "nchw", "dtype": "float32"}`.
/// Keys: shape [C, H, W]; resize ("exact", "short_crop", "keep_pad"); resize_short; interp
/// ("linear", "area", "nearest"); order ("rgb", "bgr"); scale; mean; std; ncnn_mean and
/// ncnn_norm (ncnn's (x - mean) * norm on 0..255 pixels: sets scale 1, excludes scale/mean/std);
/// pad_value; layout ("nchw", "nhwc"); dtype ("float32", "uint8"); resize_float (bool).
/// Per-channel values are a number or an array of C numbers. Unknown keys are errors.
inline preprocess_options preprocess_from_json(const std::string& json_text, const std::string& context) {
  const quench::detail::json_value root = quench::detail::parse_json(json_text, context);
  preprocess_options o;
  bool ncnn = false, plain = false;
  for (const auto& [key, v] : root.as_object(context)) {
    const std::string ctx = context + " key \"" + key + "\"";
    if (key == "shape") {
      const auto& a = v.as_array(ctx);
      if (a.size() != 3) throw_invalid_argument(ctx, "[C, H, W]", std::to_string(a.size()) + " values");
      o.channels = a[0].as_int64(ctx), o.height = a[1].as_int64(ctx), o.width = a[2].as_int64(ctx);
    } else if (key == "resize") {
      o.resize = detail::json_enum<resize_mode>(v, ctx, {{"exact", resize_mode::exact}, {"short_crop", resize_mode::short_crop}, {"keep_pad", resize_mode::keep_pad}});
    } else if (key == "resize_short") {
      o.resize_short = v.as_int64(ctx);
    } else if (key == "interp") {
      o.interp = detail::json_enum<interpolation>(v, ctx, {{"linear", interpolation::linear}, {"area", interpolation::area}, {"nearest", interpolation::nearest}});
    } else if (key == "order") {
      o.order = detail::json_enum<channel_order>(v, ctx, {{"rgb", channel_order::rgb}, {"bgr", channel_order::bgr}});
    } else if (key == "scale") {
      o.scale = static_cast<float>(v.as_double(ctx)), plain = true;
    } else if (key == "mean") {
      o.mean = detail::json_floats(v, ctx), plain = true;
    } else if (key == "std") {
      o.std = detail::json_floats(v, ctx), plain = true;
    } else if (key == "ncnn_mean") {
      o.mean = detail::json_floats(v, ctx), ncnn = true;
    } else if (key == "ncnn_norm") {
      o.norm = detail::json_floats(v, ctx), ncnn = true;
    } else if (key == "pad_value") {
      o.pad_value = static_cast<float>(v.as_double(ctx));
    } else if (key == "layout") {
      o.out_layout = detail::json_enum<layout>(v, ctx, {{"nchw", layout::nchw}, {"nhwc", layout::nhwc}});
    } else if (key == "dtype") {
      o.out_type = detail::json_enum<dtype>(v, ctx, {{"float32", dtype::float32}, {"uint8", dtype::uint8}});
    } else if (key == "resize_float") {
      o.resize_float = v.as_bool(ctx);
    } else {
      throw_error(errc::invalid_argument, ctx,
                  "unknown key; expected shape, resize, resize_short, interp, order, scale, mean, std, ncnn_mean, ncnn_norm, "
                  "pad_value, layout, dtype or resize_float");
    }
  }
  if (ncnn && plain)
    throw_error(errc::invalid_argument, context, "ncnn_mean/ncnn_norm replace scale, mean and std; give one form, not both");
  if (ncnn) o.scale = 1.f;
  detail::check_options(o, context);
  return o;
}

}  // namespace quench::data
