#include "ringsock/detail/buffer_ring.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <new>
#include <utility>

namespace ringsock::detail {

namespace {
// Kernel UAPI newer than liburing 2.3's header.
constexpr std::uint16_t pbuf_ring_inc = 2;             // IOU_PBUF_RING_INC (6.12)
constexpr unsigned max_entries = 32768;

#ifdef RINGSOCK_FAULT_INJECTION
}  // namespace
thread_local int buffer_ring_refusal = 0;  // testing/fault_plan.hpp: refuse_next_buffer_ring()
namespace {
#endif

void* map(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
}  // namespace

buffer_ring::~buffer_ring() {
  if (entries_) ::munmap(entries_, entries_bytes_);
  if (base_) ::munmap(base_, base_bytes_);
}

int buffer_ring::setup(io_uring& ring, unsigned count, unsigned size) noexcept {
  if (count == 0 || size == 0) return -EINVAL;
#ifdef RINGSOCK_FAULT_INJECTION
  if (int err = std::exchange(buffer_ring_refusal, 0)) return -err;
#endif
  unsigned n = 1;
  while (n < count && n < max_entries) n *= 2;
  entries_bytes_ = n * sizeof(io_uring_buf);
  base_bytes_ = static_cast<std::size_t>(n) * size;
  auto* entries = static_cast<io_uring_buf_ring*>(map(entries_bytes_));
  base_ = static_cast<std::byte*>(map(base_bytes_));
  try {
    next_offset_.assign(n, 0);
    pieces_.assign(n, 0);
    out_.assign(n, 0);
  } catch (const std::bad_alloc&) {
    if (entries) ::munmap(entries, entries_bytes_);
    return -ENOMEM;
  }
  if (!entries || !base_) {
    if (entries) ::munmap(entries, entries_bytes_);
    return -ENOMEM;
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(entries);
  reg.ring_entries = n;
  reg.bgid = group;
  reg.pad = pbuf_ring_inc;  // `flags` in newer headers
  int r = io_uring_register_buf_ring(&ring, &reg, 0);
  incremental_ = r == 0;
  if (r == -EINVAL) {  // a kernel before 6.12: whole buffers per completion
    reg.pad = 0;
    r = io_uring_register_buf_ring(&ring, &reg, 0);
  }
  if (r != 0) {
    ::munmap(entries, entries_bytes_);
    incremental_ = false;
    return r;
  }
  entries_ = entries;
  registered_ = true;
  count_ = n;
  size_ = size;
  io_uring_buf_ring_init(entries_);
  const int mask = io_uring_buf_ring_mask(n);
  for (unsigned i = 0; i < n; ++i)
    io_uring_buf_ring_add(entries_, base_ + static_cast<std::size_t>(i) * size, size,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(entries_, static_cast<int>(n));
  return 0;
}

void buffer_ring::unregister(io_uring& ring) noexcept {
  if (registered_) io_uring_unregister_buf_ring(&ring, group);
  registered_ = false;
}


void buffer_ring::put_back(std::uint16_t bid) noexcept {
  out_[bid] = 0;
  next_offset_[bid] = 0;
  --lent_;
  io_uring_buf_ring_add(entries_, base_ + static_cast<std::size_t>(bid) * size_, size_, bid,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(entries_, 1);
}

buffer_waiter buffer_ring::list_end_;

void buffer_ring::wait(buffer_waiter& w) noexcept {
  if (w.next) return;  // already waiting
  w.next = waiters_;
  waiters_ = &w;
}

void buffer_ring::unwait(buffer_waiter& w) noexcept {
  if (!w.next) return;
  for (buffer_waiter** list : {&waiters_, &waking_}) {
    for (buffer_waiter** p = list; *p != &list_end_; p = &(*p)->next) {
      if (*p != &w) continue;
      *p = w.next;
      w.next = nullptr;
      return;
    }
  }
}

void buffer_ring::wake_waiters() noexcept {
  // The ones waiting now, one at a time from a list unwait() also searches: a wake may
  // dispatch completions that close (and unwait) a receiver further down, or make one wait
  // again (it then joins waiters_, for the next wake).
  if (waking_ != &list_end_) return;  // a nested call: the outer one goes on
  waking_ = std::exchange(waiters_, &list_end_);
  while (waking_ != &list_end_) {
    buffer_waiter* w = waking_;
    waking_ = w->next;
    w->next = nullptr;
    w->wake(w);
  }
}

}  // namespace ringsock::detail
