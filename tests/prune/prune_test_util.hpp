#pragma once
// Replaying the torch.nn.utils.prune cases of make_prune_reference.py (ctest fixture
// prune_reference_data, written to QUENCH_TEST_BINARY_DIR/data/prune).

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/calib/detail/json.hpp"
#include "quench/prune/structured.hpp"
#include "quench/prune/unstructured.hpp"

namespace prune_test {

inline std::string reference_dir() { return QUENCH_TEST_BINARY_DIR "/data/prune"; }

/// cases.json, parsed once; null (and a failed check) when missing.
inline const quench::detail::json_value& reference() {
  static const quench::detail::json_value ref = [] {
    std::ifstream in(reference_dir() + "/cases.json");
    std::ostringstream s;
    s << in.rdbuf();
    if (s.str().empty()) return quench::detail::json_value{};
    return quench::detail::parse_json(s.str(), "cases.json");
  }();
  if (ref.is_null())
    FAIL_CHECK("missing " << reference_dir() << "/cases.json; it is written by the ctest fixture prune_reference_data, or run: "
                             "/usr/bin/python3 tests/prune/make_prune_reference.py "
                          << reference_dir());
  return ref;
}

inline quench::prune::prune_amount amount_of(const quench::detail::json_value& step) {
  if (step.at("count", "step").as_bool("count"))
    return quench::prune::prune_amount::count(step.at("amount", "step").as_int64("amount"));
  return quench::prune::prune_amount::fraction(step.at("amount", "step").as_double("amount"));
}

inline double norm_of(const quench::detail::json_value& v) {
  if (v.is_string()) return v.as_string("n") == "inf" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  return v.as_double("n");
}

/// Runs the steps of one case with quench and returns the final masks, one per weight.
inline std::vector<quench::tensor> replay(const quench::detail::json_value& c, std::vector<quench::tensor>& weights) {
  for (const auto& f : c.at("weights", "case").as_array("weights"))
    weights.push_back(quench::read_npy(reference_dir() + "/" + f.as_string("weight")));
  std::vector<quench::tensor> masks;
  for (const auto& step : c.at("steps", "case").as_array("steps")) {
    const std::string method = step.at("method", "step").as_string("method");
    const auto a = amount_of(step);
    if (method == "global") {
      std::vector<const quench::tensor*> ws, prev;
      for (auto& w : weights) ws.push_back(&w);
      for (auto& m : masks) prev.push_back(&m);
      masks = quench::prune::global_unstructured(ws, a, prev);
      continue;
    }
    const quench::tensor* prev = masks.empty() ? nullptr : &masks[0];
    quench::tensor next = method == "l1" ? quench::prune::l1_unstructured(weights[0], a, prev)
                                         : quench::prune::ln_structured(weights[0], a, norm_of(*step.find("n")),
                                                                        step.at("dim", "step").as_int64("dim"), prev);
    masks.clear();
    masks.push_back(std::move(next));
  }
  return masks;
}

}  // namespace prune_test
