#pragma once
// Writing output files so that a failure never leaves a half-written file where the user's file
// was: write to a temporary name in the same directory, then rename over the target (rename is
// atomic within one file system on POSIX).

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#  include <unistd.h>
#endif

#include "quench/core/error.hpp"

namespace quench {

namespace detail {
inline std::filesystem::path temporary_sibling(const std::filesystem::path& target) {
  // Unique per process and call, so concurrent writers never share a temporary file.
  static std::atomic<unsigned> counter{0};
#if defined(__unix__) || defined(__APPLE__)
  const long pid = static_cast<long>(::getpid());
#else
  const long pid = 0;
#endif
  std::filesystem::path tmp = target;
  tmp += ".quench-tmp-" + std::to_string(pid) + "-" + std::to_string(counter.fetch_add(1));
  return tmp;
}
}  // namespace detail

/// Calls `write(std::ofstream&)` on a temporary file beside `path`, then renames it to `path`.
/// If `write` throws or the stream fails, the temporary is removed and `path` is untouched.
///
///     quench::write_file_atomically("out.bin", [&](std::ofstream& f) { f.write(buf, n); });
template <class Writer>
void write_file_atomically(const std::filesystem::path& path, Writer&& write) {
  const auto tmp = detail::temporary_sibling(path);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw_error(errc::io_error, {}, "cannot create '" + tmp.string() + "'");
      std::forward<Writer>(write)(out);
      out.flush();
      if (!out) throw_error(errc::io_error, {}, "writing '" + tmp.string() + "' failed");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw_error(errc::io_error, {}, "cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace quench
