#pragma once
// The kernels quench ships, in one registry built once.

#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/elementwise.hpp"

namespace quench::runtime {

/// Every built-in kernel. Built on first use (thread-safe static initialisation), immutable after.
inline const op_registry& builtin_ops() {
  static const op_registry registry = [] {
    op_registry r;
    register_elementwise_ops(r);
    return r;
  }();
  return registry;
}

}  // namespace quench::runtime
