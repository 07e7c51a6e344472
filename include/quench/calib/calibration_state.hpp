#pragma once
// calibration_state: every tensor's observer, serialisable to JSON with an exact round trip and
// mergeable exactly. This is how calibration scales past one machine: each shard observes its
// part of the data and writes its state; the states merge (any order, any grouping) into the
// state one pass over all data would have produced, and ranges are computed once from it.
//
// JSON layout (version 1; numbers are written with the shortest digits that read back exactly,
// histogram counts as base64 of little-endian int64, ORT edges as base64 of little-endian float32
// bits, null for the +-inf extremes of a channel without data):
//
//   {"format": "quench.calibration_state", "version": 1,
//    "metadata": {"model": "...", ...},
//    "tensors": {
//      "conv1": {"observer": "minmax", "symmetric": false, "moving_average": false,
//                "averaging_constant": 0.01, "axis": null,
//                "nonfinite": {"nan": 0, "pos_inf": 0, "neg_inf": 0},
//                "min": [-1.5], "max": [3.25]},
//      "relu2": {"observer": "histogram", "num_bins": 2048, "absolute": false, "axis": null,
//                "nonfinite": {...},
//                "channels": [{"exponent": 3, "min": 0.0, "max": 6.5, "counts": "AAAA..."}]},
//      "x":     {"observer": "ort_histogram", "kind": "value", "num_bins": 2048,
//                "nonfinite": {...}, "min": -2.0, "max": 2.0, "threshold": 2.0,
//                "threshold_float64": false, "counts": "...", "edges": "..."}}}
//
// The state of a mergeable observer (plain min-max, histogram_observer) is a function of the
// observed values alone, not of how they were batched or sharded, so shards merged give the
// single pass's JSON byte for byte.
//
// Merging: tensors present in one state only are copied; a tensor in both merges its observers
// (the observer's merge(): exact for minmax without moving average and for histogram_observer;
// moving-average and ORT-compatible observers refuse, because their results depend on the batch
// order). Metadata keys of the other state that this one lacks are added.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "quench/calib/detail/base64.hpp"
#include "quench/calib/detail/json.hpp"
#include "quench/calib/histogram_observer.hpp"
#include "quench/calib/minmax_observer.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/calib/ort_histogram_observer.hpp"
#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"

namespace quench::calib {

/// One of quench's observers.
using any_observer = std::variant<minmax_observer, histogram_observer, ort_histogram_observer>;

/// "minmax", "histogram" or "ort_histogram": the observer kind as calibration tables and JSON
/// name it.
inline std::string observer_kind(const any_observer& o) {
  switch (o.index()) {
    case 0: return "minmax";
    case 1: return "histogram";
    default: return "ort_histogram";
  }
}

inline const std::string& observer_name(const any_observer& o) {
  return std::visit([](const auto& x) -> const std::string& { return x.name(); }, o);
}

inline const nonfinite_counts& observer_nonfinite(const any_observer& o) {
  return std::visit([](const auto& x) -> const nonfinite_counts& { return x.nonfinite(); }, o);
}

/// Feeds one batch (a float32/float64/float16/bfloat16 tensor) to whichever observer `o` holds.
inline void observe(any_observer& o, const tensor& t) {
  std::visit([&](auto& x) { x.observe(t); }, o);
}

/// Merges `from` into `into`; both must hold the same kind of observer.
inline void merge(any_observer& into, const any_observer& from) {
  if (into.index() != from.index())
    throw_error(errc::invalid_argument, tensor_context(observer_name(into)),
                "cannot merge a " + observer_kind(from) + " observer into a " + observer_kind(into) + " observer");
  std::visit(
      [&](auto& x) {
        using T = std::decay_t<decltype(x)>;
        x.merge(std::get<T>(from));
      },
      into);
}

}  // namespace quench::calib

