#pragma once
// decode_image: JPEG (libjpeg-turbo) and PNG (libpng) files to pixels identical to
// cv2.imread(path, cv2.IMREAD_COLOR) (or IMREAD_GRAYSCALE): OpenCV 4.6 decodes with the same two
// libraries, and this header asks them for the same things it does. Part of the optional
// quench::image target: include it only from code that links quench::image.
//
//     quench::data::image img = quench::data::decode_image("cat.jpg");             // BGR uint8
//     auto gray = quench::data::decode_image("scan.png", {/*grayscale=*/true});    // 1 channel
//
// JPEG: libjpeg's defaults (JDCT_ISLOW, fancy upsampling) as OpenCV leaves them; colour output
// is JCS_EXT_BGR, grayscale JCS_GRAYSCALE; CMYK/YCCK files are read as CMYK and converted with
// OpenCV's formula (c' = k - ((255 - c) * k >> 8), then BGR, or its fixed-point gray). Progressive
// and restart-marker files are libjpeg's business. The EXIF orientation tag rotates/flips the
// pixels as cv2.imread does (unless apply_orientation = false, IMREAD_IGNORE_ORIENTATION).
// PNG: OpenCV's transforms in its order: 16-bit samples stripped to their high byte (what
// IMREAD_COLOR does; keep_16bit keeps them, like IMREAD_ANYDEPTH), alpha stripped (not
// composited), palette and low-bit gray expanded, BGR order, gray to BGR or RGB to gray with
// libpng's (0.299, 0.587) weights; interlaced files handled; gamma not applied.
// Errors: a quench::error naming the file for unreadable, empty, truncated or corrupt files and
// for anything that is neither JPEG nor PNG. Unlike cv2 (which warns and returns the image
// gray-filled from the cut), a JPEG that ends early is an error. libjpeg's and libpng's error
// handlers would print and exit(); here they longjmp back into a frame with no C++ objects to
// unwind, and the error is thrown from there.

#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "quench/core/error.hpp"
#include "quench/data/image.hpp"

