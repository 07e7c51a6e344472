#pragma once
// Model inputs for `quench run` and `quench compare`: NAME=FILE.npy pairs, or seeded random
// tensors shaped after the model's inputs when none are given.

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"

namespace quench_cli {

/// Parses "name=path.npy" arguments and reads the arrays.
inline std::map<std::string, quench::tensor> read_inputs(const std::vector<std::string>& specs) {
  std::map<std::string, quench::tensor> out;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw quench::error(quench::errc::invalid_argument, "--input '" + s + "'", "expected NAME=FILE.npy");
    out.emplace(s.substr(0, eq), quench::read_npy(s.substr(eq + 1)));
  }
  return out;
}

/// A seeded normal(0, 1) float tensor (or zeros for integer inputs) for every graph input not in
/// `given`; symbolic dimensions take `dim_value` (e.g. batch 1).
inline void add_random_inputs(const quench::model& m, std::map<std::string, quench::tensor>& given, std::uint32_t seed,
                              std::int64_t dim_value) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer() || given.count(v->name())) continue;
    if (!v->dims() || v->dtype() == quench::dtype::undefined)
      throw quench::error(quench::errc::invalid_argument, "input '" + v->name() + "'",
                          "has no known type and shape; pass it with --input");
    std::vector<std::int64_t> dims;
    for (const auto& d : *v->dims()) dims.push_back(d.value ? *d.value : dim_value);
    quench::tensor t(v->dtype(), quench::shape(dims), v->name());
    if (t.dtype() == quench::dtype::float32)
      for (auto& x : t.view<float>()) x = normal(rng);
    given.emplace(v->name(), std::move(t));
  }
}

inline std::unordered_map<std::string, const quench::tensor*> feed_of(const std::map<std::string, quench::tensor>& in) {
  std::unordered_map<std::string, const quench::tensor*> feed;
  for (const auto& kv : in) feed.emplace(kv.first, &kv.second);
  return feed;
}

}  // namespace quench_cli