namespace quench::detail {

inline std::string axis_json(const std::optional<std::int64_t>& axis) {
  return axis ? std::to_string(*axis) : "null";
}

inline std::optional<std::int64_t> axis_from_json(const json_value& v, const std::string& ctx) {
  if (v.is_null()) return std::nullopt;
  return v.as_int64(ctx + " axis");
}

/// A double that may be +-inf (written as null): `inf_sign` says which infinity null means.
inline double extreme_from_json(const json_value& v, double null_value, const std::string& ctx) {
  return v.is_null() ? null_value : v.as_double(ctx);
}

inline std::string minmax_json(const calib::minmax_observer& o) {
  const auto& s = o.state();
  std::string j = "{\"observer\": \"minmax\", \"symmetric\": " + std::string(o.options().symmetric ? "true" : "false") +
                  ", \"moving_average\": " + (o.options().moving_average ? "true" : "false") +
                  ", \"averaging_constant\": " + python_float_repr(o.options().averaging_constant) +
                  ", \"axis\": " + axis_json(o.options().axis) +
                  ", \"nonfinite\": " + nonfinite_json(s.nonfinite) + ", \"min\": [";
  for (std::size_t c = 0; c < s.min.size(); ++c) j += (c ? ", " : "") + python_float_repr(s.min[c]);
  j += "], \"max\": [";
  for (std::size_t c = 0; c < s.max.size(); ++c) j += (c ? ", " : "") + python_float_repr(s.max[c]);
  return j + "]}";
}

inline calib::minmax_observer minmax_from_json(const std::string& name, const json_value& v, const std::string& ctx) {
  calib::minmax_options opt;
  opt.symmetric = v.at("symmetric", ctx).as_bool(ctx + " symmetric");
  opt.moving_average = v.at("moving_average", ctx).as_bool(ctx + " moving_average");
  opt.averaging_constant = v.at("averaging_constant", ctx).as_double(ctx + " averaging_constant");
  opt.axis = axis_from_json(v.at("axis", ctx), ctx);
  calib::minmax_state s;
  s.nonfinite = nonfinite_from_json(v.at("nonfinite", ctx), ctx);
  for (const auto& x : v.at("min", ctx).as_array(ctx + " min")) s.min.push_back(extreme_from_json(x, HUGE_VAL, ctx + " min"));
  for (const auto& x : v.at("max", ctx).as_array(ctx + " max")) s.max.push_back(extreme_from_json(x, -HUGE_VAL, ctx + " max"));
  return calib::minmax_observer::from_state(name, opt, std::move(s));
}

inline std::string histogram_json(const calib::histogram_observer& o) {
  const auto& s = o.state();
  std::string j = "{\"observer\": \"histogram\", \"num_bins\": " + std::to_string(o.options().num_bins) +
                  ", \"absolute\": " + (o.options().absolute ? "true" : "false") +
                  ", \"axis\": " + axis_json(o.options().axis) +
                  ", \"nonfinite\": " + nonfinite_json(s.nonfinite) + ", \"channels\": [";
  for (std::size_t c = 0; c < s.channels.size(); ++c) {
    const auto& ch = s.channels[c];
    j += (c ? ", " : "") + std::string("{\"exponent\": ") + std::to_string(ch.exponent) +
         ", \"min\": " + python_float_repr(ch.min) + ", \"max\": " + python_float_repr(ch.max) +
         ", \"counts\": \"" + pack_int64(ch.counts) + "\"}";
  }
  return j + "]}";
}

inline calib::histogram_observer histogram_from_json(const std::string& name, const json_value& v,
                                                     const std::string& ctx) {
  calib::histogram_options opt;
  const std::uint64_t bins = v.at("num_bins", ctx).as_uint64(ctx + " num_bins");
  opt.num_bins = static_cast<std::size_t>(bins);
  opt.absolute = v.at("absolute", ctx).as_bool(ctx + " absolute");
  opt.axis = axis_from_json(v.at("axis", ctx), ctx);
  calib::histogram_state s;
  s.nonfinite = nonfinite_from_json(v.at("nonfinite", ctx), ctx);
  for (const auto& x : v.at("channels", ctx).as_array(ctx + " channels")) {
    calib::histogram_channel ch;
    const std::int64_t e = x.at("exponent", ctx).as_int64(ctx + " exponent");
    if (e < calib::histogram_observer::min_exponent || e > calib::histogram_observer::max_exponent)
      throw_error(errc::parse_error, ctx, "grid exponent " + std::to_string(e) + " out of range");
    ch.exponent = static_cast<int>(e);
    ch.min = extreme_from_json(x.at("min", ctx), HUGE_VAL, ctx + " min");
    ch.max = extreme_from_json(x.at("max", ctx), -HUGE_VAL, ctx + " max");
    ch.counts = unpack_int64(x.at("counts", ctx).as_string(ctx + " counts"), ctx + " counts");
    s.channels.push_back(std::move(ch));
  }
  return calib::histogram_observer::from_state(name, opt, std::move(s));
}

inline std::string ort_histogram_json(const calib::ort_histogram_observer& o) {
  const auto& s = o.state();
  return "{\"observer\": \"ort_histogram\", \"kind\": \"" +
         std::string(o.options().kind == calib::ort_histogram_kind::value ? "value" : "absolute_value") +
         "\", \"num_bins\": " + std::to_string(o.options().num_bins) +
         ", \"nonfinite\": " + nonfinite_json(s.nonfinite) + ", \"min\": " + python_float_repr(s.min) +
         ", \"max\": " + python_float_repr(s.max) + ", \"threshold\": " + python_float_repr(s.threshold) +
         ", \"threshold_float64\": " + (s.threshold_float64 ? "true" : "false") + ", \"counts\": \"" +
         pack_int64(s.counts) + "\", \"edges\": \"" + pack_float32(s.edges) + "\"}";
}

inline calib::ort_histogram_observer ort_histogram_from_json(const std::string& name, const json_value& v,
                                                             const std::string& ctx) {
  calib::ort_histogram_options opt;
  const std::string& kind = v.at("kind", ctx).as_string(ctx + " kind");
  if (kind == "value")
    opt.kind = calib::ort_histogram_kind::value;
  else if (kind == "absolute_value")
    opt.kind = calib::ort_histogram_kind::absolute_value;
  else
    throw_error(errc::parse_error, ctx, "unknown ORT histogram kind \"" + kind + "\"");
  opt.num_bins = static_cast<std::size_t>(v.at("num_bins", ctx).as_uint64(ctx + " num_bins"));
  calib::ort_histogram_state s;
  s.nonfinite = nonfinite_from_json(v.at("nonfinite", ctx), ctx);
  auto f32 = [&](const char* key) {
    const double d = v.at(key, ctx).as_double(ctx + " " + key);
    const auto f = static_cast<float>(d);
    if (static_cast<double>(f) != d) throw_error(errc::parse_error, ctx, std::string(key) + " is not a float32 value");
    return f;
  };
  s.min = f32("min");
  s.max = f32("max");
  s.threshold = v.at("threshold", ctx).as_double(ctx + " threshold");
  s.threshold_float64 = v.at("threshold_float64", ctx).as_bool(ctx + " threshold_float64");
  s.counts = unpack_int64(v.at("counts", ctx).as_string(ctx + " counts"), ctx + " counts");
  s.edges = unpack_float32(v.at("edges", ctx).as_string(ctx + " edges"), ctx + " edges");
  return calib::ort_histogram_observer::from_state(name, opt, std::move(s));
}

}  // namespace quench::detail

