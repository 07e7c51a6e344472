// decode_image against cv2.imread (python3-opencv 4.6, which decodes with the same system
// libjpeg-turbo 2.1.5 and libpng 1.6.39). Exact everywhere: same libraries, same settings
// (JDCT_ISLOW, fancy upsampling, OpenCV's PNG transforms and CMYK formula), so every pixel of
// every file must be identical; a difference would mean a setting differs, not rounding.
#include "image_test_util.hpp"

#include <unistd.h>

#include "quench/data/image_decode.hpp"

namespace fs = std::filesystem;
using quench::data::decode_image;
using quench::data::decode_options;

namespace {
void check_same(const quench::data::image& img, const fs::path& npy) {
  const quench::tensor want = quench::read_npy(npy);
  CAPTURE(npy.string());
  const std::int64_t c = want.rank() == 3 ? want.shape()[2] : 1;
  REQUIRE(img.height == want.shape()[0]);
  REQUIRE(img.width == want.shape()[1]);
  REQUIRE(img.channels == c);
  REQUIRE(img.pixels.size() == want.nbytes());
  image_test::diff d;
  if (want.dtype() == quench::dtype::uint16) {
    REQUIRE(img.type == quench::dtype::uint16);
    std::vector<std::uint16_t> got(want.size());
    std::memcpy(got.data(), img.pixels.data(), img.pixels.size());
    d = image_test::compare(got.data(), want.view<std::uint16_t>().data(), got.size());
  } else {
    REQUIRE(img.type == quench::dtype::uint8);
    d = image_test::compare(img.pixels.data(), want.view<std::uint8_t>().data(), img.pixels.size());
  }
  CHECK_MESSAGE(d.count == 0, d.count, " of ", want.size(), " samples differ from cv2.imread, by up to ", d.max);
}

fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("quench_image_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary).write(s.data(), static_cast<std::streamsize>(s.size())); }
}  // namespace

TEST_CASE("decode_image gives cv2.imread's pixels: IMREAD_COLOR, IMREAD_GRAYSCALE, IMREAD_ANYDEPTH, EXIF orientation") {
  const fs::path files = image_test::ref_dir() / "files", dec = image_test::ref_dir() / "decode";
  std::size_t n = 0;
  for (const std::string& name : image_test::lines("decode.txt")) {
    SUBCASE(name.c_str()) {}
    check_same(decode_image(files / name), dec / (name + ".color.npy"));
    decode_options gray;
    gray.grayscale = true;
    check_same(decode_image(files / name, gray), dec / (name + ".gray.npy"));
    if (fs::exists(dec / (name + ".noorient.npy"))) {
      decode_options keep;
      keep.apply_orientation = false;
      check_same(decode_image(files / name, keep), dec / (name + ".noorient.npy"));
    }
    if (fs::exists(dec / (name + ".any.npy"))) {
      decode_options any;
      any.keep_16bit = true;
      check_same(decode_image(files / name, any), dec / (name + ".any.npy"));
    }
    ++n;
  }
  CHECK(n >= 25);
}

TEST_CASE("decode_image refuses bad files with an error naming the file") {
  const fs::path dir = temp_dir(), files = image_test::ref_dir() / "files";
  const std::string jpg = slurp(files / "baseline.jpg"), png = slurp(files / "rgb.png");
  REQUIRE(jpg.size() > 1000);
  CHECK_THROWS_WITH(decode_image(dir / "missing.jpg"), doctest::Contains("missing.jpg': cannot open image file"));
  CHECK_THROWS_WITH(decode_image(dir), doctest::Contains("is a directory"));
  spit(dir / "empty.png", "");
  CHECK_THROWS_WITH(decode_image(dir / "empty.png"), doctest::Contains("empty.png': empty file"));
  spit(dir / "text.jpg", "hello, not a picture");
  CHECK_THROWS_WITH(decode_image(dir / "text.jpg"), doctest::Contains("not a JPEG or PNG image (first bytes 68 65 6c 6c)"));
  // Cut in the entropy-coded data: cv2 warns and returns gray-filled rows; here it is an error.
  spit(dir / "cut.jpg", jpg.substr(0, jpg.size() / 2));
  CHECK_THROWS_WITH(decode_image(dir / "cut.jpg"), doctest::Contains("cut.jpg': truncated JPEG"));
  spit(dir / "head.jpg", jpg.substr(0, 40));
  CHECK_THROWS_WITH(decode_image(dir / "head.jpg"), doctest::Contains("head.jpg'"));
  // Height 0 in the SOF0 header.
  std::string sof = jpg;
  const auto at = sof.find("\xff\xc0");
  REQUIRE(at != std::string::npos);
  sof[at + 5] = 0, sof[at + 6] = 0;
  spit(dir / "sof.jpg", sof);
  CHECK_THROWS_WITH(decode_image(dir / "sof.jpg"), doctest::Contains("sof.jpg': corrupt JPEG: "));
  spit(dir / "junk.jpg", std::string("\xff\xd8\xff", 3) + std::string(200, '\x17'));
  CHECK_THROWS_WITH(decode_image(dir / "junk.jpg"), doctest::Contains("corrupt JPEG"));
  spit(dir / "cut.png", png.substr(0, png.size() / 2));
  CHECK_THROWS_WITH(decode_image(dir / "cut.png"), doctest::Contains("cut.png': truncated PNG"));
  // A flipped byte inside IDAT: libpng's CRC check.
  std::string crc = png;
  const auto idat = crc.find("IDAT");
  REQUIRE(idat != std::string::npos);
  crc[idat + 10] = static_cast<char>(crc[idat + 10] ^ 0x5a);
  spit(dir / "crc.png", crc);
  CHECK_THROWS_WITH(decode_image(dir / "crc.png"), doctest::Contains("crc.png': corrupt PNG: "));
  // Bad data in memory names the caller's context.
  const std::string sig = "\x89PNG\r\n\x1a\n";
  CHECK_THROWS_WITH(decode_image(reinterpret_cast<const std::uint8_t*>(sig.data()), sig.size(), "upload #3"),
                    doctest::Contains("upload #3: truncated PNG"));
  fs::remove_all(dir);
}
