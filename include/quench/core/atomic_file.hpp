#pragma once
// Writing output files so that a failure never leaves a half-written file where the user's file
// was: write to a temporary name in the same directory, then rename over the target (rename is
// atomic within one file system on POSIX).
//
// A signal (Ctrl-C) during the write would kill the process before the catch block removes the
// temporary. Programs call quench::remove_temporaries_on_signal() once at start: SIGINT, SIGTERM
// and SIGHUP then unlink every temporary being written (async-signal-safe: only unlink) and end
// the process as the signal would have. The target file is never touched, so an interrupted run
// leaves neither a partial output nor a temporary.
//
//     int main() { quench::remove_temporaries_on_signal(); ... }

#include <atomic>
#include <csignal>
#include <cstring>
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

/// Paths of the temporaries being written, for the signal handler: lock-free slots that it can
/// read without allocating. More concurrent writers than slots are simply not tracked.
inline std::atomic<char*>* pending_temporaries() noexcept {
  static std::atomic<char*> slots[64] = {};
  return slots;
}
inline constexpr int pending_slots = 64;

/// Tracks `path` while it exists under its temporary name; the destructor stops tracking.
class pending_temporary {
 public:
  explicit pending_temporary(const std::filesystem::path& path) {
    const std::string s = path.string();
    char* copy = new char[s.size() + 1];
    std::memcpy(copy, s.c_str(), s.size() + 1);
    for (int i = 0; i < pending_slots; ++i) {
      char* expected = nullptr;
      if (pending_temporaries()[i].compare_exchange_strong(expected, copy)) {
        slot_ = i;
        return;
      }
    }
    delete[] copy;
  }
  pending_temporary(const pending_temporary&) = delete;
  pending_temporary& operator=(const pending_temporary&) = delete;
  ~pending_temporary() {
    if (slot_ >= 0) delete[] pending_temporaries()[slot_].exchange(nullptr);
  }

 private:
  int slot_ = -1;
};

extern "C" inline void remove_temporaries_and_reraise(int sig) {
#if defined(__unix__) || defined(__APPLE__)
  for (int i = 0; i < pending_slots; ++i)
    if (const char* p = pending_temporaries()[i].load()) ::unlink(p);
#endif
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace detail

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the temporaries of
/// write_file_atomically in flight, then end the process with the signal's default action.
/// For programs (the quench CLI calls it first thing); a library never installs handlers.
inline void remove_temporaries_on_signal() {
  for (int sig : {SIGINT, SIGTERM
#ifdef SIGHUP
                  , SIGHUP
#endif
       })
    std::signal(sig, detail::remove_temporaries_and_reraise);
}

/// Calls `write(std::ofstream&)` on a temporary file beside `path`, then renames it to `path`.
/// If `write` throws or the stream fails, the temporary is removed and `path` is untouched.
///
///     quench::write_file_atomically("out.bin", [&](std::ofstream& f) { f.write(buf, n); });
template <class Writer>
void write_file_atomically(const std::filesystem::path& path, Writer&& write) {
  const auto tmp = detail::temporary_sibling(path);
  const detail::pending_temporary tracked(tmp);
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
