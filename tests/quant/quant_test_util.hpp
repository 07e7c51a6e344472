#pragma once
// Shared helpers of the quant tests: deterministic data with the values that break kernels
// (ties, out-of-range, NaN, Inf, subnormals, -0).

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "quench/numeric/cpu.hpp"

namespace quench_test {

/// xorshift64*: the same numbers on every platform, unlike std:: distributions.
struct rng {
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  /// Uniform in [lo, hi).
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(static_cast<double>(next() >> 40) / 16777216.0);
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
};

inline float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint32_t to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline std::string hex(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

/// `n` floats around [-range, range] * scale with every hard case mixed in: exact ties k + 0.5
/// (for power-of-two scales), values far outside the quantized range, NaN, +-Inf, subnormals,
/// +-0 and the largest floats.
inline std::vector<float> hard_floats(std::size_t n, float scale, float range, std::uint64_t seed) {
  rng r(seed);
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) {
    switch (r.below(12)) {
      case 0: x[i] = (static_cast<float>(static_cast<int>(r.below(601)) - 300) + 0.5f) * scale; break;
      case 1: x[i] = r.uniform(-1e6f, 1e6f) * scale; break;
      case 2: x[i] = std::numeric_limits<float>::quiet_NaN(); break;
      case 3: x[i] = (r.below(2) ? 1.f : -1.f) * std::numeric_limits<float>::infinity(); break;
      case 4: x[i] = from_bits(r.below(0x007fffff) + 1u) * (r.below(2) ? 1.f : -1.f); break;
      case 5: x[i] = r.below(2) ? 0.f : -0.f; break;
      case 6: x[i] = (r.below(2) ? 1.f : -1.f) * std::numeric_limits<float>::max(); break;
      default: x[i] = r.uniform(-range, range) * scale; break;
    }
  }
  return x;
}

}  // namespace quench_test
