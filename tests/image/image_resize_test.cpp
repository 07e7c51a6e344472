// quench::data::resize against cv2.resize (python3-opencv 4.6) on random images: uint8 and
// float32 (integer-valued and fractional), 1/3/4 channels, INTER_LINEAR/AREA/NEAREST, sizes that
// take every OpenCV path (upscale, downscale, integer factors and the 2x2 area shortcut,
// non-integer area weights, one-pixel edges, one axis up and the other down).
// Every case must match bit for bit: the arithmetic is OpenCV's, so no rounding differs.
#include "image_test_util.hpp"

#include <sstream>

#include "quench/data/resize.hpp"

using quench::data::interpolation;

TEST_CASE("resize matches cv2.resize bit for bit") {
  std::size_t cases = 0;
  for (const std::string& l : image_test::lines("resize.txt")) {
    std::istringstream in(l);
    std::string id, interp, kind;
    std::int64_t sh, sw, cn, dh, dw;
    in >> id >> sh >> sw >> cn >> dh >> dw >> interp >> kind;
    const interpolation it = interp == "linear" ? interpolation::linear : interp == "area" ? interpolation::area : interpolation::nearest;
    const auto dir = image_test::ref_dir() / "resize";
    const quench::tensor src = quench::read_npy(dir / (id + ".src.npy")), want = quench::read_npy(dir / (id + ".dst.npy"));
    CAPTURE(l);
    REQUIRE(want.shape() == quench::shape{dh, dw, cn});
    image_test::diff d;
    if (kind == "uint8") {
      std::vector<std::uint8_t> got(want.size());
      quench::data::resize(src.view<std::uint8_t>().data(), sh, sw, cn, got.data(), dh, dw, it);
      d = image_test::compare(got.data(), want.view<std::uint8_t>().data(), got.size());
    } else {
      std::vector<float> got(want.size());
      quench::data::resize(src.view<float>().data(), sh, sw, cn, got.data(), dh, dw, it);
      d = image_test::compare(got.data(), want.view<float>().data(), got.size());
    }
    CHECK_MESSAGE(d.count == 0, d.count, " of ", want.size(), " values differ, by up to ", d.max);
    ++cases;
  }
  CHECK(cases >= 400);
}

TEST_CASE("resize refuses sizes and channel counts it cannot handle") {
  std::vector<std::uint8_t> a(12), b(12);
  CHECK_THROWS_WITH(quench::data::resize(a.data(), 0, 4, 3, b.data(), 2, 2, interpolation::linear), doctest::Contains("sizes in [1, 2^24]"));
  CHECK_THROWS_WITH(quench::data::resize(a.data(), 2, 2, 5, b.data(), 1, 1, interpolation::area), doctest::Contains("1 to 4 channels"));
  // Same size: a copy, whatever the interpolation.
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>(i * 7);
  quench::data::resize(a.data(), 2, 2, 3, b.data(), 2, 2, interpolation::area);
  CHECK(a == b);
}
