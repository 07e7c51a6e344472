#pragma once
// Shape and type inference and the model checker, through libonnx (onnx::shape_inference and
// onnx::checker). onnx 1.12 predates float8 and 4-bit types and opsets above 17: models using
// them are inferred as far as its schemas reach, and the checker reports them as invalid.

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <string>
#include <unordered_map>

#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"
#include "quench/onnx/model_proto.hpp"

namespace quench::onnx {

struct shape_inference_options {
  /// Let ONNX propagate constant shape values (Shape -> Gather -> Reshape chains).
  bool data_propagation = true;
  /// Throw on a node whose inference fails, instead of leaving its outputs unknown.
  bool strict = false;
  /// Add every inferred intermediate value to the graph's value_info list (saved with the model).
  bool record_value_info = false;
};

namespace detail {

/// Proto of `m` for inference: tensors of 1 KiB and more are declared but not copied (shape
/// inference needs their dims; only small constants can feed data propagation anyway).
inline void light_proto(const model& m, proto::ModelProto& mp) {
  write_plan plan;
  plan.threshold = 1024;
  plan.keep_loaded_external = true;
  model_to_proto(m, mp, plan);
  for (auto& e : plan.external) e.target->set_data_location(proto::TensorProto::EXTERNAL);
}

inline void read_inferred(const proto::GraphProto& gp, graph& g, bool record) {
  auto apply = [&](const proto::ValueInfoProto& vi) {
    value* v = g.find_value(vi.name());
    if (!v || !vi.has_type() || !vi.type().has_tensor_type()) return;
    std::int32_t elem = 0;
    std::optional<std::vector<dim>> dims;
    read_tensor_type(vi.type(), elem, dims);
    if (elem != 0) v->set_elem_type(elem);
    if (dims) v->set_dims(std::move(dims));
    if (record && !v->is_graph_input() && !v->is_graph_output() && !v->is_initializer()) g.add_value_info(*v);
  };
  for (const auto& vi : gp.value_info()) apply(vi);
  for (const auto& vi : gp.output()) apply(vi);
  // Sub-graphs, matched by node position and attribute order.
  const auto nodes = g.nodes();
  for (int i = 0; i < gp.node_size() && static_cast<std::size_t>(i) < nodes.size(); ++i) {
    const auto subs = nodes[static_cast<std::size_t>(i)]->subgraphs();
    std::size_t k = 0;
    for (const auto& ap : gp.node(i).attribute()) {
      if (ap.has_g() && k < subs.size()) read_inferred(ap.g(), *subs[k++], record);
      for (const auto& sg : ap.graphs())
        if (k < subs.size()) read_inferred(sg, *subs[k++], record);
    }
  }
}

}  // namespace detail

/// Infers element types and shapes of every value with ONNX's shape inference and stores them in
/// the graph view (value::elem_type / value::dims). Throws invalid_model with ONNX's message when
/// inference finds the model inconsistent.
inline void infer_shapes(model& m, const shape_inference_options& opts = {}) {
  proto::ModelProto mp;
  detail::light_proto(m, mp);
  ::ONNX_NAMESPACE::ShapeInferenceOptions o(opts.strict, opts.strict ? 1 : 0, opts.data_propagation);
  try {
    ::ONNX_NAMESPACE::shape_inference::InferShapes(mp, ::ONNX_NAMESPACE::OpSchemaRegistry::Instance(), o);
  } catch (const std::exception& e) {
    throw_error(errc::invalid_model, "shape inference", e.what());
  }
  detail::read_inferred(mp.graph(), m.main_graph(), opts.record_value_info);
}

/// Runs ONNX's checker (full check, as onnx.checker.check_model). Throws invalid_model with the
/// checker's message.
inline void check_model(const model& m) {
  proto::ModelProto mp;
  detail::write_plan plan;
  plan.allow_external = false;
  model_to_proto(m, mp, plan);
  try {
    ::ONNX_NAMESPACE::checker::check_model(mp);
  } catch (const std::exception& e) {
    throw_error(errc::invalid_model, "onnx checker", e.what());
  }
}

}  // namespace quench::onnx
