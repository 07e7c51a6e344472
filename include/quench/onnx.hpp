#pragma once
// The ONNX layer (target quench::onnx, links onnx_proto and protobuf) plus everything in quench.hpp.

#include "quench/quench.hpp"

#include "quench/onnx/external_data.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/onnx/model_proto.hpp"
#include "quench/onnx/shape_inference.hpp"
#include "quench/onnx/tensor_proto.hpp"
