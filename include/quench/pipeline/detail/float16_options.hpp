#pragma once
// The options and the report of quench/pipeline/float16.hpp (whole-model float16 / bfloat16
// conversion), in a header of their own so the planner in detail/ can use them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/dtype.hpp"
#include "quench/core/tensor.hpp"

namespace quench::runtime {
class op_registry;
}

namespace quench::pipeline {

/// What becomes of a constant value beyond the half type's finite range (|x| > 65504 for float16).
enum class half_overflow {
  /// The constant stays float32 and every node reading it computes in float32. The default: a
  /// clamped BatchNormalization variance (9.8e7 -> 65504) once turned a detector's output IoU from
  /// 0.9995 into 0.49, so a constant that cannot be represented keeps its consumers exact.
  keep_float32,
  /// The value becomes +-max finite (65504 for float16); counted in the report.
  clamp,
};

/// What becomes of a non-zero constant value that would round to zero in the half type
/// (|x| <= 2^-25 for float16). Always counted in the report.
enum class half_underflow {
  /// +-smallest subnormal (2^-24 for float16): keeps the sign and that the value is not zero, so
  /// an epsilon such as 1e-12 does not turn a division by (variance + eps) into one by zero.
  /// ONNX Runtime's float16 tool does the same (min_positive_val = 5.96e-8).
  smallest_subnormal,
  zero,             ///< +-0, what rounding gives
  smallest_normal,  ///< +-smallest normal (2^-14 = 6.1e-5 for float16)
};

/// Which nodes compute in the half type.
enum class half_compute {
  /// Every node the block rules allow (see convert_float16); the float16 default.
  all,
  /// None: compute stays float32; float32 weights (initializers of at least
  /// `weights_only_min_elements` elements read at data inputs) are stored in the half type, each
  /// followed by one Cast to float32. The bfloat16 default, because ONNX Runtime's CPU provider
  /// has bfloat16 kernels for data movement only: a model computing in bfloat16 does not load
  /// there, this one loads everywhere at half the size.
  weights_only,
};

/// Automatic blocking: which nodes to keep in float32 because their half version overflows or
/// diverges on sample inputs (see find_float16_blocks).
struct half_auto_block_options {
  /// Sample inputs, each a complete set of graph inputs by name (not copied). Empty: no
  /// automatic blocking.
  std::vector<std::unordered_map<std::string, const tensor*>> samples;
  /// A node is kept in float32 when the relative error ||h - r|| / ||r|| of one of its float
  /// outputs, computed from its inputs rounded to the half type, exceeds this on a sample (h: the
  /// output rounded as the converted model stores it, r: the float32 output). Rounding alone
  /// gives about 3e-4 for float16 and 2e-3 for bfloat16.
  double max_relative_error = 0.01;
  /// Kernels for the float32 evaluation (default: runtime::builtin_ops()).
  const runtime::op_registry* registry = nullptr;
  int threads = 1;
};

struct float16_options {
  /// Graph inputs and outputs stay float32, with Casts at the boundary (onnxconverter-common's
  /// keep_io_types).
  bool keep_io_types = false;
  /// Op types (ai.onnx) kept in float32; unset = default_op_block_list().
  std::optional<std::set<std::string>> op_block_list;
  /// Node names kept in float32.
  std::set<std::string> node_block_list;
  /// Unset: half_compute::all for float16, half_compute::weights_only for bfloat16.
  std::optional<half_compute> compute;
  half_overflow overflow = half_overflow::keep_float32;
  half_underflow underflow = half_underflow::smallest_subnormal;
  /// Keep float arithmetic on shapes in float32 (Shape -> Cast(float) -> Div -> ... chains):
  /// float16 holds integers exactly only up to 2048, and sizes computed in it can round.
  bool block_shape_computations = true;
  /// Keep nodes that read a DequantizeLinear output in float32, so a QDQ model's DQ -> op -> Q
  /// groups stay as ONNX Runtime's QDQ fusions expect them.
  bool keep_qdq_float32 = true;
  /// Convert nodes of domains other than ai.onnx too (their half support is unknown to quench).
  bool convert_other_domains = false;
  /// half_compute::weights_only stores only initializers at least this large in the half type
  /// (smaller ones are not worth a Cast node).
  std::size_t weights_only_min_elements = 16;
  half_auto_block_options auto_block;
};

/// A node left in float32 and why.
struct half_blocked_node {
  std::string node;  ///< node name (may be empty in files with unnamed nodes)
  std::string op_type;
  std::string reason;
};

/// A constant with values outside the half type's range.
struct half_range_note {
  std::string tensor;  ///< initializer name, or "node 'n' attribute 'value'"
  std::size_t overflow = 0;   ///< finite values beyond +-max
  std::size_t underflow = 0;  ///< non-zero values that round to zero
  float max_abs = 0.f;        ///< largest finite magnitude beyond the range (0 when none)
  bool kept_float32 = false;  ///< true when the constant stayed float32 (half_overflow::keep_float32)
};

/// How far one graph output of a simulated converted model is from the float32 model's.
struct half_output_error {
  std::string output;
  double cosine = 1.0;        ///< cosine similarity of the flattened outputs
  double max_rel_diff = 0.0;  ///< max |h - r| / max |r|, as tests/ort/compare_models.js measures
  std::size_t nonfinite = 0;  ///< elements that are Inf/NaN in the half version only
};

/// What convert_float16 / convert_bfloat16 did.
struct float16_report {
  dtype type = dtype::float16;
  half_compute compute = half_compute::all;
  std::size_t initializers_converted = 0;
  std::size_t constants_converted = 0;  ///< Constant / ConstantOfShape values and other attribute tensors
  std::size_t values_retyped = 0;       ///< graph inputs, outputs and value_info entries now of the half type
  std::size_t nodes_converted = 0;      ///< nodes computing in the half type
  std::size_t values_clamped = 0;       ///< constant elements set to +-max (half_overflow::clamp)
  std::size_t values_underflow = 0;     ///< non-zero constant elements that round to zero (set per half_underflow)
  std::vector<half_range_note> out_of_range;
  std::size_t casts_inserted = 0;
  std::size_t casts_removed = 0;  ///< Cast pairs and no-op Casts taken out
  std::vector<half_blocked_node> blocked;  ///< nodes with float inputs or outputs left in float32
  std::size_t bytes_before = 0, bytes_after = 0;  ///< initializer and attribute tensor bytes
  /// Automatic blocking only: the nodes it blocked (also listed in `blocked`), and the graph
  /// outputs of the converted model as simulated on the samples, without and with those blocks
  /// (worst sample per output).
  std::vector<half_blocked_node> auto_blocked;
  std::vector<half_output_error> simulated_before, simulated_after;
};

}  // namespace quench::pipeline
