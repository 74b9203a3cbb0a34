// The provided-buffer ring of one io_uring (ring layer): a pool of equal buffers the kernel picks
// from when a receive completes, so that no receive needs a buffer of its own while it waits.
// Internal: users see it only through io_context::params, features() and stats().
//
//   setup      mmap the ring and the buffers, io_uring_register_buf_ring (liburing 2.3 has no
//              helper); incremental consumption (IOU_PBUF_RING_INC, 6.12+) first, plain on EINVAL;
//              a refused registration leaves the ring disabled (receives go without it)
//   pieces     a CQE with IORING_CQE_F_BUFFER names a buffer; take() turns it into a piece (the
//              bytes of that CQE). With incremental consumption several pieces, even of different
//              sockets, share one buffer, and the kernel keeps the buffer until a CQE comes
//              without IORING_CQE_F_BUF_MORE
//   accounting a buffer is in the ring (available) or lent: the kernel let go of it and some
//              piece of it is still held; release() of its last piece puts it back at once.
//              total = available + lent, always
//   waiters    receivers whose multishot ended with ENOBUFS wait here for a buffer to come back
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringsock::detail {

// The bytes of one completion inside a buffer of the ring. No member initializers: a socket's
// queue of pieces is written before it is read, and zeroing it cost every new connection.
struct buffer_piece {
  std::uint16_t bid;
  std::uint32_t offset;
  std::uint32_t len;
};

// A receiver waiting for buffers (intrusive: no allocation). It is in a list of the ring's
// exactly when `next` is set: the lists end at buffer_ring's sentinel, not at null (so no flag of
// its own: a socket carries one of these).
struct buffer_waiter {
  void (*wake)(buffer_waiter*) noexcept = nullptr;
  void* owner = nullptr;
  buffer_waiter* next = nullptr;
};

class buffer_ring {
 public:
  static constexpr std::uint16_t group = 0;
  static constexpr std::uint32_t cqe_buf_more = 1U << 4;  // IORING_CQE_F_BUF_MORE (6.12; not in 2.3's header)

  buffer_ring() noexcept = default;
  ~buffer_ring();
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;

  // Registers `count` (rounded up to a power of two, at most 32768) buffers of `size` bytes on
  // `ring`. Returns 0, or -errno when the kernel refused (the ring then stays disabled).
  int setup(io_uring& ring, unsigned count, unsigned size) noexcept;
  // Unregisters (before the io_uring goes). The memory stays mapped until destruction.
  void unregister(io_uring& ring) noexcept;

  bool enabled() const noexcept { return entries_ != nullptr; }
  bool incremental() const noexcept { return incremental_; }
  unsigned total() const noexcept { return count_; }
  unsigned lent() const noexcept { return lent_; }
  unsigned available() const noexcept { return count_ - lent_; }
  // Pieces taken and not released (with incremental consumption a piece may sit in a buffer
  // the kernel still fills, so it is held without its buffer being lent).
  unsigned pieces_held() const noexcept { return held_; }
  unsigned buffer_size() const noexcept { return size_; }

  // The piece a CQE with IORING_CQE_F_BUFFER delivered (`len` bytes).
  buffer_piece take(std::uint32_t cqe_flags, std::uint32_t len) noexcept {
    buffer_piece p;
    p.bid = static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
    p.offset = 0;
    p.len = len;
    ++pieces_[p.bid];
    ++held_;
    if (incremental_) {
      p.offset = next_offset_[p.bid];
      next_offset_[p.bid] += len;
      if (cqe_flags & cqe_buf_more) return p;  // the kernel goes on filling this buffer
    }
    out_[p.bid] = 1;
    ++lent_;
    return p;
  }
  const std::byte* data(const buffer_piece& p) const noexcept {
    return base_ + static_cast<std::size_t>(p.bid) * size_ + p.offset;
  }
  // The holder is done with `p`. Returns true when its buffer went back to the ring.
  bool release(const buffer_piece& p) noexcept {
    --held_;
    if (--pieces_[p.bid] != 0 || !out_[p.bid]) return false;
    put_back(p.bid);
    return true;
  }

  void wait(buffer_waiter& w) noexcept;
  void unwait(buffer_waiter& w) noexcept;
  bool has_waiters() const noexcept { return waiters_ != &list_end_; }
  // Wakes every waiter (each re-arms its receive).
  void wake_waiters() noexcept;

 private:
  void put_back(std::uint16_t bid) noexcept;

  io_uring_buf_ring* entries_ = nullptr;
  std::byte* base_ = nullptr;
  std::size_t entries_bytes_ = 0, base_bytes_ = 0;
  unsigned count_ = 0, size_ = 0, lent_ = 0, held_ = 0;
  bool incremental_ = false;
  bool registered_ = false;
  // Per buffer: where the kernel writes next (incremental), pieces held, kernel let go of it.
  std::vector<std::uint32_t> next_offset_;
  std::vector<std::uint16_t> pieces_;
  std::vector<unsigned char> out_;
  static buffer_waiter list_end_;  // where every list of waiters ends
  buffer_waiter* waiters_ = &list_end_;
  buffer_waiter* waking_ = &list_end_;  // taken by wake_waiters(), not woken yet
};

}  // namespace ringsock::detail
