// preprocess and image_source against the same pipeline written with cv2 and numpy
// (make_image_reference.py: cv2.imread, cv2.resize on uint8 or float32, channel flip, then
// float32 x * scale, (x - mean) / std or ncnn's (x - mean) * norm, padding, transpose).
// Exact everywhere: the resize is OpenCV's arithmetic and the normalization the same float32
// operations in the same order. (PaddleOCR itself divides by 255 where this multiplies by
// scale = 1/255: that differs by at most 1 ulp, and is not what is compared here.)
#include "image_test_util.hpp"

#include <sstream>

#include "quench/data/image_decode.hpp"
#include "quench/data/image_source.hpp"
#include "quench/data/preprocess.hpp"

namespace fs = std::filesystem;
namespace qd = quench::data;

namespace {
struct ref_case {
  std::string id, file, json;
};
std::vector<ref_case> cases(const char* manifest = "preprocess.txt") {
  std::vector<ref_case> out;
  for (const std::string& l : image_test::lines(manifest)) {
    const auto sp = l.find(' '), tab = l.find('\t');
    out.push_back({l.substr(0, sp), l.substr(sp + 1, tab - sp - 1), l.substr(tab + 1)});
  }
  return out;
}
void check_same(const quench::tensor& got, const quench::tensor& want) {
  REQUIRE(got.shape() == want.shape());
  REQUIRE(got.dtype() == want.dtype());
  image_test::diff d = got.dtype() == quench::dtype::uint8
                           ? image_test::compare(got.view<std::uint8_t>().data(), want.view<std::uint8_t>().data(), got.size())
                           : image_test::compare(got.view<float>().data(), want.view<float>().data(), got.size());
  CHECK_MESSAGE(d.count == 0, d.count, " of ", got.size(), " values differ from cv2 + numpy, by up to ", d.max);
}
}  // namespace

TEST_CASE("preprocess matches the cv2 + numpy pipeline bit for bit") {
  const fs::path files = image_test::ref_dir() / "files";
  std::size_t n = 0;
  for (const ref_case& c : cases()) {
    CAPTURE(c.file);
    CAPTURE(c.json);
    const qd::preprocess_options o = qd::preprocess_from_json(c.json, "config");
    qd::decode_options d;
    d.grayscale = o.channels == 1;
    check_same(qd::preprocess(qd::decode_image(files / c.file, d), o, c.file),
               quench::read_npy(image_test::ref_dir() / "preprocess" / (c.id + ".npy")));
    ++n;
  }
  CHECK(n >= 25);
}

TEST_CASE("preprocess of 16-bit pixels (IMREAD_ANYDEPTH) resizes them as float32") {
  std::size_t n = 0;
  for (const ref_case& c : cases("preprocess16.txt")) {
    CAPTURE(c.file);
    const qd::preprocess_options o = qd::preprocess_from_json(c.json, "config");
    qd::decode_options d;
    d.grayscale = o.channels == 1;
    d.keep_16bit = true;
    const qd::image img = qd::decode_image(image_test::ref_dir() / "files" / c.file, d);
    REQUIRE(img.type == quench::dtype::uint16);
    check_same(qd::preprocess(img, o, c.file), quench::read_npy(image_test::ref_dir() / "preprocess" / (c.id + ".npy")));
    ++n;
  }
  CHECK(n == 2);
}

TEST_CASE("image_source decodes lazily and stacks samples") {
  const std::vector<ref_case> all = cases();
  // The first configuration's files, in order.
  std::vector<fs::path> files;
  std::vector<std::string> ids;
  for (const ref_case& c : all)
    if (c.json == all[0].json) files.push_back(image_test::ref_dir() / "files" / c.file), ids.push_back(c.id);
  REQUIRE(files.size() >= 3);
  qd::image_source src("pixel_values", files, qd::preprocess_from_json(all[0].json, "config"));
  CHECK(src.size() == static_cast<std::int64_t>(files.size()));
  const qd::batch b = src.read(1, 2);
  REQUIRE(b.size() == 1);
  CHECK(b[0].first == "pixel_values");
  const quench::tensor& t = b[0].second;
  REQUIRE(t.shape() == quench::shape{2, 3, 48, 64});
  for (int i = 0; i < 2; ++i) {
    const quench::tensor want = quench::read_npy(image_test::ref_dir() / "preprocess" / (ids[1 + i] + ".npy"));
    CHECK(std::memcmp(t.bytes() + i * want.nbytes(), want.bytes(), want.nbytes()) == 0);
  }
  CHECK_THROWS_WITH(src.read(2, 5), doctest::Contains("outside [0, "));
  // A file that is not an image fails the batch, naming the file.
  const fs::path bad = fs::temp_directory_path() / "quench_image_source_bad.png";
  std::ofstream(bad) << "no";
  qd::image_source broken("x", {files[0], bad}, qd::preprocess_options{});
  CHECK_NOTHROW(broken.read(0, 1));
  CHECK_THROWS_WITH(broken.read(0, 2), doctest::Contains("quench_image_source_bad.png': not a JPEG or PNG"));
  fs::remove(bad);
  CHECK_THROWS_WITH(qd::image_source("x", {}, qd::preprocess_options{}), doctest::Contains("at least one image file"));
}

