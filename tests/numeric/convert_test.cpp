#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#if QUENCH_ENABLE_SIMD
#  include <xmmintrin.h>
#endif

#include "numeric/reference_data.hpp"
#include "quench/core/tensor.hpp"
#include "quench/numeric/convert.hpp"

using quench::bfloat16;
using quench::float16;
using quench::float8e4m3fn;
using quench::float8e4m3fnuz;
using quench::float8e5m2;
using quench::float8e5m2fnuz;
using quench::simd_target;
using quench_test::hex;

namespace {

std::vector<float> reference_inputs() {
  const auto bits = quench_test::read_reference<std::uint32_t>("inputs.f32.u32");
  std::vector<float> f(bits.size());
  if (!bits.empty()) std::memcpy(f.data(), bits.data(), bits.size() * sizeof(float));
  return f;
}

template <class T>
std::uint32_t raw(const T& v) {
  std::uint32_t u = 0;
  std::memcpy(&u, &v, sizeof v);
  return u;
}

/// Runs `conv(src, dst, n, target)` for every supported target and compares the output bytes with
/// the scalar target's; `in_bits(i)` prints input i for a failure message.
template <class Src, class Dst, class Conv>
void compare_targets(const std::vector<Src>& src, Conv conv, const char* what) {
  std::vector<Dst> want(src.size());
  conv(src.data(), want.data(), src.size(), simd_target::scalar);
  for (simd_target t : quench::supported_simd_targets()) {
    if (t == simd_target::scalar) continue;
    std::vector<Dst> got(src.size());
    conv(src.data(), got.data(), src.size(), t);
    quench_test::mismatch_log log;
    for (std::size_t i = 0; i < src.size(); ++i)
      if (raw(got[i]) != raw(want[i]))
        log.add("element " + std::to_string(i) + " input " + hex(raw(src[i])) + ": " + hex(raw(got[i])) +
                ", scalar " + hex(raw(want[i])));
    INFO(what << " on " << quench::simd_target_name(t) << ", " << src.size() << " elements:\n" << log.first);
    CHECK(log.count == 0);
  }
}

// The conversions as callables with one signature, so the generic checks can loop over them.
struct to_half {
  void operator()(const float* s, float16* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, t); }
};
struct from_half {
  void operator()(const float16* s, float* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, t); }
};
struct to_bf16 {
  void operator()(const float* s, bfloat16* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, t); }
};
struct from_bf16 {
  void operator()(const bfloat16* s, float* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, t); }
};
template <class F8>
struct to_f8 {
  bool saturate;
  void operator()(const float* s, F8* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, saturate, t); }
};
template <class F8>
struct from_f8 {
  void operator()(const F8* s, float* d, std::size_t n, simd_target t) const { quench::convert(s, d, n, t); }
};

/// Random 16-bit patterns; from 65536 elements on, every pattern at least once, spread out so that
/// NaN and ordinary patterns share vectors.
template <class T>
std::vector<T> all_patterns16(std::size_t count) {
  std::vector<T> v(count);
  std::uint32_t state = 12345;
  for (auto& x : v) x = T::from_bits(static_cast<std::uint16_t>((state = state * 1664525u + 1013904223u) >> 16));
  // 40503 is odd, so b -> b * 40503 mod 2^k is a bijection: no two patterns land on one slot.
  if (count >= 0x10000 && (count & (count - 1)) == 0)
    for (std::uint32_t b = 0; b < 0x10000; ++b) v[(b * 40503u) & (count - 1)] = T::from_bits(static_cast<std::uint16_t>(b));
  return v;
}

template <class F8>
std::vector<F8> all_patterns8(std::size_t count) {
  std::vector<F8> v(count);
  std::uint32_t state = 777;
  for (std::size_t i = 0; i < count; ++i)
    v[i] = F8::from_bits(static_cast<std::uint8_t>(i < 256 ? i : (state = state * 1664525u + 1013904223u) >> 24));
  return v;
}

