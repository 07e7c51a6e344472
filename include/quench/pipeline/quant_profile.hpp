#pragma once
// quant_profile: what a QDQ model for one target runtime looks like. A profile fixes the element
// types, the symmetry, the granularity of the weights, whether biases become int32 and where
// Q/DQ pairs go; every field can be overridden after picking a profile by name.
//
//     auto p = quench::pipeline::profile_by_name("tensorrt");
//     p.activation_type = quench::dtype::int8;   // already so: shown to make the point
//
// The profiles (../shared/reference/onnx-qdq.md has the runtimes' rules behind each choice):
//   ort          uint8 asymmetric activations, int8 symmetric per-channel weights, int32 bias
//                (scale = input scale x weight scale, zero point 0), Q/DQ on the inputs and
//                outputs of every op ONNX Runtime has an integer kernel for, Relu/Clip absorbed
//                into the preceding Q, value-preserving ops (MaxPool, Reshape, ...) sharing their
//                input's scale, so that ORT's QDQ transformers fuse whole chains.
//   tensorrt     int8 symmetric everywhere (zero point 0, TensorRT rejects uint8 and zp != 0),
//                per-channel weights with an explicit axis, bias left in float (an int32 DQ
//                stops TensorRT's parser), Q/DQ only on the inputs of Conv/ConvTranspose/Gemm/
//                MatMul, of pooling, and on the residual input of Add (explicit quantization
//                guidance: TensorRT fuses Conv+BN+ReLU and Conv+Add by itself), opset >= 13.
//   weight-only  int8 (or int4/uint4 blocked) weights with DequantizeLinear only.
//   fp8          float8 E4M3FN activations and weights (saturating), TensorRT-style placement,
//                opset >= 19.

#include <cstdint>
#include <string>

#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"

namespace quench::pipeline {

/// Where Q/DQ pairs go.
enum class qdq_placement {
  ort,       ///< inputs and outputs of every op with an ORT integer kernel (see qdq_plan.hpp)
  tensorrt,  ///< inputs of weighted ops and pooling, residual Add inputs
  weights,   ///< weights only (weight-only profile)
};

struct quant_profile {
  std::string name = "ort";
  qdq_placement placement = qdq_placement::ort;
  dtype activation_type = dtype::uint8;
  bool activation_symmetric = false;
  dtype weight_type = dtype::int8;
  bool weight_symmetric = true;
  /// ORT's reduce_range for weights: int8 weights on [-64, 64] (7 bits). ONNX Runtime's u8 x s8
  /// kernels on x86 without VNNI add pairs of products in saturating int16 (vpmaddubsw), which
  /// 255 x 127 x 2 overflows; with 7-bit weights no pair can. Costs one bit of weight precision.
  bool weight_reduce_range = false;
  bool per_channel = true;
  /// Blocked weights (weight-only int4/uint4): elements per block along the reduction axis; 0 off.
  std::int64_t block_size = 0;
  /// Biases of Conv/Gemm become int32 through DequantizeLinear (ORT's fusion needs it, TensorRT
  /// rejects it).
  bool quantize_bias = true;
  /// Remove Relu/Clip after a quantized producer when the following Q's range already clamps the
  /// same way (exact for asymmetric activations; ORT does this by default).
  bool absorb_activations = true;
  /// The lowest opset the profile's QDQ needs (per-channel axis: 13, float8: 19, 4/16-bit: 21).
  std::int64_t min_opset = 13;
};

/// The named profile; throws invalid_argument listing the names for anything else.
inline quant_profile profile_by_name(const std::string& name) {
  quant_profile p;
  p.name = name;
  if (name == "ort") return p;
  if (name == "tensorrt") {
    p.placement = qdq_placement::tensorrt;
    p.activation_type = dtype::int8;
    p.activation_symmetric = true;
    p.quantize_bias = false;
    p.absorb_activations = false;
    return p;
  }
  if (name == "weight-only") {
    p.placement = qdq_placement::weights;
    p.quantize_bias = false;
    p.absorb_activations = false;
    p.min_opset = 10;  // per tensor below 13, per channel from 13
    return p;
  }
  if (name == "fp8") {
    p.placement = qdq_placement::tensorrt;
    p.activation_type = dtype::float8e4m3fn;
    p.activation_symmetric = true;
    p.weight_type = dtype::float8e4m3fn;
    p.quantize_bias = false;
    p.absorb_activations = false;
    p.min_opset = 19;
    return p;
  }
  throw_error(errc::invalid_argument, "profile", "expected ort, tensorrt, weight-only or fp8, found '" + name + "'");
}

}  // namespace quench::pipeline
