#pragma once
// memory_pool: recycles tensor storage between the operators of a model run and between runs,
// so that a run neither returns its large buffers to the operating system nor faults fresh pages
// in for the next operator (with plain malloc the page faults alone were a quarter of a MobileNet
// run).
//
// A pool is installed for the current thread with memory_pool::scope; while a scope is active,
// every owned tensor created on that thread takes its storage from the pool, and the storage goes
// back to the pool when the last tensor referring to it is gone, whichever thread that is. The
// storage keeps the pool alive, so a tensor may outlive the pool's owner.
//
// Size classes: a request is rounded up to its class (multiples of 64 bytes up to 4 KiB, then
// eight classes per power of two, so at most 1/8 is wasted) and any free buffer of the class
// serves it. Buffers never move between classes, so one request cannot take the buffer a later,
// slightly larger one needed.
//
// Memory bound: the owner marks the end of each unit of work (an executor: each run) with
// end_epoch(), which frees the cached buffers the epoch did not need: per class it keeps as many
// buffers as were live at once during the epoch. So after one run the pool holds exactly the
// working set of a run, and a second run with the same shapes is served entirely from the cache;
// when shapes change, the classes that fell out of use are freed at the end of the next run.
//
// Thread safety: allocation and release lock a mutex; the installed pool is per thread.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "quench/core/config.hpp"

namespace quench {

class memory_pool : public std::enable_shared_from_this<memory_pool> {
 public:
  /// Create pools with std::make_shared: allocations hold a shared_ptr to the pool.
  memory_pool() = default;
  memory_pool(const memory_pool&) = delete;
  memory_pool& operator=(const memory_pool&) = delete;
  ~memory_pool() {
    for (auto& [size, c] : classes_)
      for (void* p : c.free) std::free(p);
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

  /// The size class of a request: what a buffer serving it really holds.
  static std::size_t size_class(std::size_t bytes) noexcept {
    constexpr std::size_t a = QUENCH_TENSOR_ALIGNMENT;
    if (bytes <= 4096) return std::max<std::size_t>(a, (bytes + a - 1) / a * a);
    std::size_t top = 4096;
    while (top * 2 <= bytes) top *= 2;
    const std::size_t step = top / 8;
    return (bytes + step - 1) / step * step;
  }

  /// Aligned, uninitialised storage for at least `bytes` that returns to this pool when released.
  std::shared_ptr<std::byte> allocate(std::size_t bytes) {
    const std::size_t size = size_class(bytes);
    void* p = take(size);
    if (!p) {
      p = std::aligned_alloc(QUENCH_TENSOR_ALIGNMENT, size);
      if (!p) {
        give_back(nullptr, size);
        throw std::bad_alloc();
      }
    }
    std::shared_ptr<memory_pool> self = shared_from_this();
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [self, size](std::byte* q) { self->give_back(q, size); });
  }

  /// Ends a unit of work: frees, per size class, the cached buffers beyond the most that were
  /// live at once since the previous call.
  void end_epoch() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = classes_.begin(); it != classes_.end();) {
      size_class_state& c = it->second;
      const std::size_t keep = c.max_live > c.live ? c.max_live - c.live : 0;
      while (c.free.size() > keep) {
        std::free(c.free.back());
        c.free.pop_back();
        cached_ -= it->first;
      }
      c.max_live = c.live;
      if (c.live == 0 && c.free.empty()) it = classes_.erase(it);
      else ++it;
    }
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
    for (auto& [size, c] : classes_) {
      for (void* p : c.free) std::free(p);
      c.free.clear();
    }
    cached_ = 0;
  }

 private:
  struct size_class_state {
    std::vector<void*> free;   ///< cached buffers of the class
    std::size_t live = 0;      ///< buffers of the class in use
    std::size_t max_live = 0;  ///< most in use at once this epoch
  };

  /// A cached buffer of class `size`, or null (the caller allocates one); counted live either way.
  void* take(std::size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_class_state& c = classes_[size];
    void* p = nullptr;
    if (!c.free.empty()) {
      p = c.free.back();
      c.free.pop_back();
      cached_ -= size;
    }
    c.max_live = std::max(c.max_live, ++c.live);
    live_ += size;
    peak_ = std::max(peak_, live_);
    return p;
  }

  /// Returns a buffer of class `size` to the cache (null: only the accounting of a failed
  /// allocation).
  void give_back(void* p, std::size_t size) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    size_class_state& c = classes_[size];  // exists: take() created it
    --c.live;
    live_ -= size;
    if (!p) return;
    try {
      c.free.push_back(p);
      cached_ += size;
    } catch (...) {
      std::free(p);  // no memory to remember it: give it to the system instead
    }
  }

  mutable std::mutex mutex_;
  std::map<std::size_t, size_class_state> classes_;
  std::size_t live_ = 0, cached_ = 0, peak_ = 0;
};

}  // namespace quench