/// Lengths 0..80 at every offset 0..3 from a 64-byte boundary, with guard elements after the end
/// that must stay untouched: covers the block loops, the tails and the masked stores.
template <class Src, class Dst, class Conv>
void check_tails(const std::vector<Src>& pool, Conv conv, const char* what) {
  REQUIRE(pool.size() >= 256);
  constexpr std::size_t guard = 40;
  for (simd_target t : quench::supported_simd_targets()) {
    std::size_t failures = 0;
    for (std::size_t n = 0; n <= 80; ++n) {
      for (std::size_t off = 0; off < 4; ++off) {
        alignas(64) Src src[128];
        alignas(64) Dst want[128 + guard];
        alignas(64) Dst got[128 + guard];
        std::memcpy(static_cast<void*>(src), pool.data() + n, sizeof src);
        std::memset(static_cast<void*>(want), 0x5a, sizeof want);
        std::memset(static_cast<void*>(got), 0x5a, sizeof got);
        conv(src + off, want + off, n, simd_target::scalar);
        conv(src + off, got + off, n, t);
        if (std::memcmp(want, got, sizeof got) != 0) {
          ++failures;
          INFO(what << " on " << quench::simd_target_name(t) << ": length " << n << " offset " << off);
          CHECK(std::memcmp(want, got, sizeof got) == 0);
        }
      }
    }
    CHECK(failures == 0);
  }
}

}  // namespace

TEST_CASE("convert: every SIMD target equals scalar on the 1M reference inputs") {
  const auto in = reference_inputs();
  REQUIRE(in.size() >= (1u << 20));
  MESSAGE("targets compared with scalar: " << quench::supported_simd_targets().size() - 1 << " (best "
                                           << quench::simd_target_name(quench::best_simd_target()) << ")");
  compare_targets<float, float16>(in, to_half{}, "float -> float16");
  compare_targets<float, bfloat16>(in, to_bf16{}, "float -> bfloat16");
  for (bool sat : {true, false}) {
    CAPTURE(sat);
    compare_targets<float, float8e4m3fn>(in, to_f8<float8e4m3fn>{sat}, "float -> e4m3fn");
    compare_targets<float, float8e4m3fnuz>(in, to_f8<float8e4m3fnuz>{sat}, "float -> e4m3fnuz");
    compare_targets<float, float8e5m2>(in, to_f8<float8e5m2>{sat}, "float -> e5m2");
    compare_targets<float, float8e5m2fnuz>(in, to_f8<float8e5m2fnuz>{sat}, "float -> e5m2fnuz");
  }
}

TEST_CASE("convert: every SIMD target equals scalar from the narrow types (all patterns)") {
  compare_targets<float16, float>(all_patterns16<float16>(1 << 20), from_half{}, "float16 -> float");
  compare_targets<bfloat16, float>(all_patterns16<bfloat16>(1 << 20), from_bf16{}, "bfloat16 -> float");
  compare_targets<float8e4m3fn, float>(all_patterns8<float8e4m3fn>(1 << 16), from_f8<float8e4m3fn>{}, "e4m3fn -> float");
  compare_targets<float8e4m3fnuz, float>(all_patterns8<float8e4m3fnuz>(1 << 16), from_f8<float8e4m3fnuz>{},
                                         "e4m3fnuz -> float");
  compare_targets<float8e5m2, float>(all_patterns8<float8e5m2>(1 << 16), from_f8<float8e5m2>{}, "e5m2 -> float");
  compare_targets<float8e5m2fnuz, float>(all_patterns8<float8e5m2fnuz>(1 << 16), from_f8<float8e5m2fnuz>{},
                                         "e5m2fnuz -> float");
}

TEST_CASE("convert: the pointer kernels agree with the scalar value functions") {
  // The scalar target itself against float16.hpp etc., so that "equals scalar" means "equals the
  // documented conversion".
  const std::vector<float> in = {1.0f, -0.0f, 65520.0f, 1e-8f, 3.0e38f, -2.5f};
  std::vector<float16> h(in.size());
  std::vector<bfloat16> b(in.size());
  std::vector<float8e5m2> q(in.size());
  quench::convert(in.data(), h.data(), in.size(), simd_target::scalar);
  quench::convert(in.data(), b.data(), in.size(), simd_target::scalar);
  quench::convert(in.data(), q.data(), in.size(), false, simd_target::scalar);
  for (std::size_t i = 0; i < in.size(); ++i) {
    CHECK(h[i].bits() == float16(in[i]).bits());
    CHECK(b[i].bits() == bfloat16(in[i]).bits());
    CHECK(q[i].bits() == float8e5m2(in[i], false).bits());
  }
}

