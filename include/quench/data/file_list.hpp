#pragma once
// file_list: the files of a data set given as a directory or as a list file, the two forms that
// calibration tools take (TensorRT's samples and ncnn2table read an image list, PaddleOCR a
// directory).
//
//     auto files = quench::data::list_files("calib/", {".npy", ".npz"});   // sorted by name
//     auto same  = quench::data::list_files("calib.txt", {});              // one path a line
//
// A directory gives its regular files whose extension is one of `extensions` (case-insensitive),
// sorted by file name (byte order), so every run and every shard sees the same order. A list file
// holds one path per line, relative to the list file's folder unless absolute; blank lines and
// lines starting with '#' are skipped; its order is kept.

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quench/core/error.hpp"

namespace quench::data {

namespace detail {
inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace detail

/// Files of the directory or list file `where`; `extensions` (".npy", ".png", ...) filters a
/// directory (empty: every regular file). An empty result is an error: data was asked for.
inline std::vector<std::filesystem::path> list_files(const std::filesystem::path& where, const std::vector<std::string>& extensions) {
  namespace fs = std::filesystem;
  const std::string ctx = "'" + where.string() + "'";
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(where, ec)) {
    for (const auto& e : fs::directory_iterator(where, ec)) {
      if (!e.is_regular_file(ec)) continue;
      const std::string ext = detail::lower(e.path().extension().string());
      if (extensions.empty() || std::any_of(extensions.begin(), extensions.end(), [&](const std::string& x) { return detail::lower(x) == ext; }))
        files.push_back(e.path());
    }
    if (ec) throw_error(errc::io_error, ctx, "cannot list the directory: " + ec.message());
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
    if (files.empty()) {
      std::string all;
      for (const auto& x : extensions) all += (all.empty() ? "" : ", ") + x;
      throw_error(errc::invalid_argument, ctx, "expected files (" + (all.empty() ? std::string("any") : all) + ") in the directory, found none");
    }
    return files;
  }
  std::ifstream in(where);
  if (!in) throw_error(errc::io_error, ctx, "cannot open the directory or list file");
  const fs::path base = where.parent_path();
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    std::size_t b = 0;
    while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
    if (b == line.size() || line[b] == '#') continue;
    fs::path p(line.substr(b));
    files.push_back(p.is_absolute() ? p : base / p);
  }
  if (files.empty()) throw_error(errc::invalid_argument, ctx, "expected one file path per line, found none");
  return files;
}

}  // namespace quench::data
