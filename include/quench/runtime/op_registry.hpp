#pragma once
// op_registry: which kernel runs a (domain, op type) at a given opset version.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quench/graph/model.hpp"
#include "quench/runtime/op_context.hpp"

namespace quench::runtime {

/// Runs the node described by the context.
using run_fn = void (*)(op_context&);
/// Checks before any run that the node's attributes and static input types are supported; throws
/// unsupported_op (or invalid_model) naming the node. May be null.
using check_fn = void (*)(const node&, std::int64_t opset);

/// Sets of element types, as bit masks over ONNX dtype numbers (bit n = dtype n).
namespace types {
constexpr std::uint32_t bit(dtype t) noexcept { return std::uint32_t{1} << static_cast<int>(t); }
constexpr std::uint32_t floats = bit(dtype::float32) | bit(dtype::float64);
constexpr std::uint32_t signed_ints = bit(dtype::int8) | bit(dtype::int16) | bit(dtype::int32) | bit(dtype::int64);
constexpr std::uint32_t unsigned_ints = bit(dtype::uint8) | bit(dtype::uint16) | bit(dtype::uint32) | bit(dtype::uint64);
constexpr std::uint32_t numeric = floats | signed_ints | unsigned_ints;
constexpr std::uint32_t boolean = bit(dtype::bool_);
constexpr std::uint32_t any = ~std::uint32_t{0};
}  // namespace types

struct op_entry {
  std::string domain;  ///< "" = ai.onnx
  std::string op_type;
  std::int64_t since_version = 1;  ///< first opset this kernel handles
  std::int64_t until_version = 1000;  ///< last opset it handles
  run_fn run = nullptr;
  check_fn check = nullptr;
  /// Element types the kernel accepts for input 0 (checked before running where the type is known).
  std::uint32_t input0_types = types::any;
};

/// A set of kernels. Immutable once built: share one between threads freely. Users extend quench
/// with custom ops by copying builtin() and adding their own entries.
class op_registry {
 public:
  void add(op_entry e) {
    auto& list = ops_[{std::string(normalize(e.domain)), e.op_type}];
    list.push_back(std::move(e));
  }
  /// Convenience: one kernel for all versions in [since, until].
  void add(std::string op_type, run_fn run, std::uint32_t input0_types = types::any, check_fn check = nullptr,
           std::int64_t since = 1, std::int64_t until = 1000, std::string domain = {}) {
    add(op_entry{std::move(domain), std::move(op_type), since, until, run, check, input0_types});
  }

  /// The kernel for `op_type` in `domain` at `opset`, or null.
  const op_entry* find(std::string_view domain, std::string_view op_type, std::int64_t opset) const {
    auto it = ops_.find({std::string(normalize(domain)), std::string(op_type)});
    if (it == ops_.end()) return nullptr;
    for (const op_entry& e : it->second)
      if (opset >= e.since_version && opset <= e.until_version) return &e;
    return nullptr;
  }

  /// Every (domain, op type) with at least one kernel, sorted.
  std::vector<std::pair<std::string, std::string>> op_types() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& kv : ops_) out.push_back(kv.first);
    return out;
  }

 private:
  static std::string_view normalize(std::string_view d) noexcept { return d == "ai.onnx" ? std::string_view{} : d; }
  std::map<std::pair<std::string, std::string>, std::vector<op_entry>> ops_;
};

}  // namespace quench::runtime
