#pragma once
// quench::error: the one exception type quench throws for bad user input.

#include <stdexcept>
#include <string>
#include <string_view>

namespace quench {

/// Stable error codes. The numbers never change meaning; new codes are appended.
enum class errc : int {
  invalid_argument = 1,   ///< an argument or option has a value the function cannot use
  shape_mismatch = 2,     ///< ranks or dimensions disagree with what was expected
  dtype_mismatch = 3,     ///< a tensor has another element type than required
  unsupported_dtype = 4,  ///< the element type is valid ONNX but not handled here
  out_of_range = 5,       ///< an index, axis or count is outside its valid range
  invalid_value = 6,      ///< a numeric value is unusable (zero or negative scale, NaN, ...)
  io_error = 7,           ///< a file could not be read or written
  parse_error = 8,        ///< malformed or truncated serialized data
  unsupported_op = 9,     ///< an operator or attribute combination quench does not implement
  invalid_model = 10,     ///< the model violates the ONNX spec
  not_finite = 11,        ///< NaN or Inf where a finite value is required
};

/// The short name used in messages, e.g. "shape_mismatch".
constexpr std::string_view errc_name(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::shape_mismatch: return "shape_mismatch";
    case errc::dtype_mismatch: return "dtype_mismatch";
    case errc::unsupported_dtype: return "unsupported_dtype";
    case errc::out_of_range: return "out_of_range";
    case errc::invalid_value: return "invalid_value";
    case errc::io_error: return "io_error";
    case errc::parse_error: return "parse_error";
    case errc::unsupported_op: return "unsupported_op";
    case errc::invalid_model: return "invalid_model";
    case errc::not_finite: return "not_finite";
  }
  return "unknown";
}

/// Thrown for every precondition on user data. `what()` reads
/// `[quench.shape_mismatch] tensor 'W': expected rank 4, found 2`;
/// `code()` and `context()` give the parts separately.
class error : public std::runtime_error {
 public:
  error(errc code, std::string context, const std::string& message)
      : std::runtime_error(format(code, context, message)), code_(code), context_(std::move(context)) {}

  errc code() const noexcept { return code_; }
  /// What the error is about ("tensor 'W'", "node 'conv_3' input 'W'"); may be empty.
  const std::string& context() const noexcept { return context_; }

 private:
  static std::string format(errc code, const std::string& context, const std::string& message) {
    std::string s = "[quench.";
    s += errc_name(code);
    s += "] ";
    if (!context.empty()) {
      s += context;
      s += ": ";
    }
    s += message;
    return s;
  }

  errc code_;
  std::string context_;
};

/// The one throw site, kept out of line of the callers' fast paths.
[[noreturn]] inline void throw_error(errc code, std::string context, const std::string& message) {
  throw error(code, std::move(context), message);
}

/// "tensor 'name'" or "" for an unnamed tensor: the usual context string.
inline std::string tensor_context(std::string_view name) {
  if (name.empty()) return {};
  std::string s = "tensor '";
  s += name;
  s += '\'';
  return s;
}

/// Throws `errc::shape_mismatch` with "expected ..., found ...".
[[noreturn]] inline void throw_shape_mismatch(std::string context, const std::string& expected,
                                              const std::string& found) {
  throw_error(errc::shape_mismatch, std::move(context), "expected " + expected + ", found " + found);
}

/// Throws `errc::invalid_argument` with "expected ..., found ...".
[[noreturn]] inline void throw_invalid_argument(std::string context, const std::string& expected,
                                                const std::string& found) {
  throw_error(errc::invalid_argument, std::move(context), "expected " + expected + ", found " + found);
}

}  // namespace quench
