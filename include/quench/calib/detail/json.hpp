#pragma once
// A small JSON reader and writer for calibration state and tables, so that quench::quench needs
// no JSON library. The reader keeps numbers as their text and converts on request with
// std::from_chars (locale-independent, exact for every float64 and int64), limits nesting depth,
// and reports errors as quench::error (errc::parse_error) with line and column; malformed input
// never crashes it. The writer prints floats as Python's repr does (shortest round-trip digits,
// exponent outside 1e-4 .. 1e16), which is also what ORT's json.dumps writes.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "quench/calib/nonfinite.hpp"
#include "quench/core/error.hpp"

namespace quench::detail {

/// One parsed JSON value.
class json_value {
 public:
  enum class kind { null, boolean, number, string, array, object };

  kind type() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == kind::null; }
  bool is_number() const noexcept { return kind_ == kind::number; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_array() const noexcept { return kind_ == kind::array; }
  bool is_object() const noexcept { return kind_ == kind::object; }

  bool as_bool(const std::string& ctx) const {
    if (kind_ != kind::boolean) fail(ctx, "a boolean");
    return bool_;
  }
  const std::string& as_string(const std::string& ctx) const {
    if (kind_ != kind::string) fail(ctx, "a string");
    return text_;
  }
  double as_double(const std::string& ctx) const {
    if (kind_ != kind::number) fail(ctx, "a number");
    double v = 0;
    const auto r = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    if (r.ec == std::errc::result_out_of_range || r.ptr != text_.data() + text_.size() || !std::isfinite(v))
      fail(ctx, "a finite number");
    return v;
  }
  std::int64_t as_int64(const std::string& ctx) const {
    if (kind_ != kind::number) fail(ctx, "an integer");
    std::int64_t v = 0;
    const auto r = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    if (r.ec != std::errc() || r.ptr != text_.data() + text_.size()) fail(ctx, "a 64-bit integer");
    return v;
  }
  std::uint64_t as_uint64(const std::string& ctx) const {
    if (kind_ != kind::number) fail(ctx, "a non-negative integer");
    std::uint64_t v = 0;
    const auto r = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    if (r.ec != std::errc() || r.ptr != text_.data() + text_.size()) fail(ctx, "a non-negative 64-bit integer");
    return v;
  }
  const std::vector<json_value>& as_array(const std::string& ctx) const {
    if (kind_ != kind::array) fail(ctx, "an array");
    return items_;
  }
  const std::vector<std::pair<std::string, json_value>>& as_object(const std::string& ctx) const {
    if (kind_ != kind::object) fail(ctx, "an object");
    return members_;
  }
  /// The member `key` of an object, or nullptr (also when this is not an object).
  const json_value* find(std::string_view key) const noexcept {
    if (kind_ != kind::object) return nullptr;
    for (const auto& m : members_)
      if (m.first == key) return &m.second;
    return nullptr;
  }
  /// The member `key`; throws errc::parse_error naming `ctx` and the key if it is missing.
  const json_value& at(std::string_view key, const std::string& ctx) const {
    if (kind_ != kind::object) fail(ctx, "an object");
    const json_value* v = find(key);
    if (!v) throw_error(errc::parse_error, ctx, "missing member \"" + std::string(key) + "\"");
    return *v;
  }

 private:
  friend class json_parser;
  [[noreturn]] void fail(const std::string& ctx, const char* expected) const {
    static const char* const names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    std::string found = names[static_cast<int>(kind_)];
    if (kind_ == kind::number) found += " (" + text_ + ")";
    throw_error(errc::parse_error, ctx, std::string("expected ") + expected + ", found " + found);
  }

  kind kind_ = kind::null;
  bool bool_ = false;
  std::string text_;  // string value, or the number's text
  std::vector<json_value> items_;
  std::vector<std::pair<std::string, json_value>> members_;
};

/// Recursive-descent parser over a string_view (RFC 8259; duplicate keys keep the first).
class json_parser {
 public:
  json_parser(std::string_view text, std::string what) : s_(text), what_(std::move(what)) {}

