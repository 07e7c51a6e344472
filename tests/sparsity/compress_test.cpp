#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "quench/numeric/float16.hpp"
#include "quench/sparsity/compress.hpp"
#include "quench/sparsity/nm_mask.hpp"
#include "sparsity/sparsity_test_util.hpp"

using quench::dtype;
using quench::tensor;
namespace sp = quench::sparsity;

namespace {
bool same_bytes(const tensor& a, const tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

tensor as_type(const tensor& t, dtype type) {
  tensor out(type, t.shape(), t.name());
  REQUIRE(out.nbytes() == t.nbytes());
  std::memcpy(out.bytes(), t.bytes(), t.nbytes());
  return out;
}
}  // namespace

TEST_CASE("compress_2_4 equals the CUTLASS layout of the reference (values, metadata, reordered metadata)") {
  int cases = 0, reordered = 0;
  for (const auto& row : sparsity_test::read_table("compress/cases.txt")) {
    const std::string name = row[0], type = row[1];
    CAPTURE(name);
    const dtype t = type == "bfloat16" ? dtype::bfloat16 : quench::dtype_from_name(type);
    const tensor dense = as_type(sparsity_test::read("compress/" + name + ".dense.npy"), t);
    const tensor values = as_type(sparsity_test::read("compress/" + name + ".values.npy"), t);
    const tensor meta = sparsity_test::read("compress/" + name + ".meta.npy");
    sp::compressed_2_4 c = sp::compress_2_4(dense);
    CHECK(c.rows == std::stoll(row[2]));
    CHECK(c.cols == std::stoll(row[3]));
    CHECK(same_bytes(c.values, values));
    CHECK(c.metadata.dtype() == meta.dtype());
    CHECK(same_bytes(c.metadata, meta));
    CHECK(same_bytes(sp::decompress_2_4(c), dense));  // bit-exact round trip
    CHECK(c.nbytes() * 2 <= dense.nbytes() + c.metadata.nbytes() * 2);
    const std::string cutlass = sparsity_test::reference_dir() + "/compress/" + name + ".meta_cutlass.npy";
    if (std::filesystem::exists(cutlass)) {
      sp::reorder_metadata_cutlass(c);
      CHECK(c.cutlass_order);
      CHECK(same_bytes(c.metadata, quench::read_npy(cutlass)));
      CHECK(same_bytes(sp::decompress_2_4(c), dense));
      sp::reorder_metadata_cutlass(c, true);
      CHECK(same_bytes(c.metadata, meta));
      ++reordered;
    } else {
      CHECK_THROWS_AS(sp::reorder_metadata_cutlass(c), quench::error);
    }
    ++cases;
  }
  MESSAGE(cases << " compressed matrices equal the reference, " << reordered << " also in CUTLASS order");
  CHECK(cases == 6);
  CHECK(reordered == 5);
}

TEST_CASE("compress_2_4 with an N:M mask: decompress gives w * mask, for each element type") {
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  tensor w(dtype::float32, {32, 64}, "w");
  for (auto& v : w.view<float>()) v = d(rng);
  const tensor mask = sp::nm_mask(w, 1);
  tensor masked = w.clone();
  sp::apply_mask(masked, mask);
  const auto c = sp::compress_2_4(w, &mask);
  CHECK(same_bytes(sp::decompress_2_4(c), masked));
  CHECK(c.values.shape() == quench::shape{32, 32});
  CHECK(c.metadata.shape() == quench::shape{32, 4});
  // Bytes: half the values plus 2 bits per kept value.
  CHECK(c.nbytes() == 32 * 32 * 4 + 32 * 4 * 2);

  tensor h(dtype::float16, {32, 64}, "h");
  for (std::size_t i = 0; i < h.size(); ++i) h.view<quench::float16>()[i] = quench::float16(w.view<float>()[i]);
  tensor hm = h.clone();
  sp::apply_mask(hm, mask);
  CHECK(same_bytes(sp::decompress_2_4(sp::compress_2_4(h, &mask)), hm));

  tensor q(dtype::int8, {16, 64}, "q");
  for (std::size_t i = 0; i < q.size(); ++i) q.view<std::int8_t>()[i] = static_cast<std::int8_t>(static_cast<int>(i * 37 % 255) - 127);
  tensor qmask = sp::nm_mask(w, 1);
  qmask.reshape({32, 64});
  tensor qm(dtype::uint8, {16, 64});
  std::memcpy(qm.bytes(), qmask.bytes(), qm.nbytes());
  tensor qmasked = q.clone();
  sp::apply_mask(qmasked, qm);
  const auto qc = sp::compress_2_4(q, &qm);
  CHECK(qc.metadata.dtype() == dtype::uint32);
  CHECK(qc.metadata.shape() == quench::shape{16, 2});
  CHECK(same_bytes(sp::decompress_2_4(qc), qmasked));
}

TEST_CASE("compress_2_4: codes, fillers and refusals") {
  // One row, four groups: {1,3}, {0,1}, only 0, none -> codes 0b1101, 0b0100, 0b1000, 0b1110.
  tensor x = tensor::from<float>({1, 16}, {0, 1, 0, 2, 3, 4, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}, "x");
  auto c = sp::compress_2_4(x);
  CHECK(c.metadata.view<std::uint16_t>()[0] == (0xd | 0x4 << 4 | 0x8 << 8 | 0xe << 12));
  const auto v = c.values.view<float>();
  CHECK(std::vector<float>(v.begin(), v.end()) == std::vector<float>{1, 2, 3, 4, 5, 0, 0, 0});
  // -0.0 is a stored value, so it survives the round trip.
  tensor z = tensor::from<float>({1, 4}, {-0.f, 0, 0, 7}, "z");
  auto zc = sp::compress_2_4(z);
  CHECK(zc.metadata.view<std::uint16_t>()[0] == 0xc);
  CHECK(same_bytes(sp::decompress_2_4(zc), z));

  tensor three = tensor::from<float>({2, 4}, {1, 0, 0, 1, 1, 1, 0, 1}, "fc.weight");
  CHECK_THROWS_WITH_AS(sp::compress_2_4(three),
                       "[quench.invalid_value] tensor 'fc.weight': row 1, columns 0..3 hold 3 non-zero values; a 2:4 "
                       "matrix has at most 2 in every group of 4",
                       quench::error);
  CHECK_THROWS_AS(sp::compress_2_4(tensor(dtype::float32, {4, 6}, "w")), quench::error);
  CHECK_THROWS_AS(sp::compress_2_4(tensor(dtype::float32, {4, 4, 4}, "w")), quench::error);
  CHECK_THROWS_AS(sp::compress_2_4(tensor(dtype::int32, {4, 4}, "w")), quench::error);
  auto bad = sp::compress_2_4(tensor(dtype::float32, {1, 4}, "w"));
  bad.metadata.view<std::uint16_t>()[0] = 0x5;  // positions 1, 1
  CHECK_THROWS_WITH_AS(sp::decompress_2_4(bad), doctest::Contains("metadata code 5"), quench::error);
  bad.values = tensor(dtype::float32, {1, 3});
  CHECK_THROWS_AS(sp::decompress_2_4(bad), quench::error);
}