namespace quench::data {

struct decode_options {
  bool grayscale = false;   ///< one channel, as IMREAD_GRAYSCALE; else three BGR channels (IMREAD_COLOR)
  bool keep_16bit = false;  ///< 16-bit PNG samples stay uint16 (IMREAD_ANYDEPTH); else >> 8 to uint8
  /// Rotate/flip JPEGs by their EXIF orientation tag, as cv2.imread does unless given
  /// IMREAD_IGNORE_ORIENTATION (false here). PNG eXIf chunks are not read.
  bool apply_orientation = true;
};

namespace detail {

// ---- JPEG ------------------------------------------------------------------------------------

struct jpeg_job {  // plain data only: it lives across setjmp/longjmp
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr mgr;  // first member of cinfo.err's object: the callbacks cast back to the job
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool created, cmyk;
  int orientation;  // EXIF tag 0x0112, 1..8; 0 when absent
};

inline jpeg_job& jpeg_job_of(j_common_ptr c) {
  return *reinterpret_cast<jpeg_job*>(reinterpret_cast<char*>(c->err) - offsetof(jpeg_job, mgr));
}
inline void jpeg_on_error(j_common_ptr c) {
  jpeg_job& j = jpeg_job_of(c);
  char buf[JMSG_LENGTH_MAX];
  (*c->err->format_message)(c, buf);
  std::snprintf(j.message, sizeof j.message, "corrupt JPEG: %s", buf);
  std::longjmp(j.jump, 1);
}
inline void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  if (c->err->msg_code == JWRN_JPEG_EOF) {
    jpeg_job& j = jpeg_job_of(c);
    std::snprintf(j.message, sizeof j.message, "truncated JPEG: the data ends before the image does");
    std::longjmp(j.jump, 1);
  }
  // Other warnings (extraneous bytes, bad restart markers) decode on, as in cv2, silently.
  ++c->err->num_warnings;
}

/// The orientation tag of IFD0 in an APP1 "Exif\0\0" TIFF block; 0 if absent or malformed.
inline int exif_orientation(const unsigned char* p, std::size_t n) noexcept {
  if (n < 14 || std::memcmp(p, "Exif\0\0", 6) != 0) return 0;
  p += 6, n -= 6;
  const bool le = p[0] == 'I' && p[1] == 'I';
  if (!le && !(p[0] == 'M' && p[1] == 'M')) return 0;
  auto u16 = [&](std::size_t at) -> unsigned { return le ? p[at] | p[at + 1] << 8 : p[at] << 8 | p[at + 1]; };
  auto u32 = [&](std::size_t at) -> std::size_t {
    return le ? std::size_t(p[at]) | std::size_t(p[at + 1]) << 8 | std::size_t(p[at + 2]) << 16 | std::size_t(p[at + 3]) << 24
              : std::size_t(p[at]) << 24 | std::size_t(p[at + 1]) << 16 | std::size_t(p[at + 2]) << 8 | std::size_t(p[at + 3]);
  };
  const std::size_t ifd = u32(4);
  if (ifd > n - 2) return 0;
  const unsigned count = u16(ifd);
  for (unsigned i = 0; i < count; ++i) {
    const std::size_t e = ifd + 2 + std::size_t(i) * 12;
    if (e + 12 > n) return 0;
    if (u16(e) == 0x0112) {
      const unsigned v = u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 0;
    }
  }
  return 0;
}

/// OpenCV's ApplyExifOrientation: 2 flips columns, 3 both, 4 rows; 5-8 transpose first, then
/// 6 flips columns, 7 both, 8 rows.
inline void apply_orientation(image& img, int orientation) {
  if (orientation <= 1 || orientation > 8) return;
  const std::size_t c = static_cast<std::size_t>(img.channels) * img.sample_bytes();
  std::size_t h = static_cast<std::size_t>(img.height), w = static_cast<std::size_t>(img.width);
  std::vector<std::uint8_t> out(img.pixels.size());
  const bool transpose = orientation >= 5;
  const bool flip_x = orientation == 2 || orientation == 3 || orientation == 6 || orientation == 7;
  const bool flip_y = orientation == 3 || orientation == 4 || orientation == 7 || orientation == 8;
  const std::size_t oh = transpose ? w : h, ow = transpose ? h : w;
  for (std::size_t y = 0; y < oh; ++y)
    for (std::size_t x = 0; x < ow; ++x) {
      const std::size_t ty = flip_y ? oh - 1 - y : y, tx = flip_x ? ow - 1 - x : x;  // in the transposed image
      const std::size_t sy = transpose ? tx : ty, sx = transpose ? ty : tx;
      std::memcpy(&out[(y * ow + x) * c], &img.pixels[(sy * w + sx) * c], c);
    }
  img.pixels = std::move(out);
  img.height = static_cast<std::int64_t>(oh), img.width = static_cast<std::int64_t>(ow);
}

inline bool jpeg_start(jpeg_job& j, const unsigned char* data, std::size_t size, bool gray) {
  j.cinfo.err = jpeg_std_error(&j.mgr);
  j.mgr.error_exit = jpeg_on_error;
  j.mgr.emit_message = jpeg_on_message;
  if (setjmp(j.jump)) return false;
  jpeg_create_decompress(&j.cinfo);
  j.created = true;
  jpeg_mem_src(&j.cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&j.cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&j.cinfo, TRUE);
  for (jpeg_saved_marker_ptr m = j.cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && !j.orientation) j.orientation = exif_orientation(m->data, m->data_length);
  // OpenCV's choice (grfmt_jpeg.cpp): 4-component files as CMYK, converted afterwards.
  j.cmyk = j.cinfo.num_components == 4;
  if (j.cmyk) {
    j.cinfo.out_color_space = JCS_CMYK;
    j.cinfo.out_color_components = 4;
  } else if (gray) {
    j.cinfo.out_color_space = JCS_GRAYSCALE;
    j.cinfo.out_color_components = 1;
  } else {
    j.cinfo.out_color_space = JCS_EXT_BGR;
    j.cinfo.out_color_components = 3;
  }
  // libjpeg's defaults, which OpenCV keeps; set here so that a differently configured library
  // build cannot change the pixels.
  j.cinfo.dct_method = JDCT_ISLOW;
  j.cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&j.cinfo);
  return true;
}