namespace quench::calib {

/// Every tensor's observer, by tensor name (see the header comment).
///
///     quench::calib::calibration_state st;
///     st.add(quench::calib::histogram_observer("relu_1"));
///     quench::calib::observe(*st.find("relu_1"), activation);     // per batch
///     std::string json = st.to_json();                           // write the shard's state
///
///     auto all = quench::calib::calibration_state::from_json(shard0);
///     all.merge(quench::calib::calibration_state::from_json(shard1));   // exact
class calibration_state {
 public:
  using map_type = std::map<std::string, any_observer, std::less<>>;

  /// Adds `obs` under its name; throws if the name is empty or already present.
  any_observer& add(any_observer obs) {
    const std::string name = observer_name(obs);
    if (name.empty()) throw_error(errc::invalid_argument, {}, "an observer in a calibration state needs a tensor name");
    auto [it, inserted] = observers_.emplace(name, std::move(obs));
    if (!inserted) throw_error(errc::invalid_argument, tensor_context(name), "the state already has an observer");
    return it->second;
  }

  any_observer* find(std::string_view name) noexcept {
    auto it = observers_.find(name);
    return it == observers_.end() ? nullptr : &it->second;
  }
  const any_observer* find(std::string_view name) const noexcept {
    auto it = observers_.find(name);
    return it == observers_.end() ? nullptr : &it->second;
  }

