#pragma once
// External tensor data (onnx/docs/ExternalData.md): a TensorProto with data_location = EXTERNAL
// and external_data entries `location` (path relative to the model's directory), `offset` and
// `length` in bytes (optional), `checksum` (ignored). Files are memory-mapped read-only and
// tensors view the mapping without copying; a mapping lives as long as any tensor using it.
// When the last tensor viewing a slice goes (a pass replaced the weight), the slice's pages leave
// the resident set: converting or quantizing a multi-gigabyte model weight by weight then holds
// the new weights and one old one, not the whole mapped file beside them.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "quench/core/error.hpp"
#include "quench/core/mapped_file.hpp"

namespace quench::onnx {

/// A read-only memory mapping of a whole file (quench/core/mapped_file.hpp).
using quench::mapped_file;

/// Resolves `location` inside `base_dir`, refusing absolute paths and anything that escapes the
/// directory (".." components, symlinks pointing outside), as ONNX's external_data_helper does.
inline std::filesystem::path resolve_external_location(const std::filesystem::path& base_dir, const std::string& location,
                                                       const std::string& context) {
  namespace fs = std::filesystem;
  const fs::path rel(location);
  if (location.empty() || rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    throw_error(errc::invalid_model, context, "external data location '" + location + "' must be a relative path");
  for (const auto& part : rel)
    if (part == "..") throw_error(errc::invalid_model, context, "external data location '" + location + "' leaves the model directory");
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(base_dir.empty() ? fs::path(".") : base_dir, ec);
  const fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) throw_error(errc::io_error, context, "cannot resolve external data location '" + location + "'");
  // Symlinks may still point elsewhere: the canonical path must stay under the canonical base.
  auto b = base.begin();
  auto f = full.begin();
  for (; b != base.end(); ++b, ++f)
    if (f == full.end() || *b != *f)
      throw_error(errc::invalid_model, context, "external data location '" + location + "' resolves outside the model directory");
  return full;
}

/// Maps each external file once per load.
class external_data_cache {
 public:
  explicit external_data_cache(std::filesystem::path base_dir) : base_dir_(std::move(base_dir)) {}

  /// A read-only shared pointer to `length` bytes at `offset` of `location`.
  std::shared_ptr<std::byte> slice(const std::string& location, std::uint64_t offset, std::uint64_t length,
                                   const std::string& context) {
    const auto path = resolve_external_location(base_dir_, location, context);
    auto& file = files_[path.string()];
    if (!file) file = std::make_shared<mapped_file>(path);
    if (offset > file->size() || length > file->size() - offset)
      throw_error(errc::invalid_model, context,
                  "external data [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                      ") lies beyond the end of '" + location + "' (" + std::to_string(file->size()) + " bytes)");
    // The deleter keeps the mapping alive until it runs. madvise(MADV_DONTNEED) on these
    // read-only private pages only drops them from this process; whole pages only, so a
    // neighbour sharing an edge page keeps it, and any page touched again is re-read from the file.
    std::shared_ptr<mapped_file> keep = file;
    return std::shared_ptr<std::byte>(file->data() + offset,
                                      [keep, offset, length](std::byte*) { keep->release(offset, length); });
  }

 private:
  std::filesystem::path base_dir_;
  std::map<std::string, std::shared_ptr<mapped_file>> files_;
};

}  // namespace quench::onnx
