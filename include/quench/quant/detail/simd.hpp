#pragma once
// Runtime choice of the instruction set for the quant kernels. The CPU check runs once and is
// cached in an inline variable; every kernel also takes the target explicitly so that tests can
// run each one the CPU supports and compare it bit for bit with the scalar path.

#include "quench/core/config.hpp"

namespace quench::detail {

/// Instruction sets the quantize/dequantize kernels are compiled for, in increasing order.
enum class quant_isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* quant_isa_name(quant_isa isa) noexcept {
  switch (isa) {
    case quant_isa::scalar: return "scalar";
    case quant_isa::avx2: return "avx2";
    case quant_isa::avx512: return "avx512";
  }
  return "unknown";
}

/// True when this CPU (and OS, which must save the wider registers) runs `isa`.
inline bool quant_isa_supported(quant_isa isa) noexcept {
#if QUENCH_ENABLE_SIMD
  // libgcc's __builtin_cpu_supports also checks XCR0, i.e. that the OS enabled the AVX state.
  __builtin_cpu_init();
  switch (isa) {
    case quant_isa::scalar: return true;
    case quant_isa::avx2: return __builtin_cpu_supports("avx2") != 0;
    case quant_isa::avx512: return __builtin_cpu_supports("avx512f") != 0;
  }
  return false;
#else
  return isa == quant_isa::scalar;
#endif
}

inline quant_isa detect_quant_isa() noexcept {
  if (quant_isa_supported(quant_isa::avx512)) return quant_isa::avx512;
  if (quant_isa_supported(quant_isa::avx2)) return quant_isa::avx2;
  return quant_isa::scalar;
}

/// The best target of this CPU, detected once per program.
inline const quant_isa best_quant_isa = detect_quant_isa();

}  // namespace quench::detail