TEST_CASE("convert: every length and misalignment, nothing written past the end") {
  const auto in = reference_inputs();
  REQUIRE(in.size() >= 4096);
  // The reference inputs are shuffled and mostly special values (ties, NaN, Inf, subnormals), so
  // any slice of them exercises every branch.
  std::vector<float> pool(in.begin(), in.begin() + 4096);
  check_tails<float, float16>(pool, to_half{}, "float -> float16");
  check_tails<float, bfloat16>(pool, to_bf16{}, "float -> bfloat16");
  check_tails<float, float8e4m3fn>(pool, to_f8<float8e4m3fn>{true}, "float -> e4m3fn");
  check_tails<float, float8e5m2>(pool, to_f8<float8e5m2>{false}, "float -> e5m2");
  check_tails<float, float8e4m3fnuz>(pool, to_f8<float8e4m3fnuz>{false}, "float -> e4m3fnuz");
  check_tails<float, float8e5m2fnuz>(pool, to_f8<float8e5m2fnuz>{true}, "float -> e5m2fnuz");
  check_tails<float16, float>(all_patterns16<float16>(4096), from_half{}, "float16 -> float");
  check_tails<bfloat16, float>(all_patterns16<bfloat16>(4096), from_bf16{}, "bfloat16 -> float");
  check_tails<float8e4m3fn, float>(all_patterns8<float8e4m3fn>(4096), from_f8<float8e4m3fn>{}, "e4m3fn -> float");
  check_tails<float8e5m2, float>(all_patterns8<float8e5m2>(4096), from_f8<float8e5m2>{}, "e5m2 -> float");
}

#if QUENCH_ENABLE_SIMD
TEST_CASE("convert: results do not depend on MXCSR (FTZ, DAZ, rounding mode)") {
  // -ffast-math programs run with FTZ|DAZ; others may change the rounding mode. F16C with imm 0
  // ignores the rounding mode and FTZ; DAZ would zero float subnormal inputs, which round to a
  // signed zero in float16 anyway. The integer kernels do not look at MXCSR at all.
  const auto in = reference_inputs();
  REQUIRE(!in.empty());
  std::vector<float> src(in.begin(), in.begin() + (1 << 16));
  for (std::uint32_t b = 0; b < 4096; ++b) {  // float subnormals and half subnormals
    std::uint32_t sub = b * 2047u, half_sub = 0x33000000u + b * 0x1000u;
    std::memcpy(&src[2 * b], &sub, 4);
    std::memcpy(&src[2 * b + 1], &half_sub, 4);
  }
  std::vector<float16> want_h(src.size()), got_h(src.size());
  std::vector<bfloat16> want_b(src.size()), got_b(src.size());
  std::vector<float8e4m3fn> want_q(src.size()), got_q(src.size());
  std::vector<float16> halves = all_patterns16<float16>(1 << 16);
  std::vector<float> want_f(halves.size()), got_f(halves.size());
  quench::convert(src.data(), want_h.data(), src.size(), simd_target::scalar);
  quench::convert(src.data(), want_b.data(), src.size(), simd_target::scalar);
  quench::convert(src.data(), want_q.data(), src.size(), true, simd_target::scalar);
  quench::convert(halves.data(), want_f.data(), halves.size(), simd_target::scalar);

  const unsigned saved = _mm_getcsr();
  for (unsigned mode : {0x8040u | 0x6000u, 0x8040u | 0x2000u, 0x8040u}) {  // FTZ|DAZ with RZ, RD, RN
    for (simd_target t : quench::supported_simd_targets()) {
      _mm_setcsr((saved & ~0xe040u) | mode);
      quench::convert(src.data(), got_h.data(), src.size(), t);
      quench::convert(src.data(), got_b.data(), src.size(), t);
      quench::convert(src.data(), got_q.data(), src.size(), true, t);
      quench::convert(halves.data(), got_f.data(), halves.size(), t);
      _mm_setcsr(saved);
      INFO("MXCSR mode " << hex(mode) << " target " << quench::simd_target_name(t));
      CHECK(std::memcmp(want_h.data(), got_h.data(), got_h.size() * sizeof(float16)) == 0);
      CHECK(std::memcmp(want_b.data(), got_b.data(), got_b.size() * sizeof(bfloat16)) == 0);
      CHECK(std::memcmp(want_q.data(), got_q.data(), got_q.size()) == 0);
      CHECK(std::memcmp(want_f.data(), got_f.data(), got_f.size() * sizeof(float)) == 0);
    }
  }
}
#endif