  json_value parse() {
    json_value v = value(0);
    skip_ws();
    if (p_ != s_.size()) error("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int max_depth = 256;

  [[noreturn]] void error(const std::string& msg) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < p_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw_error(errc::parse_error, what_, "line " + std::to_string(line) + " column " + std::to_string(col) + ": " + msg);
  }

  void skip_ws() noexcept {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  json_value value(int depth) {
    if (depth > max_depth) error("nesting deeper than " + std::to_string(max_depth));
    skip_ws();
    if (p_ >= s_.size()) error("unexpected end of input");
    json_value v;
    const char ch = s_[p_];
    if (ch == '{') {
      v.kind_ = json_value::kind::object;
      ++p_;
      skip_ws();
      if (p_ < s_.size() && s_[p_] == '}') {
        ++p_;
        return v;
      }
      for (;;) {
        skip_ws();
        if (p_ >= s_.size() || s_[p_] != '"') error("expected a string key");
        std::string key = string();
        skip_ws();
        if (p_ >= s_.size() || s_[p_] != ':') error("expected ':'");
        ++p_;
        json_value item = value(depth + 1);
        bool dup = false;
        for (const auto& m : v.members_) dup = dup || m.first == key;
        if (!dup) v.members_.emplace_back(std::move(key), std::move(item));
        skip_ws();
        if (p_ < s_.size() && s_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < s_.size() && s_[p_] == '}') {
          ++p_;
          return v;
        }
        error("expected ',' or '}'");
      }
    }
    if (ch == '[') {
      v.kind_ = json_value::kind::array;
      ++p_;
      skip_ws();
      if (p_ < s_.size() && s_[p_] == ']') {
        ++p_;
        return v;
      }
      for (;;) {
        v.items_.push_back(value(depth + 1));
        skip_ws();
        if (p_ < s_.size() && s_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < s_.size() && s_[p_] == ']') {
          ++p_;
          return v;
        }
        error("expected ',' or ']'");
      }
    }
    if (ch == '"') {
      v.kind_ = json_value::kind::string;
      v.text_ = string();
      return v;
    }
    if (literal("true")) {
      v.kind_ = json_value::kind::boolean;
      v.bool_ = true;
      return v;
    }
    if (literal("false")) {
      v.kind_ = json_value::kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
      v.kind_ = json_value::kind::number;
      v.text_ = number();
      return v;
    }
    error(std::string("unexpected character '") + ch + "'");
  }

  std::string number() {
    const std::size_t start = p_;
    auto digits = [&] {
      const std::size_t d = p_;
      while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
      return p_ > d;
    };
    if (s_[p_] == '-') ++p_;
    if (p_ < s_.size() && s_[p_] == '0') {
      ++p_;
    } else if (!digits()) {
      error("malformed number");
    }
    if (p_ < s_.size() && s_[p_] == '.') {
      ++p_;
      if (!digits()) error("malformed number");
    }
    if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
      ++p_;
      if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
      if (!digits()) error("malformed number");
    }
    std::string t(s_.substr(start, p_ - start));
    // from_chars rejects a leading '+' but accepts what JSON allows, except that it reads an
    // exponent written with 'E' as well: nothing to adjust.
    return t;
  }

  unsigned hex4() {
    if (p_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[p_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<unsigned>(h - 'A' + 10);
      else
        error("bad hex digit in \\u escape");
    }
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  std::string string() {
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) error("unterminated string");
      const char ch = s_[p_++];
      if (ch == '"') return out;
      if (static_cast<unsigned char>(ch) < 0x20) error("control character in string");
      if (ch != '\\') {
        out += ch;
        continue;
      }
      if (p_ >= s_.size()) error("unterminated string");
      const char esc = s_[p_++];
      switch (esc) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {
            if (p_ + 2 > s_.size() || s_[p_] != '\\' || s_[p_ + 1] != 'u') error("unpaired surrogate");
            p_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xdc00 || lo >= 0xe000) error("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            error("unpaired surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: error(std::string("bad escape '\\") + esc + "'");
      }
    }
  }

  std::string_view s_;
  std::string what_;
  std::size_t p_ = 0;
};

/// Parses `text`; errors name `what` (e.g. "calibration state 'a.json'").
inline json_value parse_json(std::string_view text, std::string what) {
  return json_parser(text, std::move(what)).parse();
}

/// A JSON string literal (quotes included); control characters are escaped. UTF-8 passes
/// through, or with `ascii_only` becomes \uXXXX escapes (surrogate pairs above U+FFFF) as Python's
/// json.dumps writes by default; a byte that is not valid UTF-8 is escaped as \u00XX then.
inline std::string json_quote(std::string_view s, bool ascii_only = false) {
  std::string out = "\"";
  auto u_escape = [&out](unsigned v) {
    char buf[16];  // "\\u" + 4 hex digits; room for any unsigned the compiler cannot rule out
    std::snprintf(buf, sizeof buf, "\\u%04x", v);
    out += buf;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (u < 0x20 || (u == 0x7f && ascii_only)) {
      u_escape(u);
    } else if (u < 0x80 || !ascii_only) {
      out += ch;
    } else {
      // decode one UTF-8 sequence
      const int len = (u & 0xe0) == 0xc0 ? 2 : (u & 0xf0) == 0xe0 ? 3 : (u & 0xf8) == 0xf0 ? 4 : 0;
      unsigned cp = len == 2 ? (u & 0x1f) : len == 3 ? (u & 0x0f) : (u & 0x07);
      bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
      for (int k = 1; ok && k < len; ++k) {
        const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        ok = (c & 0xc0) == 0x80;
        cp = (cp << 6) | (c & 0x3f);
      }
      if (!ok) {
        u_escape(u);
        continue;
      }
      i += static_cast<std::size_t>(len - 1);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u_escape(0xd800 + (cp >> 10));
        u_escape(0xdc00 + (cp & 0x3ff));
      } else {
        u_escape(cp);
      }
    }
  }
  return out + "\"";
}

/// Python's repr() of a finite float64: the shortest digits that read back exactly, fixed
/// notation for decimal exponents in [-4, 16), else d.ddde+XX. "null" for NaN and Inf, which JSON
/// cannot hold.
inline std::string python_float_repr(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const std::size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  const int exp10 = std::stoi(sci.substr(epos + 1));
  const int decpt = exp10 + 1;  // digits are 0.d1d2... x 10^decpt
  const auto nd = static_cast<int>(digits.size());
  std::string out;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out = "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
    } else if (decpt < nd) {
      out = digits.substr(0, static_cast<std::size_t>(decpt)) + "." + digits.substr(static_cast<std::size_t>(decpt));
    } else {
      out = digits + std::string(static_cast<std::size_t>(decpt - nd), '0') + ".0";
    }
  } else {
    out = digits.substr(0, 1);
    if (nd > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    out += e;
  }
  return sign + out;
}

