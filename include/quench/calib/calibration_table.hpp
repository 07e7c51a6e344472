#pragma once
// calibration_table: the result of calibration, one entry per tensor (name, observer kind, method,
// chosen range, per-channel ranges, NaN/Inf counts), and its exchange formats:
//
//   quench JSON     write_json / read_json: everything the table holds, exact round trip.
//   TensorRT cache  write_tensorrt_cache / read_tensorrt_cache: the calibration cache
//                   IInt8Calibrator::readCalibrationCache returns to TensorRT. First line
//                   "TRT-<version>-<algorithm>" (e.g. TRT-8601-EntropyCalibration2; TensorRT ignores
//                   a cache whose version or algorithm differs from its own), then one line per
//                   tensor "<name>: <8 hex digits>", the big-endian IEEE bits of the float32 scale
//                   amax / 127, amax = max(|min|, |max|). Reading gives the symmetric range
//                   (-127 s, 127 s), computed in float64, so writing it again gives the same bits.
//   ncnn table      write_ncnn_table / read_ncnn_table: ncnn2table's format, one line per entry
//                   "<name> <scale> ..." with ncnn's scale = 127 / amax (the reciprocal of the ONNX
//                   scale), one per channel for per-channel entries (ncnn's weights,
//                   "<layer>_param_0"), one for activations; amax = 0 is written as scale 1 (ncnn's
//                   own convention for all-zero weights). ncnn2table prints "%f"; quench prints the
//                   shortest digits that read back to the same float32, which ncnn2int8's sscanf
//                   reads alike. Names may not contain whitespace (ncnn splits on it).
//   ORT table       write_ort_table / read_ort_table: calibration.json as ONNX Runtime's
//                   write_calibration_table writes it, json.dumps of {tensor: [min, max]} (floats
//                   as Python's repr). Reading also accepts the TensorsData form of newer ORT
//                   ({"CLS": "TensorsData", "data": {tensor: {"lowest": ..., "highest": ...}}}, values
//                   plain or as {"data": ..., "dtype": ..., "CLS": "numpy.array"}); a value with
//                   several elements is a per-channel range (ORT's axis 1).
//
// Formats without per-channel ranges (TensorRT, ORT's simple form) get each entry's per-tensor
// range, which for a per-channel entry is the union of its channels. Parse errors are
// quench::error (errc::parse_error) naming the format and line; malformed input never crashes.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "quench/calib/detail/json.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/calib/range.hpp"
#include "quench/core/error.hpp"

namespace quench::calib {

/// The calibration result of one tensor.
///
///     quench::calib::tensor_calibration t;
///     t.name = "conv1_out";
///     t.observer = "histogram";
///     t.method = "entropy";
///     t.range = quench::calib::ort_entropy_range(obs.histogram());
///     t.nonfinite = obs.nonfinite();
struct tensor_calibration {
  std::string name;
  std::string observer;  ///< "minmax", "histogram", "ort_histogram"; empty if the source did not say
  std::string method;    ///< "max", "entropy", "percentile", "mse", ... (free text)
  calib::range range;    ///< the per-tensor range (the union of the channels for per-channel entries)
  std::optional<std::int64_t> axis;  ///< the channel axis of a per-channel entry
  std::vector<calib::range> channels;  ///< per-channel ranges; empty for a per-tensor entry
  nonfinite_counts nonfinite;          ///< NaN/Inf the observer excluded

  friend bool operator==(const tensor_calibration& a, const tensor_calibration& b) {
    return a.name == b.name && a.observer == b.observer && a.method == b.method && a.range == b.range &&
           a.axis == b.axis && a.channels == b.channels && a.nonfinite == b.nonfinite;
  }
  friend bool operator!=(const tensor_calibration& a, const tensor_calibration& b) { return !(a == b); }
};

/// Calibration results by tensor name, kept sorted by name.
///
///     quench::calib::calibration_table table;
///     table.add(t);
///     std::string cache = quench::calib::write_tensorrt_cache(table);
class calibration_table {
 public:
  /// Adds `t`, replacing an entry of the same name; throws if the name is empty.
  tensor_calibration& add(tensor_calibration t) {
    if (t.name.empty()) throw_error(errc::invalid_argument, {}, "a calibration table entry needs a tensor name");
    auto it = std::lower_bound(entries_.begin(), entries_.end(), t.name,
                               [](const tensor_calibration& e, const std::string& n) { return e.name < n; });
    if (it != entries_.end() && it->name == t.name) {
      *it = std::move(t);
      return *it;
    }
    return *entries_.insert(it, std::move(t));
  }

