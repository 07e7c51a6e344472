#pragma once
// Runs a single operator through the executor, for the kernel tests in tests/runtime/.

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace quench_test {

/// Runs one `op` node named `node_name` at `opset` on `inputs` (null = omitted input) and returns
/// its `n_out` outputs; `attrs` sets the node's attributes.
inline std::vector<quench::tensor> run_node(const std::string& op, std::int64_t opset,
                                            const std::vector<const quench::tensor*>& inputs, std::size_t n_out = 1,
                                            const std::function<void(quench::node&)>& attrs = {},
                                            const std::string& node_name = "n") {
  quench::model m;
  m.set_opset("", opset);
  auto& g = m.main_graph();
  std::vector<quench::value*> ins;
  std::unordered_map<std::string, const quench::tensor*> feed;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) {
      ins.push_back(nullptr);
      continue;
    }
    const std::string name = "in" + std::to_string(i);
    ins.push_back(&g.add_input(name, static_cast<std::int32_t>(inputs[i]->dtype())));
    feed[name] = inputs[i];
  }
  std::vector<std::string> outs;
  for (std::size_t i = 0; i < n_out; ++i) outs.push_back("out" + std::to_string(i));
  auto& n = g.add_node(op, ins, outs, node_name);
  if (attrs) attrs(n);
  for (std::size_t i = 0; i < n_out; ++i) g.add_output(*n.output(i));
  quench::runtime::executor ex(m);
  return ex.run(feed);
}

/// The elements of `t` as a vector, for CHECKs that print every value.
template <class T>
std::vector<T> values(const quench::tensor& t) {
  const auto v = t.view<T>();
  return std::vector<T>(v.begin(), v.end());
}

}  // namespace quench_test
