#pragma once
// model: the main graph plus what ONNX ModelProto carries around it (opsets, metadata).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/graph.hpp"

namespace quench {

struct opset_import {
  std::string domain;  ///< "" = the default ONNX domain
  std::int64_t version = 0;
  /// Whether the file spelled out an empty domain (kept so files round-trip byte for byte).
  bool explicit_domain = true;
};

/// A model owns its main graph. Functions and training info are kept opaque (serialized) so they
/// survive load and save untouched.
class model {
 public:
  /// An empty model; its main graph is named "main" (ONNX requires a non-empty name).
  model() : graph_(std::make_unique<quench::graph>()) { graph_->set_name("main"); }

  quench::graph& main_graph() noexcept { return *graph_; }
  const quench::graph& main_graph() const noexcept { return *graph_; }

  std::int64_t ir_version = 8;
  std::vector<opset_import> opset_imports;
  std::string producer_name, producer_version, domain, doc_string;
  std::int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata_props;
  /// Serialized ModelProto with the fields above, the graph cleared (functions, training_info,
  /// unknown fields); written back on save.
  std::string residual;
  /// Whether the file it was loaded from kept tensors in external data: saving then writes
  /// external data again, also for new tensors (quench/onnx/model_io.hpp).
  bool had_external_data = false;

  /// The opset version imported for `domain` ("" and "ai.onnx" are the same domain), or 0.
  std::int64_t opset(std::string_view dom = {}) const noexcept {
    for (const auto& o : opset_imports)
      if (same_domain(o.domain, dom)) return o.version;
    return 0;
  }
  /// Sets (or adds) the version imported for `domain`.
  void set_opset(std::string_view dom, std::int64_t version) {
    for (auto& o : opset_imports)
      if (same_domain(o.domain, dom)) {
        o.version = version;
        return;
      }
    opset_imports.push_back({std::string(dom), version, true});
  }

  /// Throws invalid_model naming the first node (in any sub-graph) whose domain has no opset
  /// import: without one, no runtime can tell which version of the operator is meant.
  void check_opset_imports() const { check_opsets_of(main_graph()); }

  static bool same_domain(std::string_view a, std::string_view b) noexcept {
    auto norm = [](std::string_view d) { return d == "ai.onnx" ? std::string_view{} : d; };
    return norm(a) == norm(b);
  }

 private:
  void check_opsets_of(const quench::graph& g) const {
    for (const node* n : g.nodes()) {
      if (opset(n->domain()) == 0)
        throw_error(errc::invalid_model, n->context(),
                    "domain '" + (n->domain().empty() ? std::string("ai.onnx") : n->domain()) + "' has no opset import");
      for (const quench::graph* sub : n->subgraphs()) check_opsets_of(*sub);
    }
  }

  std::unique_ptr<quench::graph> graph_;
};

}  // namespace quench
