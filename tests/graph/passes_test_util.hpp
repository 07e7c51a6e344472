#pragma once
// Helpers for the graph pass tests: small tensors, op counts, sub-graphs.

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quench/graph/graph.hpp"

namespace passes_test {

inline quench::tensor floats(quench::shape s, std::initializer_list<float> v, std::string name = {}) {
  return quench::tensor::from<float>(std::move(s), v, std::move(name));
}
inline quench::tensor int64s(quench::shape s, std::initializer_list<std::int64_t> v, std::string name = {}) {
  return quench::tensor::from<std::int64_t>(std::move(s), v, std::move(name));
}

inline std::vector<quench::dim> dims(std::initializer_list<std::int64_t> d) {
  std::vector<quench::dim> out;
  for (auto x : d) out.push_back(quench::dim{x, {}});
  return out;
}

template <class T>
std::vector<T> data(const quench::value* v) {
  REQUIRE(v);
  REQUIRE(v->initializer());
  auto view = static_cast<const quench::tensor&>(*v->initializer()).view<T>();
  return std::vector<T>(view.begin(), view.end());
}

inline std::size_t count_ops(const quench::graph& g, const std::string& op) {
  std::size_t n = 0;
  for (const quench::node* x : g.nodes()) n += x->op_type() == op;
  return n;
}

/// Adds a graph attribute `name` to `owner` (an If, say) and returns the new sub-graph.
inline quench::graph& add_subgraph(quench::graph& g, quench::node& owner, const std::string& name) {
  quench::attribute a;
  a.name = name;
  a.type = quench::attribute_type::graph;
  a.g = std::make_unique<quench::graph>(&g, &owner);
  quench::graph& sub = *a.g;
  owner.attributes().push_back(std::move(a));
  return sub;
}

/// Checks two float vectors agree to a relative 1e-6.
inline void check_close(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));
  }
}

}  // namespace passes_test