TEST_CASE("convert: tensor views") {
  quench::tensor w = quench::tensor::from<float>({2, 3}, {1.0f, -2.0f, 0.5f, 65520.0f, 1e-3f, -0.0f}, "w");
  quench::tensor h(quench::dtype::float16, w.shape());
  quench::convert(w.view<float>(), h.view<float16>());
  CHECK(h.view<float16>()[0].bits() == 0x3c00);
  CHECK(h.view<float16>()[3].bits() == 0x7c00);

  quench::tensor back(quench::dtype::float32, w.shape());
  quench::convert(std::as_const(h).view<float16>(), back.view<float>());
  CHECK(back.view<float>()[2] == 0.5f);

  quench::tensor q(quench::dtype::float8e4m3fn, w.shape());
  quench::convert(w.view<float>(), q.view<float8e4m3fn>(), false);
  CHECK(q.view<float8e4m3fn>()[3].is_nan());  // 65520 overflows e4m3fn without saturation
  quench::convert(w.view<float>(), q.view<float8e4m3fn>(), true, simd_target::scalar);
  CHECK(q.view<float8e4m3fn>()[3].bits() == 0x7e);

  quench::tensor empty_src(quench::dtype::float32, {0, 4});
  quench::tensor empty_dst(quench::dtype::bfloat16, {0, 4});
  CHECK_NOTHROW(quench::convert(empty_src.view<float>(), empty_dst.view<bfloat16>()));
}

TEST_CASE("convert: a shape mismatch throws quench::error") {
  quench::tensor w(quench::dtype::float32, {2, 3});
  quench::tensor wrong_count(quench::dtype::float16, {5});
  quench::tensor wrong_shape(quench::dtype::float16, {3, 2});
  quench::tensor f8(quench::dtype::float8e5m2, {6});
  for (quench::tensor* dst : {&wrong_count, &wrong_shape}) {
    try {
      quench::convert(w.view<float>(), dst->view<float16>());
      FAIL("no exception");
    } catch (const quench::error& e) {
      CHECK(e.code() == quench::errc::shape_mismatch);
      CHECK(std::string(e.what()).find("[2, 3]") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(quench::convert(w.view<float>(), f8.view<float8e5m2>(), true), quench::error);
}

TEST_CASE("convert: every 32-bit float through every target (exhaustive, opt-in)" * doctest::skip()) {
  // 2^32 inputs x 10 conversions x targets: about a minute per target. Run with
  //   build/bin/quench_numeric_tests -tc='*exhaustive*' --no-skip
  const std::size_t chunk = 1 << 22;
  std::vector<float> src(chunk);
  std::vector<std::uint16_t> w16(chunk), g16(chunk);
  std::vector<std::uint8_t> w8(chunk), g8(chunk);
  std::size_t bad = 0;
  for (std::uint64_t base = 0; base < (std::uint64_t{1} << 32); base += chunk) {
    for (std::size_t i = 0; i < chunk; ++i) {
      const auto b = static_cast<std::uint32_t>(base + i);
      std::memcpy(&src[i], &b, 4);
    }
    auto run16 = [&](auto tag, simd_target t, std::vector<std::uint16_t>& out) {
      using T = decltype(tag);
      quench::convert(src.data(), reinterpret_cast<T*>(out.data()), chunk, t);
    };
    auto run8 = [&](auto tag, bool sat, simd_target t, std::vector<std::uint8_t>& out) {
      using T = decltype(tag);
      quench::convert(src.data(), reinterpret_cast<T*>(out.data()), chunk, sat, t);
    };
    for (simd_target t : quench::supported_simd_targets()) {
      if (t == simd_target::scalar) continue;
      run16(float16{}, simd_target::scalar, w16), run16(float16{}, t, g16), bad += (w16 != g16);
      run16(bfloat16{}, simd_target::scalar, w16), run16(bfloat16{}, t, g16), bad += (w16 != g16);
      for (bool sat : {true, false}) {
        run8(float8e4m3fn{}, sat, simd_target::scalar, w8), run8(float8e4m3fn{}, sat, t, g8), bad += (w8 != g8);
        run8(float8e4m3fnuz{}, sat, simd_target::scalar, w8), run8(float8e4m3fnuz{}, sat, t, g8), bad += (w8 != g8);
        run8(float8e5m2{}, sat, simd_target::scalar, w8), run8(float8e5m2{}, sat, t, g8), bad += (w8 != g8);
        run8(float8e5m2fnuz{}, sat, simd_target::scalar, w8), run8(float8e5m2fnuz{}, sat, t, g8), bad += (w8 != g8);
      }
    }
  }
  CHECK(bad == 0);
}
