#pragma once
// pass_report: what a graph pass changed, and why it left candidates alone.

#include <cstddef>
#include <string>
#include <vector>

namespace quench::passes {

/// Returned by every pass in quench/graph/passes/. A pass that finds a pattern it cannot rewrite
/// safely (a parameter that is not constant, a weight of an unsupported type) leaves the model
/// as it is and says so in `kept`; malformed nodes throw quench::error instead.
///
///     auto r = quench::passes::fold_batch_norm(model);
///     for (const auto& why : r.kept) std::cerr << why << '\n';
struct pass_report {
  /// Rewrites done (nodes removed, folded or converted; the unit is documented per pass).
  std::size_t rewrites = 0;
  /// One line per candidate left in place: "node 'bn1' (BatchNormalization): mean is not an initializer".
  std::vector<std::string> kept;

  pass_report& operator+=(const pass_report& other) {
    rewrites += other.rewrites;
    kept.insert(kept.end(), other.kept.begin(), other.kept.end());
    return *this;
  }
};

}  // namespace quench::passes
