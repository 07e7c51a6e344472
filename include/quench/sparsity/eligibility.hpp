#pragma once
// Which ONNX weights can be N:M sparse on a sparse tensor core, and along which axis.
//
// The reduction (input-channel) axis of each operator's weight, as the GEMM sees it:
//
//   Conv           W [K, C/g, R, S]      axis 1 (C), for every (k, r, s)    = ASP's Conv grouping
//   ConvTranspose  W [C, K/g, R, S]      axis 0 (C), for every (k, r, s)
//   Gemm           B [N, K] (transB=1)   axis 1;  B [K, N] (transB=0) axis 0
//   MatMul         B [K, N]              axis 0   (= ASP's Linear [N, K] along K, transposed)
//
// ASP (apex/contrib/sparsity/asp.py, add_sparse_attributes) skips a float32 or float16 parameter
// unless size(0) % 8 == 0 and size(1) % 16 == 0 of the PyTorch tensor, i.e. output channels a
// multiple of 8 and input channels (per group) a multiple of 16 ("the layer must have input/output
// channel counts that are even multiples of 16/8", NVIDIA/apex#1590). quench applies the same rule
// to the ONNX layouts above (out = K, in = C per group), and additionally needs the input count to be
// a multiple of M. A depthwise Conv (C/g = 1) is therefore never eligible.
//
//     auto axes = quench::sparsity::weight_axes_of(quench::sparsity::weight_op::gemm, w.shape(), /*trans_b=*/true);
//     std::string why = quench::sparsity::ineligibility(axes, {2, 4});  // "" = eligible

#include <cstddef>
#include <cstdint>
#include <string>

#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/sparsity/nm_pattern.hpp"

namespace quench::sparsity {

/// The operators whose weight (input 1) N:M sparsity applies to.
enum class weight_op { conv, conv_transpose, gemm, matmul };

/// The input-channel (reduction) and output-channel axes of a weight, and their sizes.
struct weight_axes {
  std::size_t in_axis = 1, out_axis = 0;
  std::int64_t in_channels = 0;   ///< along in_axis (per group for grouped convolutions)
  std::int64_t out_channels = 0;  ///< along out_axis (per group for ConvTranspose)
};

/// The axes for `op` ("Conv", "ConvTranspose", "Gemm", "MatMul"); throws unsupported_op otherwise.
inline weight_op weight_op_from_name(const std::string& op) {
  if (op == "Conv") return weight_op::conv;
  if (op == "ConvTranspose") return weight_op::conv_transpose;
  if (op == "Gemm") return weight_op::gemm;
  if (op == "MatMul") return weight_op::matmul;
  throw_error(errc::unsupported_op, "op '" + op + "'", "expected Conv, ConvTranspose, Gemm or MatMul");
}

/// The axes of a weight of shape `s` for `op` (`trans_b` only for Gemm). Throws shape_mismatch for
/// a rank the operator does not take (Conv/ConvTranspose >= 3, Gemm/MatMul 2).
inline weight_axes weight_axes_of(weight_op op, const shape& s, bool trans_b = false, const std::string& context = {}) {
  weight_axes a;
  switch (op) {
    case weight_op::conv:
    case weight_op::conv_transpose:
      if (s.rank() < 3) throw_shape_mismatch(context, "a convolution weight of rank >= 3", "rank " + std::to_string(s.rank()));
      a.in_axis = op == weight_op::conv ? 1 : 0;
      a.out_axis = op == weight_op::conv ? 0 : 1;
      break;
    case weight_op::gemm:
    case weight_op::matmul:
      if (s.rank() != 2) throw_shape_mismatch(context, "a rank-2 matrix weight", "rank " + std::to_string(s.rank()));
      a.in_axis = op == weight_op::gemm && trans_b ? 1 : 0;
      a.out_axis = 1 - a.in_axis;
      break;
  }
  a.in_channels = s[a.in_axis];
  a.out_channels = s[a.out_axis];
  return a;
}

/// ASP's tensor-core rule: out % out_multiple == 0 and in % in_multiple == 0.
struct eligibility_rules {
  std::int64_t out_multiple = 8;
  std::int64_t in_multiple = 16;
};

/// "" if a weight with these axes can take pattern `p` under `rules`, else why not (for reports):
/// "input channels 27 (axis 1) not a multiple of 16". `group` is the convolution's group count:
/// a ConvTranspose's input channels are counted per group.
inline std::string ineligibility(const weight_axes& a, nm_pattern p, const eligibility_rules& rules = {},
                                 std::int64_t group = 1, weight_op op = weight_op::conv) {
  std::int64_t in = a.in_channels;
  if (op == weight_op::conv_transpose && group > 1) {
    if (in % group != 0) return "input channels " + std::to_string(in) + " not divisible by group " + std::to_string(group);
    in /= group;
  }
  auto axis_text = [](std::size_t axis) { return " (axis " + std::to_string(axis) + ")"; };
  if (rules.in_multiple > 0 && in % rules.in_multiple != 0)
    return "input channels " + std::to_string(in) + axis_text(a.in_axis) + " not a multiple of " + std::to_string(rules.in_multiple);
  if (in % p.m != 0)
    return "input channels " + std::to_string(in) + axis_text(a.in_axis) + " not a multiple of " + std::to_string(p.m) + " (" +
           to_string(p) + ")";
  if (rules.out_multiple > 0 && a.out_channels % rules.out_multiple != 0)
    return "output channels " + std::to_string(a.out_channels) + axis_text(a.out_axis) + " not a multiple of " +
           std::to_string(rules.out_multiple);
  return {};
}

}  // namespace quench::sparsity
