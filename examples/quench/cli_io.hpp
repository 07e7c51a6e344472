#pragma once
// Files the subcommands read and write: whole text files, and NAME=FILE.npy arguments.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/atomic_file.hpp"
#include "quench/core/error.hpp"

namespace quench_cli {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw quench::error(quench::errc::io_error, "'" + path + "'", "cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Writes through a temporary file and a rename: a failure leaves what was there.
inline void write_text(const std::string& path, const std::string& text) {
  quench::write_file_atomically(path, [&](std::ofstream& f) { f << text; });
}

/// "NAME=FILE.npy" arguments of `flag` as (graph input, path) pairs.
inline std::vector<std::pair<std::string, std::filesystem::path>> named_files(const std::vector<std::string>& specs, const std::string& flag) {
  std::vector<std::pair<std::string, std::filesystem::path>> files;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw quench::error(quench::errc::invalid_argument, flag + " '" + s + "'", "expected NAME=FILE.npy");
    files.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return files;
}

}  // namespace quench_cli
