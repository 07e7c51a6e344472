#pragma once
// Everything in quench that needs no linking. Add quench/onnx.hpp (target quench::onnx) for
// loading and saving ONNX models.

#include "quench/version.hpp"

#include "quench/adapt/eigen.hpp"
#include "quench/adapt/npy.hpp"

#include "quench/calib/calibrate.hpp"
#include "quench/calib/calibration_state.hpp"
#include "quench/calib/calibration_table.hpp"
#include "quench/calib/entropy.hpp"
#include "quench/calib/histogram_observer.hpp"
#include "quench/calib/max_range.hpp"
#include "quench/calib/minmax_observer.hpp"
#include "quench/calib/mse.hpp"
#include "quench/calib/ort_histogram_observer.hpp"
#include "quench/calib/percentile.hpp"

#include "quench/core/atomic_file.hpp"
#include "quench/core/config.hpp"
#include "quench/core/dtype.hpp"
#include "quench/core/error.hpp"
#include "quench/core/mapped_file.hpp"
#include "quench/core/memory_pool.hpp"
#include "quench/core/shape.hpp"
#include "quench/core/tensor.hpp"
#include "quench/core/tensor_view.hpp"

#include "quench/data/npy_source.hpp"
#include "quench/data/sample_source.hpp"

#include "quench/graph/attribute.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/node.hpp"
#include "quench/graph/passes/constants_to_initializers.hpp"
#include "quench/graph/passes/fold_batch_norm.hpp"
#include "quench/graph/passes/fold_constants.hpp"
#include "quench/graph/passes/fold_conv_mul_add.hpp"
#include "quench/graph/passes/remove_dead_code.hpp"
#include "quench/graph/passes/remove_identity.hpp"
#include "quench/graph/passes/report.hpp"
#include "quench/graph/passes/standard.hpp"
#include "quench/graph/tensor_encoding.hpp"
#include "quench/graph/value.hpp"

#include "quench/numeric/bfloat16.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/numeric/float16.hpp"
#include "quench/numeric/float8.hpp"
#include "quench/numeric/gemm.hpp"
#include "quench/numeric/int4.hpp"

#include "quench/pipeline/quantize_weights.hpp"

#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/dynamic_quantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"

#include "quench/runtime/executor.hpp"
