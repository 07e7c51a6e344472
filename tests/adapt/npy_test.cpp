#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "quench/adapt/npy.hpp"

namespace fs = std::filesystem;
using quench::dtype;

static fs::path sample(const char* name) { return fs::path(QUENCH_TEST_DATA_DIR) / "npy" / name; }

TEST_CASE("read_npy reads files written by NumPy") {
  auto a = quench::read_npy(sample("f32_2x3.npy"));
  CHECK(a.dtype() == dtype::float32);
  CHECK(a.shape() == quench::shape{2, 3});
  CHECK(a.view<float>()[0] == -2.5f);
  CHECK(a.view<float>()[5] == 2.5f);
  CHECK(a.name() == "f32_2x3");

  auto be = quench::read_npy(sample("i4_be_3.npy"));  // big-endian, byte-swapped on read
  CHECK(be.view<std::int32_t>()[1] == -2);
  CHECK(be.view<std::int32_t>()[2] == 300000);

  auto b = quench::read_npy(sample("bool_scalar.npy"));
  CHECK(b.rank() == 0);
  CHECK(b.view<bool>()[0]);

  auto h = quench::read_npy(sample("f16_4.npy"));
  CHECK(h.dtype() == dtype::float16);
  CHECK(h.nbytes() == 8);

  auto e = quench::read_npy(sample("u8_empty.npy"));
  CHECK(e.shape() == quench::shape{0, 3});
  CHECK(e.size() == 0);
}

TEST_CASE("unsupported and malformed .npy files are errors") {
  CHECK_THROWS_AS(quench::read_npy(sample("f64_fortran.npy")), quench::error);
  CHECK_THROWS_AS(quench::read_npy(sample("c64_2.npy")), quench::error);
  CHECK_THROWS_AS(quench::read_npy(sample("missing.npy")), quench::error);
  std::ifstream in(sample("f32_2x3.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{11}, std::size_t{60}, bytes.size() - 1}) {
    CAPTURE(cut);
    CHECK_THROWS_AS(quench::read_npy_buffer(bytes.data(), cut), quench::error);
  }
}

TEST_CASE("write_npy round-trips and writes what NumPy writes") {
  auto a = quench::read_npy(sample("f32_2x3.npy"));
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "npy_roundtrip.npy";
  quench::write_npy(out, a);
  auto back = quench::read_npy(out);
  CHECK(back.shape() == a.shape());
  CHECK(back.view<float>()[4] == a.view<float>()[4]);
  // Byte-identical to NumPy's own file for the same array.
  std::ifstream ref(sample("f32_2x3.npy"), std::ios::binary);
  std::string want((std::istreambuf_iterator<char>(ref)), std::istreambuf_iterator<char>());
  CHECK(quench::npy_bytes(a) == want);

  auto v = quench::read_npy(sample("u8_empty.npy"));
  std::ifstream ref2(sample("u8_empty.npy"), std::ios::binary);
  std::string want2((std::istreambuf_iterator<char>(ref2)), std::istreambuf_iterator<char>());
  CHECK(quench::npy_bytes(v) == want2);

  quench::tensor bf(dtype::bfloat16, {2});
  CHECK_THROWS_AS(quench::write_npy(out, bf), quench::error);
  CHECK(quench::read_npy(out).dtype() == dtype::float32);  // failed write left the old file intact
}
