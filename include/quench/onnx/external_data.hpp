#pragma once
// External tensor data (onnx/docs/ExternalData.md): a TensorProto with data_location = EXTERNAL
// and external_data entries `location` (path relative to the model's directory), `offset` and
// `length` in bytes (optional), `checksum` (ignored). Files are memory-mapped read-only and
// tensors view the mapping without copying; a mapping lives as long as any tensor using it.

#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
// <sys/mman.h> defines MAP_TYPE, which is also an enumerator in onnx/defs/parser.h (pulled in by
// onnx/checker.h); quench never uses the flag mask, so it is removed to let both headers coexist.
#ifdef MAP_TYPE
#  undef MAP_TYPE
#endif

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "quench/core/error.hpp"

namespace quench::onnx {

/// A read-only memory mapping of a whole file.
class mapped_file {
 public:
  explicit mapped_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error(errc::io_error, {}, "cannot open external data file '" + path.string() + "'");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw_error(errc::io_error, {}, "cannot stat external data file '" + path.string() + "'");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw_error(errc::io_error, {}, "cannot map external data file '" + path.string() + "'");
      }
      data_ = static_cast<std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file's pages reachable
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() {
    if (data_) ::munmap(data_, size_);
  }
  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

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
    return std::shared_ptr<std::byte>(file, file->data() + offset);
  }

 private:
  std::filesystem::path base_dir_;
  std::map<std::string, std::shared_ptr<mapped_file>> files_;
};

}  // namespace quench::onnx