/// Reads every scanline into `rows` (output_components bytes per pixel).
inline bool jpeg_rows(jpeg_job& j, unsigned char* rows, std::size_t row_bytes) {
  if (setjmp(j.jump)) return false;
  while (j.cinfo.output_scanline < j.cinfo.output_height) {
    JSAMPROW row = rows + static_cast<std::size_t>(j.cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&j.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&j.cinfo);
  return true;
}

inline image decode_jpeg(const unsigned char* data, std::size_t size, const std::string& context, const decode_options& o) {
  auto job = std::make_unique<jpeg_job>();
  std::memset(job.get(), 0, sizeof(jpeg_job));
  struct destroy {
    jpeg_job* j;
    ~destroy() {
      if (j->created) jpeg_destroy_decompress(&j->cinfo);
    }
  } guard{job.get()};
  if (!jpeg_start(*job, data, size, o.grayscale)) throw_error(errc::parse_error, context, job->message);
  const std::int64_t h = job->cinfo.output_height, w = job->cinfo.output_width;
  const int comps = job->cinfo.output_components;
  if (h <= 0 || w <= 0 || (comps != 1 && comps != 3 && comps != 4))
    throw_error(errc::parse_error, context, "JPEG with " + std::to_string(comps) + " output components");
  std::vector<unsigned char> raw(static_cast<std::size_t>(h * w * comps));
  if (!jpeg_rows(*job, raw.data(), static_cast<std::size_t>(w * comps))) throw_error(errc::parse_error, context, job->message);
  image img;
  img.height = h, img.width = w, img.channels = o.grayscale ? 1 : 3, img.type = dtype::uint8;
  const int orientation = o.apply_orientation ? job->orientation : 0;
  if (!job->cmyk) {
    img.pixels = std::move(raw);
    apply_orientation(img, orientation);
    return img;
  }
  // OpenCV's icvCvt_CMYK2BGR_8u_C4C3R / icvCvt_CMYK2Gray_8u_C4C1R (gray: 14-bit BT.601 weights).
  img.pixels.resize(static_cast<std::size_t>(h * w * img.channels));
  for (std::size_t i = 0, n = static_cast<std::size_t>(h * w); i < n; ++i) {
    const int k = raw[4 * i + 3];
    const int c = k - ((255 - raw[4 * i]) * k >> 8), m = k - ((255 - raw[4 * i + 1]) * k >> 8),
              y = k - ((255 - raw[4 * i + 2]) * k >> 8);
    if (o.grayscale) {
      img.pixels[i] = static_cast<std::uint8_t>((y * 1868 + m * 9617 + c * 4899 + (1 << 13)) >> 14);
    } else {
      img.pixels[3 * i] = static_cast<std::uint8_t>(y);
      img.pixels[3 * i + 1] = static_cast<std::uint8_t>(m);
      img.pixels[3 * i + 2] = static_cast<std::uint8_t>(c);
    }
  }
  apply_orientation(img, orientation);
  return img;
}

// ---- PNG -------------------------------------------------------------------------------------

struct png_job {  // plain data only: it lives across setjmp/longjmp
  png_structp png;
  png_infop info;
  const unsigned char* data;
  std::size_t size, pos;
  std::jmp_buf jump;
  char message[256];
  png_uint_32 width, height;
  int bit_depth, color_type, channels;
  std::size_t rowbytes;
};

inline void png_on_error(png_structp png, png_const_charp msg) {
  auto* j = static_cast<png_job*>(png_get_error_ptr(png));
  std::snprintf(j->message, sizeof j->message, "corrupt PNG: %s", msg ? msg : "libpng error");
  std::longjmp(j->jump, 1);
}
inline void png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk trouble: decode on, like cv2
inline void png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* j = static_cast<png_job*>(png_get_io_ptr(png));
  if (n > j->size - j->pos) {
    std::snprintf(j->message, sizeof j->message, "truncated PNG: the data ends before the image does");
    std::longjmp(j->jump, 1);
  }
  std::memcpy(out, j->data + j->pos, n);
  j->pos += n;
}

