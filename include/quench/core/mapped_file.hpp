#pragma once
// mapped_file: a read-only memory mapping of a whole file (POSIX mmap). Tensors view external
// model data and large .npy calibration arrays through it without reading them into memory: the
// kernel pages in what is touched and can drop it again, so memory stays flat however large the
// file is.

#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
// <sys/mman.h> defines MAP_TYPE, which is also an enumerator in onnx/defs/parser.h (pulled in by
// onnx/checker.h); quench never uses the flag mask, so it is removed to let both headers coexist.
#ifdef MAP_TYPE
#  undef MAP_TYPE
#endif

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>

#include "quench/core/error.hpp"

namespace quench {

/// A read-only memory mapping of a whole file; `what` names the file's role in error messages.
///
///     quench::mapped_file f("calib.npy", "calibration data file");
///     const std::byte* p = f.data();  // f.size() bytes
class mapped_file {
 public:
  explicit mapped_file(const std::filesystem::path& path, const std::string& what = "external data file") {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error(errc::io_error, {}, "cannot open " + what + " '" + path.string() + "'");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw_error(errc::io_error, {}, "cannot stat " + what + " '" + path.string() + "'");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw_error(errc::io_error, {}, "cannot map " + what + " '" + path.string() + "'");
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

  /// Tells the kernel that bytes [offset, offset + length) will not be read again soon: the
  /// whole pages inside the range leave the resident set (they are read from the file again if
  /// touched). Streaming readers call it after each batch so that RSS stays flat.
  void release(std::size_t offset, std::size_t length) const noexcept {
    if (!data_ || offset >= size_) return;
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t end = std::min(size_, offset + length);
    const std::size_t lo = (offset + page - 1) / page * page, hi = end / page * page;
    if (hi > lo) ::madvise(data_ + lo, hi - lo, MADV_DONTNEED);
  }

  /// As release(), but every page touching the range leaves the resident set, the partial pages
  /// at both ends too. For readers that stream through a file batch after batch: with release()
  /// the page holding each batch boundary is released by neither batch, so one page per batch
  /// stays resident and RSS grows with the number of batches. The mapping is read-only and never
  /// written, so dropping a page a neighbour still reads only costs a re-read from the page cache.
  void release_streamed(std::size_t offset, std::size_t length) const noexcept {
    if (!data_ || offset >= size_ || length == 0) return;
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t lo = offset / page * page, hi = std::min(size_, offset + length);
    if (hi > lo) ::madvise(data_ + lo, hi - lo, MADV_DONTNEED);
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace quench
