#include "ringsock/detail/frame_allocator.hpp"

#include <cstdint>
#include <cstdlib>
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
// The thread's cache is reached through one pointer of initial-exec TLS: a couple of
// instructions with no __tls_get_addr call, and only 8 bytes of the static TLS block, so the
// library still loads with dlopen. The cache itself is made at the thread's first frame (with
// `frame_reaper`, whose destructor frees it at thread exit and leaves the pointer on
// `dead_cache`: a frame freed after that goes straight to operator delete, since that cache is
// always full, and one made after that comes from operator new, since it is always empty).
struct frame_cache {
  free_block* head[classes];
  std::uint32_t count[classes];
};

constexpr frame_cache full_and_empty() noexcept {
  frame_cache d{};
  for (std::size_t c = 0; c < classes; ++c) d.count[c] = max_cached;
  return d;
}
constinit frame_cache dead_cache = full_and_empty();  // never written: shared by dying threads

[[gnu::tls_model("initial-exec")]] constinit thread_local frame_cache* cache = nullptr;

struct frame_reaper {
  ~frame_reaper() {
    frame_cache* k = cache;
    for (std::size_t c = 0; c < classes; ++c)
      while (free_block* b = k->head[c]) {
        k->head[c] = b->next;
        ::operator delete(b);
      }
    cache = &dead_cache;
    std::free(k);
  }
};

// The thread's first frame (made or freed): its cache, or null when there is no memory for it.
[[gnu::noinline]] frame_cache* make_cache() noexcept {
  // calloc, not new: the cache is the allocator's own memory, outside what operator new counts.
  auto* k = static_cast<frame_cache*>(std::calloc(1, sizeof(frame_cache)));
  if (!k) return nullptr;
  cache = k;
  thread_local frame_reaper reaper;  // after `cache` is set: its destructor frees it
  (void)reaper;
  return k;
}

std::size_t class_of(std::size_t n) noexcept { return (n + granule - 1) / granule - 1; }

}  // namespace

// The slow paths, out of line, so that the common ones (a frame from, or back onto, the thread's
// list) cost no register saves.
[[gnu::noinline]] static void* frame_alloc_slow(std::size_t n, std::size_t c, frame_cache* k) {
  if (c >= classes) return ::operator new(n);
  if (!k) make_cache();
  return ::operator new((c + 1) * granule);
}

[[gnu::noinline]] static void frame_free_slow(void* p, std::size_t c, frame_cache* k) noexcept {
  if (!k && c < classes) k = make_cache();
  if (c >= classes || !k || k->count[c] >= max_cached) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = k->head[c];
  k->head[c] = b;
  ++k->count[c];
}

void* frame_alloc(std::size_t n) {
  const std::size_t c = class_of(n);
  frame_cache* k = cache;  // one TLS load
  if (k && c < classes) {
    if (free_block* b = k->head[c]) {
      k->head[c] = b->next;
      --k->count[c];
      return b;
    }
  }
  return frame_alloc_slow(n, c, k);
}

void frame_free(void* p, std::size_t n) noexcept {
  const std::size_t c = class_of(n);
  frame_cache* k = cache;
  if (k && c < classes && k->count[c] < max_cached) {
    auto* b = static_cast<free_block*>(p);
    b->next = k->head[c];
    k->head[c] = b;
    ++k->count[c];
    return;
  }
  frame_free_slow(p, c, k);
}

}  // namespace ringsock::detail
