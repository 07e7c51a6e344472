#pragma once
// builtin_ops(): the registry of every kernel quench ships.
//
// Header-only by default. A program that runs models from many translation units can compile
// the kernels once: define QUENCH_SEPARATE_BUILTIN_OPS=1 everywhere and include
// quench/runtime/builtin_ops_impl.hpp in exactly one .cpp file (quench's own tests and examples
// do this through the quench_builtin_ops library target).

#include "quench/core/config.hpp"
#include "quench/runtime/op_registry.hpp"

#if QUENCH_SEPARATE_BUILTIN_OPS
namespace quench::runtime {
/// Every built-in kernel; defined by the one translation unit that includes builtin_ops_impl.hpp.
const op_registry& builtin_ops();
}  // namespace quench::runtime
#else
#  include "quench/runtime/builtin_ops_impl.hpp"
#endif
