// Recycling allocator for coroutine frames: after warm-up a loop that creates and finishes tasks
// allocates nothing (README, "Errors, cancellation, ownership"). Per-thread free lists by size class; no locks.
#pragma once

#include <cstddef>

namespace ringsock::detail {

void* frame_alloc(std::size_t n);
void frame_free(void* p, std::size_t n) noexcept;

// Base of every promise type: routes the frame's allocation through the recycler.
struct frame_allocated {
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
};

}  // namespace ringsock::detail
