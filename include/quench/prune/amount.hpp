#pragma once
// How much to prune: a count of units or a fraction of them, converted exactly as
// torch.nn.utils.prune does (_validate_pruning_amount_init, _compute_nparams_toprune,
// _validate_pruning_amount):
//
//   count     n >= 0 units; more units than there are is an error (torch: ValueError)
//   fraction  f in [0, 1]; round(f * units) with Python's round, i.e. half to even on the double
//             product: 5 units at 0.1, 0.3, 0.5, 0.7, 0.9 prune 0, 2, 2, 4, 4
//
// torch tells the two apart by the Python type (amount=1 prunes one unit, amount=1.0 all of them);
// here the constructor says which.
//
//     auto a = quench::prune::prune_amount::fraction(0.3);
//     std::int64_t k = quench::prune::units_to_prune(a, 5);   // 2

#include <cmath>
#include <cstdint>
#include <string>

#include "quench/core/error.hpp"

namespace quench::prune {

class prune_amount {
 public:
  /// 30 % by default.
  prune_amount() = default;
  /// Exactly `n` units; throws invalid_argument for n < 0.
  static prune_amount count(std::int64_t n) {
    if (n < 0) throw_invalid_argument("amount", "a non-negative count", std::to_string(n));
    prune_amount a;
    a.is_count_ = true;
    a.count_ = n;
    return a;
  }
  /// round(f * units); throws invalid_argument unless 0 <= f <= 1.
  static prune_amount fraction(double f) {
    if (!(f >= 0.0 && f <= 1.0)) throw_invalid_argument("amount", "a fraction in [0, 1]", std::to_string(f));
    prune_amount a;
    a.fraction_ = f;
    return a;
  }

  bool is_count() const noexcept { return is_count_; }
  std::int64_t count_value() const noexcept { return count_; }
  double fraction_value() const noexcept { return fraction_; }

  /// "7" or "0.3".
  friend std::string to_string(const prune_amount& a) {
    if (a.is_count_) return std::to_string(a.count_);
    std::string s = std::to_string(a.fraction_);
    while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
    return s;
  }

 private:
  bool is_count_ = false;
  std::int64_t count_ = 0;
  double fraction_ = 0.3;
};

/// The number of units to prune out of `units`, with torch's rounding and checks; throws
/// invalid_argument naming `context` when a count exceeds `units`.
inline std::int64_t units_to_prune(const prune_amount& a, std::int64_t units, const std::string& context = {}) {
  std::int64_t k = 0;
  if (a.is_count()) {
    k = a.count_value();
  } else {
    // Python's round() on a float rounds half to even; nearbyint does in the default FP mode.
    k = static_cast<std::int64_t>(std::nearbyint(a.fraction_value() * static_cast<double>(units)));
  }
  if (k > units)
    throw_error(errc::invalid_argument, context,
                "amount " + to_string(a) + " is more than the " + std::to_string(units) + " units that can be pruned");
  return k;
}

}  // namespace quench::prune