TEST_CASE("preprocess refuses images and options that do not fit") {
  qd::image img{4, 6, 3, quench::dtype::uint8, std::vector<std::uint8_t>(72, 100)};
  qd::preprocess_options gray;
  gray.channels = 1;
  CHECK_THROWS_WITH(qd::preprocess(img, gray, "a.jpg"), doctest::Contains("a.jpg: expected 1-channel pixels for the target shape [1, 224, 224], found 3 channels"));
  img.pixels.pop_back();
  CHECK_THROWS_WITH(qd::preprocess(img, qd::preprocess_options{}, "b.jpg"), doctest::Contains("expected 72 pixel bytes, found 71"));
  img.pixels.push_back(0);
  qd::preprocess_options o;
  o.std = {1, 0, 1};
  CHECK_THROWS_WITH(qd::preprocess(img, o, "c"), doctest::Contains("std values must be finite and non-zero"));
  o = {};
  o.mean = {1, 2};
  CHECK_THROWS_WITH(qd::preprocess(img, o, "c"), doctest::Contains("mean with 1 or 3 values"));
  o = {};
  o.resize = qd::resize_mode::short_crop;
  o.resize_short = 100;
  o.height = 200;
  CHECK_THROWS_WITH(qd::preprocess(img, o, "c"), doctest::Contains("covers the 200x224 crop"));
  // keep_pad of a tall image: one column of pixels, the rest padding.
  o = {};
  o.resize = qd::resize_mode::keep_pad;
  o.height = 8, o.width = 10, o.pad_value = -3.f, o.scale = 1.f;
  const quench::tensor t = qd::preprocess(qd::image{40, 2, 3, quench::dtype::uint8, std::vector<std::uint8_t>(240, 9)}, o, "tall");
  CHECK(t.view<float>()[0] == 9.f);
  CHECK(t.view<float>()[1] == -3.f);
}

TEST_CASE("preprocess_from_json reads every key and names the bad one") {
  const qd::preprocess_options o = qd::preprocess_from_json(
      R"({"shape": [1, 32, 48], "resize": "keep_pad", "resize_short": 0, "interp": "area", "order": "bgr",
          "scale": 0.5, "mean": 0.25, "std": [2], "pad_value": -1, "layout": "nhwc", "dtype": "uint8", "resize_float": true})",
      "--preprocess");
  CHECK(o.channels == 1);
  CHECK(o.height == 32);
  CHECK(o.width == 48);
  CHECK(o.resize == qd::resize_mode::keep_pad);
  CHECK(o.interp == qd::interpolation::area);
  CHECK(o.order == qd::channel_order::bgr);
  CHECK(o.scale == 0.5f);
  CHECK(o.mean == std::vector<float>{0.25f});
  CHECK(o.std == std::vector<float>{2.f});
  CHECK(o.pad_value == -1.f);
  CHECK(o.out_layout == qd::layout::nhwc);
  CHECK(o.out_type == quench::dtype::uint8);
  CHECK(o.resize_float);
  const qd::preprocess_options n = qd::preprocess_from_json(R"({"ncnn_mean": [1, 2, 3], "ncnn_norm": [0.5, 0.5, 0.5]})", "p");
  CHECK(n.scale == 1.f);
  CHECK(n.norm == std::vector<float>{0.5f, 0.5f, 0.5f});
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"sahpe": [3, 1, 1]})", "p"), doctest::Contains("p key \"sahpe\": unknown key"));
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"interp": "cubic"})", "p"), doctest::Contains("one of \"linear\", \"area\", \"nearest\""));
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"shape": [3, 224]})", "p"), doctest::Contains("expected [C, H, W]"));
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"shape": [4, 2, 2]})", "p"), doctest::Contains("1 (grayscale) or 3 channels"));
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"mean": [0, 0, 0], "ncnn_norm": [1, 1, 1]})", "p"), doctest::Contains("give one form"));
  CHECK_THROWS_WITH(qd::preprocess_from_json(R"({"dtype": "float16"})", "p"), doctest::Contains("\"float32\", \"uint8\""));
  CHECK_THROWS_WITH(qd::preprocess_from_json("[1]", "p"), doctest::Contains("expected an object"));
}
