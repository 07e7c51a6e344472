#pragma once
// memory_pool: recycles tensor storage between the operators of a model run, so that a run
// neither returns its large buffers to the operating system nor faults fresh pages in for the
// next operator (the two together were a third of a MobileNet run's time with plain malloc).
//
// A pool is installed for the current thread with memory_pool::scope; while a scope is active,
// every owned tensor created on that thread takes its storage from the pool, and the storage goes
// back to the pool when the last tensor referring to it is gone, whichever thread that is. The
// storage keeps the pool alive, so a tensor may outlive the pool's owner.
//
// Memory bound: the cached (free) bytes never exceed twice the largest live total the pool has
// seen; returning a buffer beyond that frees the longest-cached ones. Why twice: a run allocates
// more distinct buffers than are live at its peak (sizes differ), and with a cache of only the
// peak the first buffers of a run, cached longest, were evicted just before the next run asked
// for them again. With twice the peak, a model run again with the same shapes finds all its
// buffers cached.
//
// Thread safety: allocation and release lock a mutex; the installed pool is per thread.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#include "quench/core/config.hpp"

namespace quench {

class memory_pool : public std::enable_shared_from_this<memory_pool> {
 public:
  /// Create pools with std::make_shared: allocations hold a shared_ptr to the pool.
  memory_pool() = default;
  memory_pool(const memory_pool&) = delete;
  memory_pool& operator=(const memory_pool&) = delete;
  ~memory_pool() {
    for (auto& [size, b] : free_) std::free(b.data);
  }

  /// Installs `pool` as the current thread's pool until the scope ends (scopes nest).
  class scope {
   public:
    explicit scope(std::shared_ptr<memory_pool> pool) noexcept : previous_(current()) { current() = std::move(pool); }
    ~scope() { current() = std::move(previous_); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    std::shared_ptr<memory_pool> previous_;
  };

  /// The current thread's pool, or null.
  static std::shared_ptr<memory_pool>& current() noexcept {
    thread_local std::shared_ptr<memory_pool> pool;
    return pool;
  }

  /// `bytes` (a multiple of QUENCH_TENSOR_ALIGNMENT) of aligned, uninitialised storage that
  /// returns to this pool when released.
  std::shared_ptr<std::byte> allocate(std::size_t bytes) {
    std::size_t size = bytes;
    void* p = take(size);
    if (!p) {
      p = std::aligned_alloc(QUENCH_TENSOR_ALIGNMENT, bytes);
      if (!p) {
        give_back(nullptr, bytes);
        throw std::bad_alloc();
      }
    }
    std::shared_ptr<memory_pool> self = shared_from_this();
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [self, size](std::byte* q) { self->give_back(q, size); });
  }

  /// Bytes in live allocations / cached for reuse / the largest live total so far.
  std::size_t live_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_;
  }
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  std::size_t peak_live_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_;
  }

  /// Frees every cached buffer.
  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, b] : free_) std::free(b.data);
    free_.clear();
    cached_ = 0;
  }

 private:
  /// A cached buffer of exactly `bytes`, else the smallest one at most 1/8 larger (the tail is
  /// wasted while it is live; `bytes` becomes its size), else null. Either way `bytes` is then
  /// counted live.
  void* take(std::size_t& bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(bytes);
    void* p = nullptr;
    if (it != free_.end() && it->first <= bytes + bytes / 8) {
      p = it->second.data;
      bytes = it->first;
      cached_ -= bytes;
      free_.erase(it);
    }
    live_ += bytes;
    if (live_ > peak_) peak_ = live_;
    return p;
  }

  /// Returns a buffer of `bytes` to the cache (null: only the accounting of a failed allocation),
  /// then frees the longest-cached buffers while the cache holds more than twice the peak live set.
  void give_back(void* p, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    live_ -= bytes;
    if (!p) return;
    try {
      free_.emplace(bytes, cached_buffer{p, ++clock_});
      cached_ += bytes;
    } catch (...) {
      std::free(p);  // no memory to remember it: give it to the system instead
      return;
    }
    while (cached_ > 2 * peak_) {
      auto oldest = free_.begin();
      for (auto i = free_.begin(); i != free_.end(); ++i)
        if (i->second.stamp < oldest->second.stamp) oldest = i;
      cached_ -= oldest->first;
      std::free(oldest->second.data);
      free_.erase(oldest);
    }
  }

  struct cached_buffer {
    void* data;
    std::uint64_t stamp;  ///< when it was cached: the oldest goes first
  };

  mutable std::mutex mutex_;
  std::multimap<std::size_t, cached_buffer> free_;  // size -> buffer
  std::uint64_t clock_ = 0;
  std::size_t live_ = 0, cached_ = 0, peak_ = 0;
};

}  // namespace quench
