// The part of a socket that operations in flight refer to. Internal: users never name it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ringsock/detail/frame_allocator.hpp"
#include "ringsock/detail/stream_receiver.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

class acceptor;

// A `socket` object is a handle to one of these; the kernel-facing requests of the socket point
// here, never into the `socket` object. So:
//  - moving a socket moves the handle: its pending operations go on, untouched;
//  - closing it sets fd to -1 at once: a multi-round operation sees that before its next round
//    and ends with operation_canceled instead of sending on a number that may be reused;
//  - destroying it lets go of the core, which lives on until the last operation armed on it
//    has finished (armed == 0), then is recycled (frames' allocator: no allocation per socket
//    in steady state).
// A context that is destroyed first closes the descriptors of the cores still owned and
// orphans them (ctx = nullptr): the socket objects then hold closed, context-less handles.
// Only the context's thread touches a core while its context lives; a socket object closed or
// released on another thread (a compat Socket dropped after EndX there) hands its core to the
// context's mailbox, which closes and frees it on the context's thread.
struct socket_core : frame_allocated {
  // What receive_async runs on: unknown (asked with SO_TYPE at the first receive), a stream
  // (the stream receiver), or anything else (one SQE per receive).
  static constexpr signed char kind_unknown = 0, kind_stream = 1, kind_other = -1;

  // The members are ordered, and the counters sized, so that a core fits 256 bytes: each idle
  // connection holds one.
  io_context* ctx = nullptr;      // null once the context is gone
  int fd = -1;                    // -1 once closed
  unsigned armed = 0;             // requests and own multishots armed on fd, not finished
  std::uint32_t accept_capacity = 64;  // for listen() (set_accept_capacity)
  std::uint16_t held = 0;         // holds of the library's own code (a completion handler that
                                  // may resume a coroutine that drops the socket): keep the core,
                                  // but nothing in the kernel refers to the fd for them (they
                                  // nest a few deep at most)
  signed char kind = kind_unknown;
  bool owned : 1 = true;          // a socket object holds it
  bool send_copies : 1 = false;   // the kernel copied a zero-copy send of it (loopback), or it
                                  // is not TCP/UDP: its sends copy (params::send_zc_threshold)
  bool send_known : 1 = false;    // its family was looked at for zero-copy sends
  acceptor* listener = nullptr;   // the accept side, from listen() on
  socket_core* prev = nullptr;    // the context's list of live cores
  socket_core* next = nullptr;
  socket_core* retired_next = nullptr;  // the mailbox's list of cores to free
  stream_receiver rx;             // the receive side of a stream socket
};

// Closes the socket behind the core (on the context's thread; see socket::close).
void close_core(socket_core& c) noexcept;
// The last owner (socket object or operation) let go: recycle the core. Inline: nearly every
// call finds it still used, and that costs one test, not a call.
[[gnu::cold]] void free_core(socket_core* c) noexcept;
inline void free_core_if_unused(socket_core* c) noexcept {
  if (c->owned || c->armed != 0 || c->held != 0) return;
  free_core(c);
}
// The listener's socket closes: see acceptor::close.
void close_listener(acceptor* a) noexcept;

}  // namespace ringsock::detail
