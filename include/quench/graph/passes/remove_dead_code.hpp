#pragma once
// remove_dead_code: nodes whose results reach no graph output, and initializers nothing reads.

#include <cstddef>

#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/report.hpp"

namespace quench::passes {

/// graph::remove_dead_code as a pass, applied to `g` and then to the sub-graphs of the nodes
/// that remain: removes nodes whose outputs reach no graph output (sub-graph outputs for a body)
/// and initializers nothing reads. Graph inputs stay, being the model's interface.
/// `rewrites` counts removed nodes.
///
///     quench::passes::fold_batch_norm(model);
///     quench::passes::remove_dead_code(model);   // drops the BatchNorm parameters left unused
inline pass_report remove_dead_code(graph& g) {
  pass_report r;
  r.rewrites = g.remove_dead_code();
  for (node* n : g.nodes())
    for (graph* sub : n->subgraphs()) r += remove_dead_code(*sub);
  return r;
}

/// The same on a model's main graph.
inline pass_report remove_dead_code(model& m) { return remove_dead_code(m.main_graph()); }

}  // namespace quench::passes
