// Hand-off between threads (runtime, spread_mode::hand_off): one thread's listener accepts for
// all, and each new connection goes to the thread with the fewest connections waiting for it:
// its own ready queue, or another thread's fed listener over IORING_OP_MSG_RING (a message from
// ring to ring: the fd travels as the CQE's result, no lock, no system call of its own).
//
//   accepting thread                         thread i (fed listener)
//   multishot accept CQE: fd
//   handoff_route: pick i (least pending)
//     in_flight[i]++, check open[i]  ------>  (open cleared by its stop: nothing more is sent)
//     pending[i]++, MSG_RING(ring i, fd)
//   message CQE: 0 (posted) or -errno:       ring i's CQE: port[i], res = fd
//     -errno: the fd comes back to our own     -> fed listener: waiter or ready queue
//     queue (closed if we stopped)             (stopped or gone: closed), in_flight[i]--
//                                            before ring i goes: wait for in_flight[i] == 0
//   accepting listener stops or goes:
//     to each open i: MSG_RING(ring i, -ECANCELED) -> fed listener stops: its accepts complete
//                                                     with ECANCELED (nobody feeds it any more)
//
// The in_flight/open protocol is message_gate's: a ring never goes with a connection still
// travelling to it, and no fd is lost or leaked.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "message_gate.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/endpoint.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

class acceptor;
class ring;
struct handoff_group;

// One thread's place in a group. (owner): touched by that thread only.
struct handoff_member : operation {  // the user_data of the messages its ring receives
  handoff_member() noexcept;
  handoff_group* group = nullptr;
  ring* to = nullptr;   // set before `open`, read by the accepting thread after it
  acceptor* fed = nullptr;               // (owner) its fed listener; null once that is gone
  message_gate gate;                     // open: takes hand-offs
  std::atomic<unsigned> pending{0};      // handed to it and not yet taken by an accept
  std::uint64_t received = 0;            // (owner) connections that arrived
  std::uint64_t refused = 0;             // (owner) ... after its listener stopped: closed
                                         // (the accepting thread's: returned after it stopped)
};

struct handoff_group {
  handoff_group(const endpoint& requested, unsigned threads, unsigned origin, ring& r,
                acceptor& a, int listen_fd, std::size_t limit);
  handoff_group(const handoff_group&) = delete;
  handoff_group& operator=(const handoff_group&) = delete;

  struct message : operation {  // one connection on its way (the accepting thread's CQE)
    message() noexcept;
    handoff_group* group = nullptr;
    message* next_free = nullptr;
    int fd = -1;         // -1: a notice that the accepting listener is gone
    unsigned target = 0;
  };
  static constexpr unsigned max_in_flight = 256;  // more at once: kept on the accepting thread

  endpoint requested;
  unsigned count;
  unsigned origin;                       // the accepting thread's index
  std::unique_ptr<handoff_member[]> members;
  // Orders a late listen() (which duplicates listen_fd and joins) with the accepting listener's
  // end (which clears listen_fd before the descriptor is closed, and notifies who joined).
  std::mutex mutex;
  int listen_fd;                         // (mutex) duplicated for fed listeners (-1: it ended)
  // ---- the accepting thread's ----
  ring* origin_ring;
  acceptor* origin_acceptor;             // null once it stopped or is gone
  std::size_t limit;                     // pending per thread at most
  unsigned next = 0;                     // round-robin among equals
  std::uint64_t sent = 0, kept = 0, returned = 0;
  std::unique_ptr<message[]> messages;
  message* free_ = nullptr;
  std::unique_ptr<message[]> notices;    // one per thread: "the accepting listener is gone"
};

// The accepting thread, for each new connection: true when it went to another thread.
bool handoff_route(handoff_group& g, int fd) noexcept;
// The accepting listener stopped or is gone (once; later calls do nothing): failed messages'
// connections are closed, no late listen() joins, and every fed listener is told to stop.
void handoff_origin_left(handoff_group& g) noexcept;
// Thread m's fed listener took a handed connection; refused: closed it (it had stopped).
void handoff_taken(handoff_member& m) noexcept;
void handoff_refused(handoff_member& m) noexcept;
// ... stopped: nothing more is sent to it.
void handoff_stopped(handoff_member& m) noexcept;
// ... is gone: connections still arriving are closed.
void handoff_left(handoff_member& m) noexcept;
// Thread m's owner registers its fed listener (on its ring), under g.mutex with listen_fd >= 0:
// from now on it is sent connections.
void handoff_join(handoff_member& m, ring& r, acceptor& fed) noexcept;
// Thread m's owner, before its ring goes: runs ctx's loop until no message to it is in flight.
void handoff_drain(handoff_member& m, io_context& ctx);

}  // namespace ringsock::detail
