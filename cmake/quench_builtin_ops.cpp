// The one translation unit that compiles quench's kernels for the project's own tests, examples
// and benchmarks (QUENCH_SEPARATE_BUILTIN_OPS=1, see quench/runtime/builtin_ops.hpp): without it,
// every file that runs a model would compile Eigen's GEMM and all kernels again.
#include "quench/runtime/builtin_ops_impl.hpp"
