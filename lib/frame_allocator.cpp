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
struct frame_cache {
  free_block* head[classes] = {};
  std::size_t count[classes] = {};
  ~frame_cache() {
    for (std::size_t c = 0; c < classes; ++c)
      while (free_block* b = head[c]) {
        head[c] = b->next;
        ::operator delete(b);
      }
  }
};

thread_local frame_cache cache;

std::size_t class_of(std::size_t n) noexcept { return (n + granule - 1) / granule - 1; }

}  // namespace

void* frame_alloc(std::size_t n) {
  std::size_t c = class_of(n);
  if (c >= classes) return ::operator new(n);
  if (free_block* b = cache.head[c]) {
    cache.head[c] = b->next;
    --cache.count[c];
    return b;
  }
  return ::operator new((c + 1) * granule);
}

void frame_free(void* p, std::size_t n) noexcept {
  std::size_t c = class_of(n);
  if (c >= classes || cache.count[c] >= max_cached) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = cache.head[c];
  cache.head[c] = b;
  ++cache.count[c];
}

}  // namespace ringsock::detail