  /// Every observer by tensor name (mutable: a driver feeds them batch by batch).
  map_type& observers() noexcept { return observers_; }
  const map_type& observers() const noexcept { return observers_; }
  std::size_t size() const noexcept { return observers_.size(); }
  bool empty() const noexcept { return observers_.empty(); }

  /// Free-form strings carried along (model name, shard index, tool version, ...).
  std::map<std::string, std::string>& metadata() noexcept { return metadata_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// Adds `other` (see the header comment). On an error (mismatched kinds or options, an
  /// order-dependent observer present in both) this state may hold the tensors merged before it.
  void merge(const calibration_state& other) {
    for (const auto& [name, obs] : other.observers_) {
      auto it = observers_.find(name);
      if (it == observers_.end())
        observers_.emplace(name, obs);
      else
        calib::merge(it->second, obs);
    }
    for (const auto& [k, v] : other.metadata_) metadata_.emplace(k, v);
  }

  /// The JSON text (see the header comment); from_json(to_json()) restores an equal state.
  std::string to_json() const {
    std::string j = "{\"format\": \"quench.calibration_state\", \"version\": 1, \"metadata\": {";
    bool first = true;
    for (const auto& [k, v] : metadata_) {
      j += (first ? "" : ", ") + detail::json_quote(k) + ": " + detail::json_quote(v);
      first = false;
    }
    j += "}, \"tensors\": {";
    first = true;
    for (const auto& [name, obs] : observers_) {
      j += (first ? "\n  " : ",\n  ") + detail::json_quote(name) + ": ";
      first = false;
      switch (obs.index()) {
        case 0: j += detail::minmax_json(std::get<0>(obs)); break;
        case 1: j += detail::histogram_json(std::get<1>(obs)); break;
        default: j += detail::ort_histogram_json(std::get<2>(obs)); break;
      }
    }
    return j + "}}\n";
  }

  /// Parses a state written by to_json(). Malformed input throws errc::parse_error (or
  /// errc::invalid_value for a state that parses but breaks an observer's invariants) naming
  /// `what` and the tensor.
  static calibration_state from_json(std::string_view text, const std::string& what = "calibration state") {
    const detail::json_value root = detail::parse_json(text, what);
    detail::check_json_format(root, what, "quench.calibration_state");
    calibration_state st;
    if (const auto* md = root.find("metadata"))
      for (const auto& [k, v] : md->as_object(what + " metadata")) st.metadata_[k] = v.as_string(what + " metadata." + k);
    for (const auto& [name, v] : root.at("tensors", what).as_object(what + " tensors")) {
      const std::string ctx = what + " tensor '" + name + "'";
      const std::string& kind = v.at("observer", ctx).as_string(ctx + " observer");
      if (kind == "minmax")
        st.add(detail::minmax_from_json(name, v, ctx));
      else if (kind == "histogram")
        st.add(detail::histogram_from_json(name, v, ctx));
      else if (kind == "ort_histogram")
        st.add(detail::ort_histogram_from_json(name, v, ctx));
      else
        throw_error(errc::parse_error, ctx, "unknown observer kind \"" + kind + "\"");
    }
    return st;
  }

 private:
  map_type observers_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace quench::calib
