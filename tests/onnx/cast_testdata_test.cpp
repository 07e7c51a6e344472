// The ONNX backend node tests of Cast/CastLike between float and float16/bfloat16
// (libonnx-testdata, onnx 1.12), run through quench::convert on every SIMD target.
//
// Two properties of that data set, both from onnx 1.12's generator
// (onnx/backend/test/case/node/cast.py):
//  * bfloat16 tensors are stored with data_type UINT16 (4): the generator wrote numpy uint16 arrays.
//    The model declares BFLOAT16; the bits are bfloat16 bits.
//  * test_cast_FLOAT_to_BFLOAT16's expected output is the float's top 16 bits, i.e. truncation.
//    ONNX's own helper onnx.helper.float32_to_bfloat16 rounds to nearest even by default
//    (truncate=False), as do torch and Eigen, and so does quench. The test therefore compares with
//    the .pb where the two agree, requires every disagreement to be exactly a truncation artefact,
//    and reports how many there are.
// The CastLike variants (and their _expanded function bodies) hold the same data; they are run too.

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "quench/numeric/convert.hpp"
#include "quench/onnx/tensor_proto.hpp"

using quench::bfloat16;
using quench::dtype;
using quench::float16;
using quench::simd_target;

namespace {

const std::vector<std::string> kPrefixes = {"test_cast_", "test_castlike_", "test_castlike_"};
const std::vector<std::string> kSuffixes = {"", "", "_expanded"};

struct case_data {
  std::string name;
  quench::tensor input, output;
};

std::vector<case_data> load(const std::string& conversion) {
  std::vector<case_data> out;
  for (std::size_t i = 0; i < kPrefixes.size(); ++i) {
    const std::string name = kPrefixes[i] + conversion + kSuffixes[i];
    const std::string dir = std::string(QUENCH_ONNX_TESTDATA_DIR) + "/node/" + name + "/test_data_set_0/";
    out.push_back({name, quench::onnx::read_tensor_file(dir + "input_0.pb"),
                   quench::onnx::read_tensor_file(dir + "output_0.pb")});
  }
  return out;
}

template <class T>
std::vector<std::uint32_t> bits_of(const quench::tensor& t) {
  std::vector<std::uint32_t> v(t.size());
  for (std::size_t i = 0; i < t.size(); ++i) {
    T x;
    std::memcpy(&x, t.bytes() + i * sizeof(T), sizeof(T));
    v[i] = x;
  }
  return v;
}

bool is_bfloat16_bits(dtype t) { return t == dtype::bfloat16 || t == dtype::uint16; }

}  // namespace

TEST_CASE("onnx Cast: FLOAT to FLOAT16 matches the node tests bit for bit") {
  for (auto& c : load("FLOAT_to_FLOAT16")) {
    REQUIRE(c.input.dtype() == dtype::float32);
    REQUIRE(c.output.dtype() == dtype::float16);
    REQUIRE(c.input.shape() == c.output.shape());
    const auto want = bits_of<std::uint16_t>(c.output);
    for (simd_target t : quench::supported_simd_targets()) {
      quench::tensor got(dtype::float16, c.input.shape());
      quench::convert(std::as_const(c.input).view<float>(), got.view<float16>(), t);
      CAPTURE(c.name);
      CAPTURE(quench::simd_target_name(t));
      CHECK(bits_of<std::uint16_t>(got) == want);
    }
  }
}

TEST_CASE("onnx Cast: FLOAT16 to FLOAT matches the node tests bit for bit") {
  for (auto& c : load("FLOAT16_to_FLOAT")) {
    REQUIRE(c.input.dtype() == dtype::float16);
    REQUIRE(c.output.dtype() == dtype::float32);
    const auto want = bits_of<std::uint32_t>(c.output);
    for (simd_target t : quench::supported_simd_targets()) {
      quench::tensor got(dtype::float32, c.input.shape());
      quench::convert(std::as_const(c.input).view<float16>(), got.view<float>(), t);
      CAPTURE(c.name);
      CAPTURE(quench::simd_target_name(t));
      CHECK(bits_of<std::uint32_t>(got) == want);
    }
  }
}

TEST_CASE("onnx Cast: BFLOAT16 to FLOAT matches the node tests bit for bit") {
  for (auto& c : load("BFLOAT16_to_FLOAT")) {
    REQUIRE(is_bfloat16_bits(c.input.dtype()));  // UINT16 in onnx 1.12's data, see the top
    REQUIRE(c.output.dtype() == dtype::float32);
    const auto* src = reinterpret_cast<const bfloat16*>(c.input.bytes());
    const auto want = bits_of<std::uint32_t>(c.output);
    for (simd_target t : quench::supported_simd_targets()) {
      std::vector<float> got(c.input.size());
      quench::convert(src, got.data(), got.size(), t);
      std::vector<std::uint32_t> got_bits(got.size());
      std::memcpy(got_bits.data(), got.data(), got.size() * sizeof(float));
      CAPTURE(c.name);
      CAPTURE(quench::simd_target_name(t));
      CHECK(got_bits == want);
    }
  }
}

TEST_CASE("onnx Cast: FLOAT to BFLOAT16 rounds to nearest even; the node test's truncation is accounted for") {
  for (auto& c : load("FLOAT_to_BFLOAT16")) {
    REQUIRE(c.input.dtype() == dtype::float32);
    REQUIRE(is_bfloat16_bits(c.output.dtype()));
    const auto in = bits_of<std::uint32_t>(c.input);
    const auto want = bits_of<std::uint16_t>(c.output);
    for (simd_target t : quench::supported_simd_targets()) {
      std::vector<bfloat16> got(in.size());
      quench::convert(std::as_const(c.input).view<float>().data(), got.data(), got.size(), t);
      std::size_t agree = 0, truncation_artefacts = 0, truncation_differs = 0;
      for (std::size_t i = 0; i < in.size(); ++i) {
        const std::uint32_t x = in[i];
        const bool nan = (x & 0x7fffffffu) > 0x7f800000u;
        const std::uint16_t truncated = static_cast<std::uint16_t>(x >> 16);
        const std::uint16_t rne = nan ? static_cast<std::uint16_t>(truncated | 0x40u)
                                      : static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
        truncation_differs += truncated != rne;
        CAPTURE(c.name);
        CAPTURE(quench::simd_target_name(t));
        CAPTURE(i);
        CHECK(got[i].bits() == rne);  // what quench defines, computed here independently
        if (got[i].bits() == want[i]) {
          ++agree;
        } else {
          CHECK(want[i] == truncated);  // the only accepted reason to differ
          ++truncation_artefacts;
        }
      }
      CHECK(agree + truncation_artefacts == in.size());
      // Either the data was made by truncation (onnx 1.12) or by rounding (later onnx): nothing else.
      CHECK((truncation_artefacts == truncation_differs || truncation_artefacts == 0));
      if (t == simd_target::scalar)
        MESSAGE(c.name << ": " << agree << " of " << in.size() << " elements equal the .pb; " << truncation_artefacts
                       << " differ because the .pb truncates where ONNX's helper and quench round to nearest even");
    }
  }
}
