#include "ringsock/detail/frame_allocator.hpp"

#include <new>

namespace ringsock::detail {
namespace {

constexpr std::size_t granule = 64;
constexpr std::size_t classes = 64;           // frames up to 4 KiB are recycled
constexpr std::size_t max_cached = 4096;      // per class: bounds what an idle thread keeps

struct free_block {
  free_block* next;
};

// Frames may be freed on another thread than the one that made them (a task handed across
// contexts); they then simply join that thread's lists.
//
// Trivially destructible and constant-initialized on purpose: such a thread_local is reached
// without the TLS wrapper and its init guard (in a shared library that was two calls per frame
// on the churn path). The lists are emptied at thread exit by `frame_reaper`, made at the
// thread's first allocation (or first free, for a thread that only frees others' frames).
struct frame_cache {
  free_block* head[classes];
  std::size_t count[classes];
  bool reaper_set;
};

constinit thread_local frame_cache cache{};

struct frame_reaper {
  ~frame_reaper() {
    for (std::size_t c = 0; c < classes; ++c)
      while (free_block* b = cache.head[c]) {
        cache.head[c] = b->next;
        ::operator delete(b);
      }
    // Dead from here on: a frame freed later (by a thread_local destroyed after this one) goes
    // straight back to operator delete instead of onto a list nobody empties.
    for (std::size_t c = 0; c < classes; ++c) cache.count[c] = max_cached;
    cache.reaper_set = true;
  }
};

void set_reaper() noexcept {
  thread_local frame_reaper reaper;
  (void)reaper;
  cache.reaper_set = true;
}

std::size_t class_of(std::size_t n) noexcept { return (n + granule - 1) / granule - 1; }

}  // namespace

void* frame_alloc(std::size_t n) {
  const std::size_t c = class_of(n);
  if (c >= classes) return ::operator new(n);
  frame_cache& k = cache;  // one TLS lookup
  if (free_block* b = k.head[c]) {
    k.head[c] = b->next;
    --k.count[c];
    return b;
  }
  // The reaper is made with the thread's first frame, so it outlives whatever that thread
  // builds afterwards (thread_locals are destroyed in reverse order of construction).
  if (!k.reaper_set) set_reaper();
  return ::operator new((c + 1) * granule);
}

void frame_free(void* p, std::size_t n) noexcept {
  const std::size_t c = class_of(n);
  frame_cache& k = cache;
  if (c >= classes || k.count[c] >= max_cached) {
    ::operator delete(p);
    return;
  }
  if (!k.reaper_set) set_reaper();
  auto* b = static_cast<free_block*>(p);
  b->next = k.head[c];
  k.head[c] = b;
  ++k.count[c];
}

}  // namespace ringsock::detail
