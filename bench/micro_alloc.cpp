// The counting operator new of the micro-benchmarks (its own file: GCC warns about a free() of
// new'd memory when the replacement sits in the same translation unit as its callers).
#include <atomic>
#include <cstdlib>
#include <new>

std::atomic<std::size_t> g_news{0};

void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
