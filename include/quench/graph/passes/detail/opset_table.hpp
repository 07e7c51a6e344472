#pragma once
// The version history of the ai.onnx operators upgrade_opset knows: for each operator, the opset
// versions at which its definition changed, up to opset 21.
//
// Sources (facts, checked one by one; nothing here is taken from another tool's code):
//   * versions up to 17: the schemas of onnx 1.12 (onnx.defs.get_all_schemas_with_history()):
//     every since_version, with the inputs, attributes, defaults and type constraints of
//     consecutive versions compared side by side, and the doc text diffed where they agree;
//   * versions 18 to 21: the adapter registrations of onnx/onnx
//     onnx/version_converter/convert.h (17 -> 18 ... 20 -> 21: which operators got a new
//     version and which adapters are "compatible"), the lists of updated operators in
//     torch/onnx/symbolic_opset18.py and symbolic_opset19.py, docs/Changelog.md of onnx/onnx
//     for Resize-18, and the Split-18 backend test (uneven num_outputs) with split_17_18.h;
//   * the IR version each opset needs: the "Released Versions" table of onnx/onnx
//     docs/Versioning.md;
//   * Resize-10 and Upsample's nearest rounding: quench/runtime/ops/resize.hpp (which follows
//     ONNX Runtime's "simple" mode); ConvTranspose's SAME_* split: onnx/onnx#1609 and
//     microsoft/onnxruntime#12537.
// Every rewrite is checked in ONNX Runtime against the old definition
// (tests/onnx/upgrade_opset_ort_test.cpp).
//
// What changed at each version, for the operators where it matters (everything else is new
// types, negative axes, or a new attribute whose default is the old behaviour):
//   Softmax/LogSoftmax/Hardmax 13: no more coercion to 2-D at `axis`, default axis 1 -> -1.
//   Squeeze/Unsqueeze 13, ReduceSum 13, other Reduce* 18: `axes` attribute -> input.
//   Split 13: `split` attribute -> input; Split 18: `num_outputs` required without `split`.
//   Clip 11: `min`/`max` attributes -> inputs. Slice 10: `starts/ends/axes` -> inputs.
//   Pad 11: `pads`/`value` -> inputs (18 adds `axes`, 19 mode "wrap").
//   TopK 10: `k` -> input (11 adds largest/sorted, default 1 = the old behaviour).
//   Upsample 9: `scales` -> input; deprecated at 10 in favour of Resize.
//   Resize 11: roi input and coordinate_transformation_mode (Resize-10 was asymmetric); 13 drops
//     tf_half_pixel_for_nn; 18 antialias/axes/keep_aspect_ratio_policy; 19 half_pixel_symmetric.
//   BatchNormalization 9: `spatial` removed; 14: `training_mode`, outputs 4 and 5 removed.
//   Dropout 10: mask is bool (was the input type); 12: `ratio` -> input, training_mode input.
//   ConvTranspose 11: the text of the SAME_UPPER/SAME_LOWER padding split was inverted.
//   Scan 9: batch axis and sequence_lens removed.
//   AveragePool 10 ceil_mode, 19 dilations; MaxPool 10 ceil_mode/dilations; LpPool 18 ceil_mode;
//   ArgMax/ArgMin 12 select_last_index; Reshape 14 allowzero; Shape 15 start/end;
//   DepthToSpace 11 mode (DCR = old); QuantizeLinear/DequantizeLinear 13 axis, 19 saturate and
//   float8, 21 block_size and output_dtype; Cast 19 saturate (float8 only): all defaults keep the
//   old meaning.

#include <array>
#include <cstdint>
#include <string_view>