/// Checks the "format" and "version" members that quench's JSON documents start with.
inline void check_json_format(const json_value& root, const std::string& what, const char* format,
                              std::int64_t version = 1) {
  const std::string& f = root.at("format", what).as_string(what + " format");
  if (f != format)
    throw_error(errc::parse_error, what, std::string("expected format \"") + format + "\", found \"" + f + "\"");
  const std::int64_t v = root.at("version", what).as_int64(what + " version");
  if (v != version) throw_error(errc::parse_error, what, "unsupported " + f + " version " + std::to_string(v));
}

inline std::string nonfinite_json(const calib::nonfinite_counts& c) {
  return "{\"nan\": " + std::to_string(c.nan) + ", \"pos_inf\": " + std::to_string(c.pos_inf) +
         ", \"neg_inf\": " + std::to_string(c.neg_inf) + "}";
}

inline calib::nonfinite_counts nonfinite_from_json(const json_value& v, const std::string& ctx) {
  calib::nonfinite_counts c;
  c.nan = v.at("nan", ctx).as_uint64(ctx + " nonfinite.nan");
  c.pos_inf = v.at("pos_inf", ctx).as_uint64(ctx + " nonfinite.pos_inf");
  c.neg_inf = v.at("neg_inf", ctx).as_uint64(ctx + " nonfinite.neg_inf");
  return c;
}

}  // namespace quench::detail