  const tensor_calibration* find(std::string_view name) const noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                               [](const tensor_calibration& e, std::string_view n) { return e.name < n; });
    return it != entries_.end() && it->name == name ? &*it : nullptr;
  }

  const std::vector<tensor_calibration>& entries() const noexcept { return entries_; }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }

  friend bool operator==(const calibration_table& a, const calibration_table& b) { return a.entries_ == b.entries_; }
  friend bool operator!=(const calibration_table& a, const calibration_table& b) { return !(a == b); }

 private:
  std::vector<tensor_calibration> entries_;
};

}  // namespace quench::calib

namespace quench::detail {

inline std::string line_context(const std::string& format, std::size_t line) {
  return format + " line " + std::to_string(line);
}

/// Splits text into lines (without "\n" / "\r\n").
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(at, end - at);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    at = end + 1;
  }
  return lines;
}

/// The shortest decimal text that reads back to the same float32.
inline std::string float32_text(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline void check_finite_range(const calib::tensor_calibration& t, const char* format) {
  auto ok = [](const calib::range& r) { return std::isfinite(r.min) && std::isfinite(r.max) && r.min <= r.max; };
  bool good = ok(t.range);
  for (const auto& c : t.channels) good = good && ok(c);
  if (!good)
    throw_error(errc::invalid_value, tensor_context(t.name),
                std::string("expected finite ranges with min <= max to write a ") + format);
}

}  // namespace quench::detail