namespace quench::detail {

/// The oldest ai.onnx opset upgrade_opset starts from: before 7, binary operators broadcast by
/// `broadcast`/`axis` attributes and many carried `consumed_inputs`.
inline constexpr std::int64_t upgrade_min_opset = 7;
/// The newest opset the table describes.
inline constexpr std::int64_t upgrade_max_opset = 21;

/// One operator: the since_versions of its definitions, ascending, zero-terminated.
struct opset_history {
  std::string_view op;
  std::array<std::int8_t, 8> since;
};

// Sorted by operator name (find_opset_history does a binary search; a static_assert checks it).
// The executor's operators (quench/runtime/ops/*.hpp), and If/Loop/Scan, whose sub-graphs the pass
// upgrades too.
inline constexpr opset_history opset_histories[] = {
    {"Abs", {1, 6, 13}},
    {"Add", {1, 6, 7, 13, 14}},
    {"And", {1, 7}},
    {"ArgMax", {1, 11, 12, 13}},
    {"ArgMin", {1, 11, 12, 13}},
    {"AveragePool", {1, 7, 10, 11, 19}},
    {"BatchNormalization", {1, 6, 7, 9, 14, 15}},
    {"Cast", {1, 6, 9, 13, 19, 21}},
    {"CastLike", {15, 19, 21}},
    {"Ceil", {1, 6, 13}},
    {"Celu", {12}},
    {"Clip", {1, 6, 11, 12, 13}},
    {"Concat", {1, 4, 11, 13}},
    {"Constant", {1, 9, 11, 12, 13, 19, 21}},
    {"ConstantOfShape", {9, 20, 21}},
    {"Conv", {1, 11}},
    {"ConvInteger", {10}},
    {"ConvTranspose", {1, 11}},
    {"Cos", {7}},
    {"DepthToSpace", {1, 11, 13}},
    {"DequantizeLinear", {10, 13, 19, 21}},
    {"Div", {1, 6, 7, 13, 14}},
    {"Dropout", {1, 6, 7, 10, 12, 13}},
    {"DynamicQuantizeLinear", {11}},
    {"Einsum", {12}},
    {"Elu", {1, 6}},
    {"Equal", {1, 7, 11, 13, 19}},
    {"Erf", {9, 13}},
    {"Exp", {1, 6, 13}},
    {"Expand", {8, 13}},
    {"Flatten", {1, 9, 11, 13, 21}},
    {"Floor", {1, 6, 13}},
    {"Gather", {1, 11, 13}},
    {"GatherElements", {11, 13}},
    {"Gelu", {20}},
    {"Gemm", {1, 6, 7, 9, 11, 13}},
    {"GlobalAveragePool", {1}},
    {"GlobalLpPool", {1, 2}},
    {"GlobalMaxPool", {1}},
    {"Greater", {1, 7, 9, 13}},
    {"GreaterOrEqual", {12, 16}},
    {"HardSigmoid", {1, 6}},
    {"HardSwish", {14}},
    {"Hardmax", {1, 11, 13}},
    {"Identity", {1, 13, 14, 16, 19, 21}},
    {"If", {1, 11, 13, 16, 19, 21}},
    {"InstanceNormalization", {1, 6}},
    {"LRN", {1, 13}},
    {"LayerNormalization", {17}},
    {"LeakyRelu", {1, 6, 16}},
    {"Less", {1, 7, 9, 13}},
    {"LessOrEqual", {12, 16}},
    {"Log", {1, 6, 13}},
    {"LogSoftmax", {1, 11, 13}},
    {"Loop", {1, 11, 13, 16, 19, 21}},
    {"LpPool", {1, 2, 11, 18}},
    {"MatMul", {1, 9, 13}},
    {"MatMulInteger", {10}},
    {"Max", {1, 6, 8, 12, 13}},
    {"MaxPool", {1, 8, 10, 11, 12}},
    {"Mean", {1, 6, 8, 13}},
    {"Min", {1, 6, 8, 12, 13}},
    {"Mul", {1, 6, 7, 13, 14}},
    {"Neg", {1, 6, 13}},
    {"NonZero", {9, 13}},
    {"Not", {1}},
    {"Or", {1, 7}},
    {"PRelu", {1, 6, 7, 9, 16}},
    {"Pad", {1, 2, 11, 13, 18, 19, 21}},
    {"Pow", {1, 7, 12, 13, 15}},
    {"QLinearConv", {10}},
    {"QLinearMatMul", {10, 21}},
    {"QuantizeLinear", {10, 13, 19, 21}},
    {"Range", {11}},
    {"Reciprocal", {1, 6, 13}},
    {"ReduceL1", {1, 11, 13, 18}},
    {"ReduceL2", {1, 11, 13, 18}},
    {"ReduceLogSum", {1, 11, 13, 18}},
    {"ReduceLogSumExp", {1, 11, 13, 18}},
    {"ReduceMax", {1, 11, 12, 13, 18, 20}},
    {"ReduceMean", {1, 11, 13, 18}},
    {"ReduceMin", {1, 11, 12, 13, 18, 20}},
    {"ReduceProd", {1, 11, 13, 18}},
    {"ReduceSum", {1, 11, 13}},
    {"ReduceSumSquare", {1, 11, 13, 18}},
    {"Relu", {1, 6, 13, 14}},
    {"Reshape", {1, 5, 13, 14, 19, 21}},
    {"Resize", {10, 11, 13, 18, 19}},
    {"Round", {11}},
    {"Scan", {8, 9, 11, 16, 19, 21}},
    {"Selu", {1, 6}},
    {"Shape", {1, 13, 15, 19, 21}},
    {"Sigmoid", {1, 6, 13}},
    {"Sign", {9, 13}},
    {"Sin", {7}},
    {"Size", {1, 13, 19, 21}},
    {"Slice", {1, 10, 11, 13}},
    {"Softmax", {1, 11, 13}},
    {"Softplus", {1}},
    {"Softsign", {1}},
    {"SpaceToDepth", {1, 13}},
    {"Split", {1, 2, 11, 13, 18}},
    {"Sqrt", {1, 6, 13}},
    {"Squeeze", {1, 11, 13, 21}},
    {"Sub", {1, 6, 7, 13, 14}},
    {"Sum", {1, 6, 8, 13}},
    {"Tanh", {1, 6, 13}},
    {"ThresholdedRelu", {10}},
    {"Tile", {1, 6, 13}},
    {"TopK", {1, 10, 11}},
    {"Transpose", {1, 13, 21}},
    {"Unsqueeze", {1, 11, 13, 21}},
    // Upsample-10 is the deprecated definition; upgrade_opset replaces the node by Resize there.
    {"Upsample", {1, 7, 9, 10}},
    {"Where", {9, 16}},
    {"Xor", {1, 7}},
};

inline constexpr bool opset_histories_sorted() noexcept {
  for (std::size_t i = 0; i < sizeof(opset_histories) / sizeof(opset_histories[0]); ++i) {
    if (i > 0 && !(opset_histories[i - 1].op < opset_histories[i].op)) return false;
    const auto& s = opset_histories[i].since;
    if (s[0] < 1) return false;
    for (std::size_t k = 0; k < s.size() && s[k] != 0; ++k)
      if ((k > 0 && s[k] <= s[k - 1]) || s[k] > upgrade_max_opset) return false;
  }
  return true;
}
static_assert(opset_histories_sorted(),
              "opset_histories must be sorted by operator name, each with ascending versions up to 21");

/// The history of `op` (default domain), or null when the table does not know it.
inline const opset_history* find_opset_history(std::string_view op) noexcept {
  const opset_history* first = opset_histories;
  std::size_t count = sizeof(opset_histories) / sizeof(opset_histories[0]);
  while (count > 0) {
    const std::size_t half = count / 2;
    if (first[half].op < op) {
      first += half + 1;
      count -= half + 1;
    } else {
      count = half;
    }
  }
  const opset_history* end = opset_histories + sizeof(opset_histories) / sizeof(opset_histories[0]);
  return first != end && first->op == op ? first : nullptr;
}

/// The definition of `h` in force at `opset`: its largest since_version <= opset, or 0 when the
/// operator does not exist yet at that opset.
inline std::int64_t op_version_at(const opset_history& h, std::int64_t opset) noexcept {
  std::int64_t v = 0;
  for (std::int8_t s : h.since)
    if (s != 0 && s <= opset) v = s;
  return v;
}

/// The lowest IR version a model importing ai.onnx `opset` must declare (docs/Versioning.md).
inline constexpr std::int64_t min_ir_version(std::int64_t opset) noexcept {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset >= 11) return 6;
  if (opset >= 10) return 5;
  if (opset >= 9) return 4;
  return 3;
}

}  // namespace quench::detail
