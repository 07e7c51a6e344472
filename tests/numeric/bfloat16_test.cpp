#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "numeric/reference_data.hpp"
#include "quench/numeric/bfloat16.hpp"

using quench::bfloat16;
using quench::detail::bfloat16_bits_to_float;
using quench::detail::bits_float;
using quench::detail::float_bits;
using quench::detail::float_to_bfloat16_bits;
using quench_test::hex;

namespace {
std::uint16_t to_bf16(std::uint32_t x) { return float_to_bfloat16_bits(bits_float(x)); }
bool bf16_is_nan(std::uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }
}  // namespace

TEST_CASE("bfloat16: boundary values") {
  struct row {
    std::uint32_t in;
    std::uint16_t out;
  };
  const row rows[] = {
      {0x3f800000, 0x3f80},  // 1
      {0x3f808000, 0x3f80},  // tie, even stays
      {0x3f818000, 0x3f82},  // tie, odd rounds up
      {0x3f808001, 0x3f81},  // just above a tie
      {0x7f7f7fff, 0x7f7f},  // just below the tie above bfloat16 max
      {0x7f7f8000, 0x7f80},  // tie above max (0x7f7f odd) -> Inf
      {0x7f7effff, 0x7f7f},
      {0x7f7e8000, 0x7f7e},  // tie, even stays
      {0x7f7fffff, 0x7f80},  // FLT_MAX -> Inf
      {0xff7fffff, 0xff80},
      {0x7f800000, 0x7f80},
      {0xff800000, 0xff80},
      {0x00000001, 0x0000},  // float subnormals are rounded, not flushed
      {0x00008000, 0x0000},  // tie -> even 0
      {0x00008001, 0x0001},
      {0x00018000, 0x0002},  // tie -> even 2
      {0x007fffff, 0x0080},  // max subnormal rounds up to min normal
      {0x807fffff, 0x8080},
      {0x80000000, 0x8000},
      {0x7fc00000, 0x7fc0},  // quiet NaN
      {0xffc00001, 0xffc0},  // sign kept
      {0x7f800001, 0x7fc0},  // signalling NaN: quiet, never Inf (truncation would give Inf)
      {0xff810000, 0xffc1},  // top payload bits kept
      {0x7fa00000, 0x7fe0},
      {0x7fffffff, 0x7fff},
  };
  for (const auto& r : rows) {
    INFO("input " << hex(r.in) << " expected " << hex(r.out) << " got " << hex(to_bf16(r.in)));
    CHECK(to_bf16(r.in) == r.out);
  }
}

TEST_CASE("bfloat16: every bit pattern survives bfloat16 -> float -> bfloat16") {
  // bfloat16 -> float is exact (signalling NaNs stay signalling); float -> bfloat16 quiets NaNs, so
  // signalling NaN patterns come back with bit 6 set and everything else unchanged.
  quench_test::mismatch_log log;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    CHECK_MESSAGE(float_bits(bfloat16_bits_to_float(h)) == (b << 16), hex(h));
    const bool snan = bf16_is_nan(h) && !(h & 0x40u);
    const std::uint16_t want = snan ? static_cast<std::uint16_t>(h | 0x40u) : h;
    const std::uint16_t got = float_to_bfloat16_bits(bfloat16_bits_to_float(h));
    if (got != want) log.add(hex(h) + " -> " + hex(got) + ", expected " + hex(want));
  }
  INFO(log.first);
  CHECK(log.count == 0);
}

TEST_CASE("bfloat16: bfloat16 -> float equals torch on all 65536 patterns") {
  const auto ref = quench_test::read_reference<std::uint32_t>("torch_bf16_to_f32.u32");
  REQUIRE(ref.size() == 0x10000);
  quench_test::mismatch_log log;
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const std::uint32_t got = float_bits(bfloat16_bits_to_float(static_cast<std::uint16_t>(b)));
    if (got != ref[b]) log.add(hex(static_cast<std::uint16_t>(b)) + " -> " + hex(got) + ", torch " + hex(ref[b]));
  }
  INFO(log.first);
  CHECK(log.count == 0);
}

TEST_CASE("bfloat16: float -> bfloat16 equals torch .to(bfloat16) on 1M reference inputs") {
  const auto in = quench_test::read_reference<std::uint32_t>("inputs.f32.u32");
  const auto ref = quench_test::read_reference<std::uint16_t>("torch_bf16.u16");
  REQUIRE(in.size() >= (1u << 20));
  REQUIRE(ref.size() == in.size());
  quench_test::mismatch_log log;
  std::size_t nan_inputs = 0, torch_differs = 0, ties = 0, subnormal = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::uint32_t x = in[i];
    const std::uint16_t got = to_bf16(x);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
      // Documented difference: torch's vectorised cast writes 0xffff for every NaN, quench
      // (x >> 16) | 0x40. Assert that both are NaN and that quench gives its documented value.
      ++nan_inputs;
      const auto want = static_cast<std::uint16_t>((x >> 16) | 0x40u);
      if (got != want) log.add("NaN " + hex(x) + " -> " + hex(got) + ", documented " + hex(want));
      if (!bf16_is_nan(ref[i])) log.add("NaN " + hex(x) + ": torch gave non-NaN " + hex(ref[i]));
      torch_differs += (ref[i] != got);
      continue;
    }
    ties += (x & 0xffffu) == 0x8000u;
    subnormal += (x & 0x7f800000u) == 0 && (x & 0x7fffffu) != 0;
    if (got != ref[i]) log.add(hex(x) + " -> " + hex(got) + ", torch " + hex(ref[i]));
  }
  INFO(log.first);
  CHECK(log.count == 0);
  MESSAGE("bfloat16 vs torch: " << in.size() << " inputs, " << nan_inputs << " NaN inputs, "
                                << torch_differs << " of them with another NaN pattern in torch");
  CHECK(nan_inputs > 1000);
  CHECK(torch_differs > 1000);
  CHECK(ties > 10000);
  CHECK(subnormal > 10000);
}

TEST_CASE("bfloat16: value type") {
  CHECK(bfloat16(1.0f).bits() == 0x3f80);
  CHECK(bfloat16::from_bits(0x3f80).to_float() == 1.0f);
  CHECK(static_cast<float>(bfloat16::max()) == bits_float(0x7f7f0000));
  CHECK(static_cast<float>(bfloat16::lowest()) == -bits_float(0x7f7f0000));
  CHECK(bfloat16::infinity().is_inf());
  CHECK(bfloat16::quiet_nan().is_nan());
  CHECK_FALSE(bfloat16::infinity().is_nan());
  CHECK(same_bits(bfloat16(-0.0f), bfloat16::from_bits(0x8000)));
  CHECK(quench::dtype_of_v<bfloat16> == quench::dtype::bfloat16);
}