namespace quench::calib {

// ---- quench JSON -------------------------------------------------------------------------------------

/// The table as quench JSON:
///   {"format": "quench.calibration_table", "version": 1, "tensors": [
///     {"name": "x", "observer": "histogram", "method": "entropy", "min": -1.5, "max": 2.0,
///      "axis": null, "channels": [], "nonfinite": {"nan": 0, "pos_inf": 0, "neg_inf": 0}}, ...]}
inline std::string write_json(const calibration_table& table) {
  std::string j = "{\"format\": \"quench.calibration_table\", \"version\": 1, \"tensors\": [";
  bool first = true;
  for (const auto& t : table.entries()) {
    detail::check_finite_range(t, "calibration table");
    j += first ? "\n  " : ",\n  ";
    first = false;
    j += "{\"name\": " + detail::json_quote(t.name) + ", \"observer\": " + detail::json_quote(t.observer) +
         ", \"method\": " + detail::json_quote(t.method) + ", \"min\": " + detail::python_float_repr(t.range.min) +
         ", \"max\": " + detail::python_float_repr(t.range.max) +
         ", \"axis\": " + (t.axis ? std::to_string(*t.axis) : "null") + ", \"channels\": [";
    for (std::size_t c = 0; c < t.channels.size(); ++c)
      j += (c ? ", [" : "[") + detail::python_float_repr(t.channels[c].min) + ", " +
           detail::python_float_repr(t.channels[c].max) + "]";
    j += "], \"nonfinite\": " + detail::nonfinite_json(t.nonfinite) + "}";
  }
  return j + "]}\n";
}

/// Reads quench JSON written by write_json.
inline calibration_table read_json(std::string_view text, const std::string& what = "calibration table") {
  const detail::json_value root = detail::parse_json(text, what);
  detail::check_json_format(root, what, "quench.calibration_table");
  calibration_table table;
  std::size_t index = 0;
  for (const auto& v : root.at("tensors", what).as_array(what + " tensors")) {
    const std::string ctx = what + " tensor #" + std::to_string(index++);
    tensor_calibration t;
    t.name = v.at("name", ctx).as_string(ctx + " name");
    const std::string tctx = what + " tensor '" + t.name + "'";
    t.observer = v.at("observer", tctx).as_string(tctx + " observer");
    t.method = v.at("method", tctx).as_string(tctx + " method");
    t.range = {v.at("min", tctx).as_double(tctx + " min"), v.at("max", tctx).as_double(tctx + " max")};
    const auto& axis = v.at("axis", tctx);
    if (!axis.is_null()) t.axis = axis.as_int64(tctx + " axis");
    for (const auto& c : v.at("channels", tctx).as_array(tctx + " channels")) {
      const auto& pair = c.as_array(tctx + " channel");
      if (pair.size() != 2) throw_error(errc::parse_error, tctx, "expected [min, max] per channel");
      t.channels.push_back({pair[0].as_double(tctx + " channel min"), pair[1].as_double(tctx + " channel max")});
    }
    t.nonfinite = detail::nonfinite_from_json(v.at("nonfinite", tctx), tctx);
    if (!(t.range.min <= t.range.max)) throw_error(errc::parse_error, tctx, "min > max");
    if (table.find(t.name)) throw_error(errc::parse_error, tctx, "duplicate tensor");
    table.add(std::move(t));
  }
  return table;
}

// ---- TensorRT calibration cache ---------------------------------------------------------------------

/// The header line of a TensorRT calibration cache: "TRT-<version>-<algorithm>".
struct tensorrt_cache_header {
  std::string version = "8601";                 ///< TensorRT's version as it writes it (8.6.1 -> 8601)
  std::string algorithm = "EntropyCalibration2";  ///< EntropyCalibration2, MinMaxCalibration, ...
};

/// A cache read back: its header and the ranges it holds.
struct tensorrt_cache {
  tensorrt_cache_header header;
  calibration_table table;
};

/// The cache text for `table` (see the header comment).
///
///     std::ofstream("model.cache") << quench::calib::write_tensorrt_cache(table, {"8601", "EntropyCalibration2"});
inline std::string write_tensorrt_cache(const calibration_table& table, const tensorrt_cache_header& header = {}) {
  auto plain = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!plain(header.version))
    throw_error(errc::invalid_argument, "TensorRT cache", "the version must be digits, found '" + header.version + "'");
  if (header.algorithm.empty() || header.algorithm.find_first_of(" \t\r\n-") != std::string::npos)
    throw_error(errc::invalid_argument, "TensorRT cache", "bad algorithm name '" + header.algorithm + "'");
  std::string out = "TRT-" + header.version + "-" + header.algorithm + "\n";
  for (const auto& t : table.entries()) {
    detail::check_finite_range(t, "TensorRT cache");
    if (t.name.find_first_of("\r\n") != std::string::npos)
      throw_error(errc::invalid_argument, tensor_context(t.name), "a TensorRT cache cannot hold a name with a line break");
    const auto scale = static_cast<float>(t.range.amax() / 127.0);
    std::uint32_t bits;
    std::memcpy(&bits, &scale, 4);
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(bits));
    out += t.name + ": " + hex + "\n";
  }
  return out;
}

