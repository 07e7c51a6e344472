#pragma once
// standard_passes: the clean-up a model exported from PyTorch or TensorFlow needs before
// quantization, in one call.

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/constants_to_initializers.hpp"
#include "quench/graph/passes/fold_batch_norm.hpp"
#include "quench/graph/passes/fold_constants.hpp"
#include "quench/graph/passes/fold_conv_mul_add.hpp"
#include "quench/graph/passes/remove_dead_code.hpp"
#include "quench/graph/passes/remove_identity.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::passes {

struct standard_options {
  bool constants_to_initializers = true;
  bool remove_identity = true;
  bool fold_constants = true;
  bool fold_batch_norm = true;
  bool fold_conv_mul_add = true;
  bool remove_dead_code = true;
  fold_constants_options constants;
};

/// What each pass of standard_passes did.
struct standard_report {
  pass_report constants_to_initializers, remove_identity, fold_constants, fold_batch_norm, fold_conv_mul_add,
      remove_dead_code;
  /// The folded BatchNorms' output statistics (for data-free bias correction); an entry whose
  /// value a later Mul/Add fold changed is dropped.
  batch_norm_statistics bn_statistics;

  std::size_t total_rewrites() const noexcept {
    return constants_to_initializers.rewrites + remove_identity.rewrites + fold_constants.rewrites +
           fold_batch_norm.rewrites + fold_conv_mul_add.rewrites + remove_dead_code.rewrites;
  }
};

/// Runs, in this order: constants_to_initializers (weights held in Constant nodes become
/// initializers, which everything after looks at), remove_identity (Identity and inference
/// Dropout would otherwise separate a Conv from its BatchNorm), fold_constants (shape
/// computations, so Reshape targets are constants), then fold_batch_norm and fold_conv_mul_add
/// alternately until neither finds more (Conv -> Mul -> BatchNorm chains), and remove_dead_code
/// last for the parameters the folds left unused. For Shape of activations to fold, run
/// quench::onnx::infer_shapes on the model first.
///
///     quench::model m = quench::onnx::load_model("resnet50.onnx");
///     quench::onnx::infer_shapes(m);
///     auto r = quench::passes::standard_passes(m);
///     quench::onnx::save_model(m, "resnet50.prepared.onnx");
inline standard_report standard_passes(graph& g, std::int64_t opset, const standard_options& o = {}) {
  standard_report r;
  if (o.constants_to_initializers) r.constants_to_initializers = constants_to_initializers(g, opset);
  if (o.remove_identity) r.remove_identity = remove_identity(g, opset);
  if (o.fold_constants) r.fold_constants = fold_constants(g, opset, o.constants);
  // Each round removes at least one node, so this ends; notes of the last round say what stayed.
  for (bool again = o.fold_batch_norm || o.fold_conv_mul_add; again;) {
    pass_report bn, ma;
    if (o.fold_batch_norm) bn = fold_batch_norm(g, opset, &r.bn_statistics);
    if (o.fold_conv_mul_add) ma = fold_conv_mul_add(g, opset);
    // A Mul/Add folded after a BatchNorm renamed or rescaled its output: those statistics no
    // longer describe a layer output of that name.
    for (auto it = r.bn_statistics.begin(); it != r.bn_statistics.end();) {
      const value* v = g.find_value(it->first);
      const bool conv_output = v && v->producer() && (v->producer()->is("Conv") || v->producer()->is("ConvTranspose") || v->producer()->is("Gemm"));
      it = conv_output ? std::next(it) : r.bn_statistics.erase(it);
    }
    r.fold_batch_norm.rewrites += bn.rewrites;
    r.fold_conv_mul_add.rewrites += ma.rewrites;
    r.fold_batch_norm.kept = std::move(bn.kept);
    r.fold_conv_mul_add.kept = std::move(ma.kept);
    again = bn.rewrites + ma.rewrites > 0 && o.fold_batch_norm && o.fold_conv_mul_add;
  }
  if (o.remove_dead_code) r.remove_dead_code = remove_dead_code(g);
  return r;
}

/// The same on a model's main graph, with the model's ai.onnx opset.
inline standard_report standard_passes(model& m, const standard_options& o = {}) {
  const std::int64_t opset = detail::default_opset(m);
  if (opset == 0) {
    standard_report r;
    if (o.remove_dead_code) r.remove_dead_code = remove_dead_code(m.main_graph());
    return r;
  }
  return standard_passes(m.main_graph(), opset, o);
}

}  // namespace quench::passes