inline bool png_start(png_job& j, bool gray, bool keep_16bit) {
  if (setjmp(j.jump)) return false;
  png_set_read_fn(j.png, &j, png_on_read);
  png_read_info(j.png, j.info);
  png_get_IHDR(j.png, j.info, &j.width, &j.height, &j.bit_depth, &j.color_type, nullptr, nullptr, nullptr);
  // OpenCV's PngDecoder::readData, in its order.
  if (j.bit_depth == 16 && !keep_16bit) png_set_strip_16(j.png);
  else if (j.bit_depth == 16) png_set_swap(j.png);  // native little-endian uint16, as OpenCV does
  png_set_strip_alpha(j.png);
  if (j.color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(j.png);
  if ((j.color_type & PNG_COLOR_MASK_COLOR) == 0 && j.bit_depth < 8) png_set_expand_gray_1_2_4_to_8(j.png);
  if ((j.color_type & PNG_COLOR_MASK_COLOR) && !gray) png_set_bgr(j.png);
  else if (!gray) png_set_gray_to_rgb(j.png);
  else png_set_rgb_to_gray(j.png, 1, 0.299, 0.587);
  png_set_interlace_handling(j.png);
  png_read_update_info(j.png, j.info);
  j.channels = png_get_channels(j.png, j.info);
  j.rowbytes = png_get_rowbytes(j.png, j.info);
  return true;
}

inline bool png_rows(png_job& j, png_bytepp rows) {
  if (setjmp(j.jump)) return false;
  png_read_image(j.png, rows);
  png_read_end(j.png, nullptr);
  return true;
}

inline image decode_png(const unsigned char* data, std::size_t size, const std::string& context, const decode_options& o) {
  auto job = std::make_unique<png_job>();
  std::memset(job.get(), 0, sizeof(png_job));
  job->data = data, job->size = size;
  job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job.get(), png_on_error, png_on_warning);
  if (!job->png) throw_error(errc::io_error, context, "libpng could not allocate a decoder");
  struct destroy {
    png_job* j;
    ~destroy() { png_destroy_read_struct(&j->png, j->info ? &j->info : nullptr, nullptr); }
  } guard{job.get()};
  job->info = png_create_info_struct(job->png);
  if (!job->info) throw_error(errc::io_error, context, "libpng could not allocate a decoder");
  png_set_user_limits(job->png, 1u << 24, 1u << 24);
  if (!png_start(*job, o.grayscale, o.keep_16bit)) throw_error(errc::parse_error, context, job->message);
  image img;
  img.height = job->height, img.width = job->width, img.channels = o.grayscale ? 1 : 3;
  img.type = job->bit_depth == 16 && o.keep_16bit ? dtype::uint16 : dtype::uint8;
  const std::size_t row = static_cast<std::size_t>(img.width * img.channels) * img.sample_bytes();
  if (job->channels != img.channels || job->rowbytes != row)
    throw_error(errc::parse_error, context,
                "PNG transforms gave " + std::to_string(job->channels) + " channels, " + std::to_string(job->rowbytes) +
                    " bytes per row; expected " + std::to_string(img.channels) + ", " + std::to_string(row));
  img.pixels.resize(row * static_cast<std::size_t>(img.height));
  std::vector<png_bytep> rows(static_cast<std::size_t>(img.height));
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = img.pixels.data() + y * row;
  if (!png_rows(*job, rows.data())) throw_error(errc::parse_error, context, job->message);
  return img;
}

}  // namespace detail

/// Decodes a JPEG or PNG held in memory; errors name `context`.
inline image decode_image(const std::uint8_t* data, std::size_t size, const std::string& context, const decode_options& o = {}) {
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size == 0) throw_error(errc::parse_error, context, "empty file, not an image");
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return detail::decode_jpeg(data, size, context, o);
  if (size >= 8 && std::memcmp(data, png_sig, 8) == 0) return detail::decode_png(data, size, context, o);
  char head[64];
  std::snprintf(head, sizeof head, "%02x %02x %02x %02x", size > 0 ? data[0] : 0, size > 1 ? data[1] : 0, size > 2 ? data[2] : 0,
                size > 3 ? data[3] : 0);
  throw_error(errc::parse_error, context, std::string("not a JPEG or PNG image (first bytes ") + head + ")");
}

/// Reads and decodes `file` (JPEG or PNG, by content, not name); errors name the file.
inline image decode_image(const std::filesystem::path& file, const decode_options& o = {}) {
  const std::string context = "image '" + file.string() + "'";
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) throw_error(errc::io_error, context, "is a directory, not an image file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw_error(errc::io_error, context, "cannot open image file");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw_error(errc::io_error, context, "read error");
  return decode_image(bytes.data(), bytes.size(), context, o);
}

}  // namespace quench::data