/// Parses a TensorRT calibration cache.
inline tensorrt_cache read_tensorrt_cache(std::string_view text) {
  const std::string fmt = "TensorRT cache";
  const auto lines = detail::split_lines(text);
  if (lines.empty()) throw_error(errc::parse_error, fmt, "empty input");
  tensorrt_cache cache;
  {
    const std::string_view h = lines[0];
    const std::size_t dash = h.find('-', 4);
    if (h.substr(0, 4) != "TRT-" || dash == std::string_view::npos || dash == 4 || dash + 1 >= h.size())
      throw_error(errc::parse_error, detail::line_context(fmt, 1), "expected 'TRT-<version>-<algorithm>'");
    cache.header.version = std::string(h.substr(4, dash - 4));
    cache.header.algorithm = std::string(h.substr(dash + 1));
    if (cache.header.version.find_first_not_of("0123456789") != std::string::npos)
      throw_error(errc::parse_error, detail::line_context(fmt, 1), "the version must be digits");
  }
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    if (l.empty()) continue;
    const std::string ctx = detail::line_context(fmt, i + 1);
    const std::size_t colon = l.rfind(": ");
    if (colon == std::string_view::npos || colon == 0) throw_error(errc::parse_error, ctx, "expected '<tensor>: <hex>'");
    const std::string_view hex = l.substr(colon + 2);
    std::uint32_t bits = 0;
    const auto r = std::from_chars(hex.data(), hex.data() + hex.size(), bits, 16);
    if (hex.empty() || hex.size() > 8 || r.ec != std::errc() || r.ptr != hex.data() + hex.size())
      throw_error(errc::parse_error, ctx, "expected up to 8 hex digits, found '" + std::string(hex) + "'");
    float scale;
    std::memcpy(&scale, &bits, 4);
    if (!std::isfinite(scale) || scale < 0)
      throw_error(errc::parse_error, ctx, "the scale must be finite and non-negative");
    tensor_calibration t;
    t.name = std::string(l.substr(0, colon));
    t.method = cache.header.algorithm;
    const double amax = static_cast<double>(scale) * 127.0;
    t.range = {-amax, amax};
    if (cache.table.find(t.name)) throw_error(errc::parse_error, ctx, "duplicate tensor '" + t.name + "'");
    cache.table.add(std::move(t));
  }
  return cache;
}

// ---- ncnn calibration table -------------------------------------------------------------------------

/// The ncnn2table text for `table` (see the header comment).
inline std::string write_ncnn_table(const calibration_table& table) {
  auto scale_of = [](double amax) { return amax == 0 ? 1.0f : static_cast<float>(127.0 / amax); };
  std::string out;
  for (const auto& t : table.entries()) {
    detail::check_finite_range(t, "ncnn table");
    if (t.name.find_first_of(" \t\r\n") != std::string::npos)
      throw_error(errc::invalid_argument, tensor_context(t.name), "an ncnn table cannot hold a name with whitespace");
    out += t.name;
    if (t.channels.empty()) {
      out += " " + detail::float32_text(scale_of(t.range.amax()));
    } else {
      for (const auto& c : t.channels) out += " " + detail::float32_text(scale_of(c.amax()));
    }
    out += "\n";
  }
  return out;
}

/// Parses an ncnn calibration table. Entries named "*_param_*" or with several scales are
/// per-channel (axis 0, ncnn's output channels); ranges are (-127 / s, 127 / s).
inline calibration_table read_ncnn_table(std::string_view text) {
  const std::string fmt = "ncnn table";
  calibration_table table;
  const auto lines = detail::split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string ctx = detail::line_context(fmt, i + 1);
    std::vector<std::string_view> tok;
    const std::string_view l = lines[i];
    std::size_t at = 0;
    while (at < l.size()) {
      while (at < l.size() && (l[at] == ' ' || l[at] == '\t')) ++at;
      std::size_t end = at;
      while (end < l.size() && l[end] != ' ' && l[end] != '\t') ++end;
      if (end > at) tok.push_back(l.substr(at, end - at));
      at = end;
    }
    if (tok.empty()) continue;
    if (tok.size() < 2) throw_error(errc::parse_error, ctx, "expected '<name> <scale> ...'");
    tensor_calibration t;
    t.name = std::string(tok[0]);
    std::vector<calib::range> ranges;
    for (std::size_t k = 1; k < tok.size(); ++k) {
      float s = 0;
      const auto r = std::from_chars(tok[k].data(), tok[k].data() + tok[k].size(), s);
      if (r.ec != std::errc() || r.ptr != tok[k].data() + tok[k].size() || !std::isfinite(s) || !(s > 0))
        throw_error(errc::parse_error, ctx, "expected a positive scale, found '" + std::string(tok[k]) + "'");
      const double amax = 127.0 / static_cast<double>(s);
      ranges.push_back({-amax, amax});
    }
    if (ranges.size() > 1 || t.name.find("_param_") != std::string::npos) {
      t.axis = 0;
      t.channels = ranges;
      double m = 0;
      for (const auto& r : ranges) m = std::max(m, r.max);
      t.range = {-m, m};
    } else {
      t.range = ranges[0];
    }
    if (table.find(t.name)) throw_error(errc::parse_error, ctx, "duplicate entry '" + t.name + "'");
    table.add(std::move(t));
  }
  return table;
}

