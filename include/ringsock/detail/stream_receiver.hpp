// The receive side of a stream socket (the data path's "one operation, two views"): one persistent
// multishot receive into the context's buffer ring, a bounded queue of the pieces that arrived
// before anyone asked, and a FIFO of waiting receives. Internal: users never name it.
//
//   state        meaning                                  event                  -> next
//   idle         nothing in the kernel                    a receive must wait,   -> armed
//                                                         or (persistent) the queue drained
//                                                         to half its limit
//   armed        multishot in the kernel [in_kernel]      data, a waiter: copied into its buffer
//                                                         (the rest queued), it completes
//                                                         data, none: queued
//                                                         queue reaches its limit -> cancelling
//                                                         CQE without F_MORE      -> idle (re-arm)
//                                                         0 (FIN) / -errno        -> ended
//                                                         ENOBUFS                 -> starved
//   cancelling   backpressure [in_kernel && cancel_sent]  last CQE                -> idle
//   starved      the ring ran dry [starved]: the           a buffer came back     -> idle (re-arm)
//                connection is healthy (the ENOBUFS
//                policy); the first waiting receive with
//                a buffer of its own gets a single-shot
//                receive into it [direct], so no socket
//                waits on bytes others leave unread
//   ended        [end <= 0] after the queued bytes: 0 for every receive (FIN); -errno is given
//                to one receive, and the next one asks the kernel again (after RST: 0)
//   closed       fd -1: queued pieces go back to the ring, waiters complete with ECANCELED on a
//                later loop turn, late CQEs give their buffers back at once
//
// Receives of one socket complete in the order they were started: a receive completes inline
// only when no receive is waiting before it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ringsock/detail/buffer_ring.hpp"
#include "ringsock/detail/operation.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

struct socket_core;

struct stream_receiver {
  static constexpr int no_end = 1;

  struct multishot_receive : operation {
    multishot_receive() noexcept;
    socket_core* core = nullptr;
    io_context* ctx = nullptr;  // kept when the core is orphaned (the core's ctx is then null)
  };

  stream_receiver() noexcept;
  ~stream_receiver();
  stream_receiver(const stream_receiver&) = delete;
  stream_receiver& operator=(const stream_receiver&) = delete;

  bool has_data() const noexcept { return count != 0; }
  // Queues a piece (grows past the inline room only when CQEs raced the backpressure cancel).
  void push(const buffer_piece& p);
  buffer_piece& front() noexcept { return q[head]; }
  // The i-th queued piece (i < count), front first.
  const buffer_piece& at(std::uint32_t i) const noexcept { return q[(head + i) & (room - 1)]; }
  // The bytes of every queued piece.
  std::size_t queued_bytes() const noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < count; ++i) n += at(i).len;
    return n;
  }
  void pop() noexcept {
    head = (head + 1) & (room - 1);
    --count;
  }

  multishot_receive op;
  buffer_waiter starve;          // in the buffer ring's waiters while starved
  static constexpr std::uint32_t inline_room = 8;
  buffer_piece inline_q[inline_room];
  buffer_piece* q = inline_q;    // ring of pieces, `room` (a power of two) entries
  std::uint32_t room = inline_room, head = 0, count = 0;
  int end = no_end;              // no_end, 0 (end of stream) or -errno, after the queued bytes
  io_request* waiters = nullptr;
  io_request* waiters_tail = nullptr;
  io_request* direct = nullptr;  // starved: the first waiter's own receive into its buffer
  bool in_kernel = false;        // the multishot is armed
  bool cancel_sent = false;      // ... and asked to stop (queue full)
  bool persistent = false;       // re-armed after backpressure even when nobody waits
  bool starved = false;          // ENOBUFS: waits for buffers
  bool deliver_due = false;      // a deferred delivery is queued
};

// The socket closes (its fd is already -1): see "closed" above.
void close_receiver(socket_core& c) noexcept;
// The context is being destroyed: waiters complete with ECANCELED, resuming nobody; `later`:
// on a following run of ready work (the destructor's, after every CQE is reaped, so that a
// thread their completion wakes, which may then drop the socket, finds the core settled).
void abandon_receiver(socket_core& c, bool later) noexcept;
// Graceful shutdown's last phase: waiting receives complete with ECANCELED on a later turn.
void cancel_receive_waiters(socket_core& c) noexcept;

}  // namespace ringsock::detail
