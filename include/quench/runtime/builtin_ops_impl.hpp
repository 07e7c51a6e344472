#pragma once
// The definition of builtin_ops(): includes every kernel family. In header-only use,
// quench/runtime/builtin_ops.hpp includes this file and the function is inline. With
// QUENCH_SEPARATE_BUILTIN_OPS=1, exactly one translation unit of the program includes this file
// and defines the function; every other one sees only the declaration, so the kernels (Eigen GEMM
// and all) are compiled once instead of in every file that runs a model.

#include "quench/core/config.hpp"
#include "quench/runtime/op_registry.hpp"
#include "quench/runtime/ops/elementwise.hpp"
#include "quench/runtime/ops/shape_ops.hpp"
#include "quench/runtime/ops/resize.hpp"
#include "quench/runtime/ops/reduce.hpp"
#include "quench/runtime/ops/quantize_ops.hpp"
#include "quench/runtime/ops/conv.hpp"
#include "quench/runtime/ops/matmul.hpp"
#include "quench/runtime/ops/norm.hpp"
#include "quench/runtime/ops/pool.hpp"

namespace quench::runtime {

#if QUENCH_SEPARATE_BUILTIN_OPS
const op_registry& builtin_ops() {
#else
inline const op_registry& builtin_ops() {
#endif
  // Built on first use (thread-safe static initialisation), immutable after.
  static const op_registry registry = [] {
    op_registry r;
    register_elementwise_ops(r);
    register_shape_ops(r);
    register_resize_ops(r);
    register_reduce_ops(r);
    register_quantize_ops(r);
    register_conv_ops(r);
    register_matmul_ops(r);
    register_norm_ops(r);
    register_pool_ops(r);
    return r;
  }();
  return registry;
}

}  // namespace quench::runtime
