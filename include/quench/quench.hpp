#pragma once
// Everything in quench that needs no linking. Add quench/onnx.hpp (target quench::onnx) for
// loading and saving ONNX models.

#include "quench/version.hpp"

#include "quench/adapt/eigen.hpp"
#include "quench/adapt/npy.hpp"

#include "quench/core/atomic_file.hpp"
#include "quench/core/config.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"

#include "quench/graph/attribute.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/node.hpp"
#include "quench/graph/tensor_encoding.hpp"
#include "quench/graph/value.hpp"

#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/numeric/int4.hpp"

#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/dynamic_quantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"

#include "quench/runtime/executor.hpp"
