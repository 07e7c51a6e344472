#pragma once
// quantize_weights: the weight half of a QDQ model. Every float32 weight initializer of a Conv,
// ConvTranspose, Gemm or MatMul becomes an integer initializer followed by a DequantizeLinear node,
// laid out and named as ONNX Runtime's quantize_static writes them:
//
//     W (float)  ->  W_quantized (int8) --+
//                    W_scale (float)    --+--> DequantizeLinear "W_DequantizeLinear"
//                    W_zero_point (int8) -+       -> "W_DequantizeLinear_Output" -> Conv
//
// Ranges and rounding are ONNX Runtime's (quench/quant/choose_qparams.hpp): symmetric for signed
// types (zero point 0, narrow range [-127, 127] for int8), per output channel along the axis the
// consumer reads channels from: Conv 0, ConvTranspose 1, MatMul's B [K, N] 1, Gemm's B 0 with
// transB = 1, else 1. Per-channel needs opset 13 (the `axis` of DequantizeLinear); below it the
// weights are quantized per tensor. A weight shared by several consumers is quantized once per
// axis. This is also the whole of the weight-only profile (DequantizeLinear only, float
// activations).
//
//     auto report = quench::pipeline::quantize_weights(model);   // int8, per channel
//     // report.quantized: the weights; report.bytes_before / bytes_after

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/insert_qdq.hpp"
#include "quench/pipeline/qdq_plan.hpp"
#include "quench/pipeline/quant_profile.hpp"

namespace quench::pipeline {

struct weight_quant_options {
  dtype type = dtype::int8;  ///< int8, uint8, int16, uint16 (int4 needs blocked layouts: not here)
  bool per_channel = true;
  bool symmetric = true;  ///< ORT's WeightSymmetric (its default for signed types)
  std::set<std::string> op_types{"Conv", "ConvTranspose", "Gemm", "MatMul"};
  std::set<std::string> exclude_nodes;  ///< node names left in float
};

struct weight_quant_report {
  std::vector<std::string> quantized;  ///< weight initializers replaced, in graph order
  std::size_t bytes_before = 0, bytes_after = 0;
};

/// Replaces the float weights of the model's matrix ops by integer initializers + DequantizeLinear
/// (see the header comment); returns what changed. The model stays valid: nodes are re-sorted
/// topologically and float weights no longer used are removed.
inline weight_quant_report quantize_weights(model& m, const weight_quant_options& opt = {}) {
  if (opt.type != dtype::int8 && opt.type != dtype::uint8 && opt.type != dtype::int16 && opt.type != dtype::uint16)
    throw_error(errc::unsupported_dtype, "quantize_weights", "expected int8, uint8, int16 or uint16 weights, found " + to_string(opt.type));
  if ((opt.type == dtype::int16 || opt.type == dtype::uint16) && m.opset() < 21)
    throw_error(errc::invalid_model, "quantize_weights", "16-bit DequantizeLinear needs opset 21, the model imports " + std::to_string(m.opset()));
  if (m.opset() < 10) throw_error(errc::invalid_model, "quantize_weights", "DequantizeLinear needs opset 10, the model imports " + std::to_string(m.opset()));
  quant_profile profile = profile_by_name("weight-only");
  profile.weight_type = opt.type;
  profile.weight_symmetric = opt.symmetric;
  profile.per_channel = opt.per_channel;
  plan_options po;
  po.op_types = opt.op_types;
  po.exclude_nodes = opt.exclude_nodes;
  // Plans name nodes; unnamed ones get names only for the plan's sake.
  graph& g = m.main_graph();
  std::vector<std::pair<node*, std::string>> renamed;
  std::set<std::string> used;
  for (node* n : g.nodes())
    if (n->name().empty() || !used.insert(n->name()).second) {
      renamed.emplace_back(n, n->name());
      std::string name;
      for (std::size_t k = used.size();; ++k)
        if (used.insert(name = "quench_weights_node_" + std::to_string(k)).second) break;
      n->set_name(name);
    }
  const qdq_plan plan = plan_qdq(m, profile, {}, po);
  weight_options wo;
  wo.type = opt.type;
  wo.symmetric = opt.symmetric;
  qdq_insert_report ins;
  insert_weight_qdq(g, plan.weights, wo, ins);
  for (auto& [n, name] : renamed) n->set_name(name);
  g.topological_sort();
  weight_quant_report report;
  report.quantized = ins.weights;
  report.bytes_before = ins.weight_bytes_before;
  report.bytes_after = ins.weight_bytes_after;
  return report;
}

}  // namespace quench::pipeline
