#pragma once
// npz_archive: the members of a NumPy .npz file (a zip archive of .npy files), memory-mapped.
//
//     quench::data::npz_archive z("calib.npz");
//     for (const auto& m : z.members()) ...          // m.name: "input" for "input.npy"
//     const std::byte* p = z.member_data(z.find("input"));   // the member's .npy bytes, mapped
//
// Only stored (uncompressed) members are read: np.savez stores, and a stored member can be
// memory-mapped and read one batch at a time like a .npy file, so a large archive costs the
// memory of one batch. np.savez_compressed deflates; a deflated member cannot be sliced without
// decompressing everything before the slice, and decoding it needs zlib, which the header-only
// core does not link. Such members are refused with an error that says to save with np.savez.
// Zip64 (np.savez writes it for members over 4 GiB) is read; encrypted or multi-disk archives
// are refused.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/mapped_file.hpp"

namespace quench::data {

class npz_archive {
 public:
  struct member {
    std::string name;          ///< the file name in the archive without ".npy"
    std::uint64_t offset = 0;  ///< of the member's data (its .npy bytes) in the file
    std::uint64_t size = 0;    ///< stored bytes
    int method = 0;            ///< zip compression method: 0 stored, 8 deflate
  };

  explicit npz_archive(const std::filesystem::path& path)
      : path_(path.string()), file_(std::make_shared<mapped_file>(path, "calibration data file")) {
    const std::string ctx = "'" + path_ + "'";
    const std::byte* d = file_->data();
    const std::uint64_t n = file_->size();
    // End of central directory: the last 22 + up to 65535 comment bytes.
    if (n < 22) throw_error(errc::parse_error, ctx, "not a .npz (zip) archive: too short or truncated");
    std::uint64_t eocd = UINT64_MAX;
    for (std::uint64_t p = n - 22 + 1; p-- > 0 && n - p <= 22 + 65535;)
      if (u32(d + p) == 0x06054b50u) {
        eocd = p;
        break;
      }
    if (eocd == UINT64_MAX)
      throw_error(errc::parse_error, ctx, "not a .npz (zip) archive or truncated: no end-of-central-directory record");
    std::uint64_t entries = u16(d + eocd + 10), cd_size = u32(d + eocd + 12), cd_offset = u32(d + eocd + 16);
    if (u16(d + eocd + 4) != 0 || u16(d + eocd + 6) != 0) throw_error(errc::parse_error, ctx, "multi-disk zip archives are not supported");
    if (eocd >= 20 && u32(d + eocd - 20) == 0x07064b50u) {  // zip64 end-of-central-directory locator
      const std::uint64_t z = u64(d + eocd - 20 + 8);
      if (z > n || n - z < 56 || u32(d + z) != 0x06064b50u) throw_error(errc::parse_error, ctx, "bad zip64 end-of-central-directory record");
      entries = u64(d + z + 32);
      cd_size = u64(d + z + 40);
      cd_offset = u64(d + z + 48);
    }
    if (cd_offset > n || n - cd_offset < cd_size) throw_error(errc::parse_error, ctx, "truncated zip archive: central directory outside the file");
    std::uint64_t p = cd_offset;
    for (std::uint64_t e = 0; e < entries; ++e) {
      if (cd_offset + cd_size - p < 46 || u32(d + p) != 0x02014b50u) throw_error(errc::parse_error, ctx, "bad zip central directory entry");
      const std::uint64_t flags = u16(d + p + 8), method = u16(d + p + 10);
      std::uint64_t csize = u32(d + p + 20), usize = u32(d + p + 24), local = u32(d + p + 42);
      const std::uint64_t name_len = u16(d + p + 28), extra_len = u16(d + p + 30), comment_len = u16(d + p + 32);
      if (cd_offset + cd_size - p < 46 + name_len + extra_len + comment_len) throw_error(errc::parse_error, ctx, "bad zip central directory entry");
      std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
      // Zip64 extra field: 64-bit values for exactly the fields that hold 0xFFFFFFFF.
      for (std::uint64_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
        const std::uint64_t id = u16(d + x), len = u16(d + x + 2);
        if (x + 4 + len > p + 46 + name_len + extra_len) throw_error(errc::parse_error, ctx, "bad zip extra field of '" + name + "'");
        if (id == 1) {
          std::uint64_t y = x + 4;
          auto take = [&](std::uint64_t& v) {
            if (v != 0xFFFFFFFFu) return;
            if (y + 8 > x + 4 + len) throw_error(errc::parse_error, ctx, "bad zip64 extra field of '" + name + "'");
            v = u64(d + y);
            y += 8;
          };
          take(usize);
          take(csize);
          take(local);
        }
        x += 4 + len;
      }
      p += 46 + name_len + extra_len + comment_len;
      if (flags & 1u) throw_error(errc::invalid_argument, ctx, "member '" + name + "' is encrypted");
      if (local > n || n - local < 30 || u32(d + local) != 0x04034b50u)
        throw_error(errc::parse_error, ctx, "truncated or corrupt zip archive: no local header for member '" + name + "'");
      const std::uint64_t data = local + 30 + u16(d + local + 26) + u16(d + local + 28);
      if (data > n || n - data < csize)
        throw_error(errc::parse_error, ctx, "truncated archive: member '" + name + "' needs " + std::to_string(csize) + " bytes, found " +
                                                std::to_string(data > n ? 0 : n - data));
      member m;
      m.name = name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 ? name.substr(0, name.size() - 4) : name;
      m.offset = data;
      m.size = csize;
      m.method = static_cast<int>(method);
      if (method == 0 && csize != usize) throw_error(errc::parse_error, ctx, "stored member '" + name + "' has different stored and original sizes");
      members_.push_back(std::move(m));
    }
    if (members_.empty()) throw_error(errc::invalid_argument, ctx, "the archive holds no arrays");
  }

  const std::vector<member>& members() const noexcept { return members_; }
  const std::string& path() const noexcept { return path_; }
  const std::shared_ptr<mapped_file>& file() const noexcept { return file_; }

  /// The member named `name` (without ".npy"), or nullptr.
  const member* find(const std::string& name) const noexcept {
    for (const member& m : members_)
      if (m.name == name) return &m;
    return nullptr;
  }

  /// The mapped bytes of a stored member; a compressed one is refused (see the header comment).
  const std::byte* member_data(const member& m) const {
    if (m.method != 0)
      throw_error(errc::invalid_argument, "'" + path_ + "' array '" + m.name + "'",
                  std::string("is compressed (") + (m.method == 8 ? "deflate, np.savez_compressed" : "zip method " + std::to_string(m.method)) +
                      "); quench memory-maps arrays and reads only stored ones: save with np.savez instead of np.savez_compressed");
    return file_->data() + m.offset;
  }

  /// "a, b, c": the member names, for error messages.
  std::string names() const {
    std::string s;
    for (const member& m : members_) s += (s.empty() ? "'" : ", '") + m.name + "'";
    return s;
  }

 private:
  static std::uint64_t u16(const std::byte* p) noexcept {
    return static_cast<std::uint64_t>(p[0]) | static_cast<std::uint64_t>(p[1]) << 8;
  }
  static std::uint64_t u32(const std::byte* p) noexcept { return u16(p) | u16(p + 2) << 16; }
  static std::uint64_t u64(const std::byte* p) noexcept { return u32(p) | u32(p + 4) << 32; }

  std::string path_;
  std::shared_ptr<mapped_file> file_;
  std::vector<member> members_;
};

}  // namespace quench::data
