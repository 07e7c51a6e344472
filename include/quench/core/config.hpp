#pragma once
// Every QUENCH_ macro lives here, each overridable by defining it before the first quench include.

#include <cstdio>
#include <cstdlib>

/// Invariants of quench's own code (never user input: that throws quench::error).
/// Active unless NDEBUG is defined; override to route into your own assertion handler.
#ifndef QUENCH_ASSERT
#  ifdef NDEBUG
#    define QUENCH_ASSERT(cond) ((void)0)
#  else
#    define QUENCH_ASSERT(cond)                                                              \
       ((cond) ? (void)0                                                                     \
               : (std::fprintf(stderr, "%s:%d: quench invariant failed: %s\n", __FILE__,     \
                               __LINE__, #cond),                                             \
                  std::abort()))
#  endif
#endif

/// Alignment of tensor storage in bytes: one cache line, and enough for aligned AVX-512 loads.
#ifndef QUENCH_TENSOR_ALIGNMENT
#  define QUENCH_TENSOR_ALIGNMENT 64
#endif

/// Set to 0 to compile only the scalar kernels (the SIMD targets need GCC/Clang on x86-64).
#ifndef QUENCH_ENABLE_SIMD
#  if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
#    define QUENCH_ENABLE_SIMD 1
#  else
#    define QUENCH_ENABLE_SIMD 0
#  endif
#endif

/// 1: builtin_ops() is declared in quench/runtime/builtin_ops.hpp and defined by the one
/// translation unit that includes quench/runtime/builtin_ops_impl.hpp (kernels compiled once).
#ifndef QUENCH_SEPARATE_BUILTIN_OPS
#  define QUENCH_SEPARATE_BUILTIN_OPS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define QUENCH_TARGET(features) __attribute__((target(features)))
#  define QUENCH_RESTRICT __restrict__
#else
#  define QUENCH_TARGET(features)
#  define QUENCH_RESTRICT
#endif