// ---- ONNX Runtime calibration table -----------------------------------------------------------------

/// calibration.json as ORT's write_calibration_table writes it: {"x": [min, max], ...} in
/// json.dumps's format (", " and ": " separators, non-ASCII as \uXXXX, floats as Python's repr),
/// tensors sorted by name.
inline std::string write_ort_table(const calibration_table& table) {
  std::string out = "{";
  bool first = true;
  for (const auto& t : table.entries()) {
    detail::check_finite_range(t, "ORT calibration table");
    out += (first ? "" : ", ") + detail::json_quote(t.name, true) + ": [" + detail::python_float_repr(t.range.min) +
           ", " + detail::python_float_repr(t.range.max) + "]";
    first = false;
  }
  return out + "}";
}

}  // namespace quench::calib

namespace quench::detail {

/// An ORT range value: a number, [number], or {"data": ..., "CLS": "numpy.array"}.
inline std::vector<double> ort_values(const json_value& v, const std::string& ctx) {
  if (v.is_number()) return {v.as_double(ctx)};
  if (v.is_array()) {
    std::vector<double> out;
    for (const auto& x : v.as_array(ctx)) out.push_back(x.as_double(ctx));
    if (out.empty()) throw_error(errc::parse_error, ctx, "empty value");
    return out;
  }
  if (v.is_object()) return ort_values(v.at("data", ctx), ctx);
  throw_error(errc::parse_error, ctx, "expected a number, an array or a numpy.array object");
}

}  // namespace quench::detail

namespace quench::calib {

/// Parses ORT's calibration.json (both forms, see the header comment).
inline calibration_table read_ort_table(std::string_view text) {
  const std::string fmt = "ORT calibration table";
  const detail::json_value root = detail::parse_json(text, fmt);
  const detail::json_value* data = &root;
  if (const auto* cls = root.find("CLS"); cls && cls->is_string() && cls->as_string(fmt) == "TensorsData")
    data = &root.at("data", fmt);
  calibration_table table;
  for (const auto& [name, v] : data->as_object(fmt)) {
    const std::string ctx = fmt + " tensor '" + name + "'";
    std::vector<double> lo, hi;
    if (v.is_array()) {
      const auto& pair = v.as_array(ctx);
      if (pair.size() != 2) throw_error(errc::parse_error, ctx, "expected [min, max]");
      lo = detail::ort_values(pair[0], ctx);
      hi = detail::ort_values(pair[1], ctx);
    } else {
      lo = detail::ort_values(v.at("lowest", ctx), ctx + " lowest");
      hi = detail::ort_values(v.at("highest", ctx), ctx + " highest");
    }
    if (lo.size() != hi.size()) throw_error(errc::parse_error, ctx, "lowest and highest differ in length");
    tensor_calibration t;
    t.name = name;
    t.range = {HUGE_VAL, -HUGE_VAL};
    for (std::size_t c = 0; c < lo.size(); ++c) {
      if (!(lo[c] <= hi[c])) throw_error(errc::parse_error, ctx, "min > max");
      t.range.min = std::min(t.range.min, lo[c]);
      t.range.max = std::max(t.range.max, hi[c]);
      if (lo.size() > 1) t.channels.push_back({lo[c], hi[c]});
    }
    if (lo.size() > 1) t.axis = 1;
    table.add(std::move(t));
  }
  return table;
}

}  // namespace quench::calib
