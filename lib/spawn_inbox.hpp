// spawn_on between a runtime's threads: a lock-free inbox per thread, woken over
// IORING_OP_MSG_RING (no lock, no eventfd), and no allocation: the task's own promise is the node.
//
//   sender thread (its own ring)                target thread
//   in_flight++, check open  --------------->   (open cleared when its loop ends: nothing more)
//   push the task (CAS, release)
//   the inbox was empty: MSG_RING(target),  ->  its CQE: take every task (exchange, acquire),
//     submitted at once                           spawn them in the order sent, in_flight--
//     (a non-empty inbox has a wake coming:
//      in_flight-- at once)
//   the sender's CQE: 0, or -errno: nothing was posted, so the target's mailbox wakes it
//     instead (a hook queued without allocating: it cannot fail), then in_flight--
//
// The in_flight/open protocol is message_gate's: no wake is in flight when the target's ring
// goes, and nothing is pushed after the target's last look.
#pragma once

#include <atomic>
#include <cstdint>

#include "message_gate.hpp"
#include "ringsock/detail/mailbox.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/task.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

// One runtime thread's inbox (lives for the whole run, so CQEs may name it on every ring).
struct spawn_inbox : operation {  // the user_data of the wakes its ring receives
  spawn_inbox() noexcept;
  struct sent_op : operation {  // the user_data of the sender's CQE of a wake
    explicit sent_op(spawn_inbox* in) noexcept;
    spawn_inbox* inbox;
  };
  struct hook_op : mail_hook {  // the mailbox's wake, when a MSG_RING was refused
    explicit hook_op(spawn_inbox* in) noexcept;
    spawn_inbox* inbox;
  };
  sent_op sent{this};
  hook_op hook{this};
  io_context* ctx = nullptr;                     // set before the gate opens
  message_gate gate;                             // held by a sender until it is done with it
  std::atomic<spawned_link*> head{nullptr};      // pushed tasks, newest first
  std::uint64_t received = 0;                    // (its thread's) tasks that arrived
};

// The target thread, once its context runs: from now on it is sent tasks.
void spawn_inbox_open(spawn_inbox& in, io_context& ctx) noexcept;
// The target thread, when its loop has ended (again, harmlessly, before its context goes):
// nothing more is sent, the loop runs until every sender is done with it, and what arrived is
// spawned (it gets the graceful shutdown's grace; tasks left then are destroyed with the context).
void spawn_inbox_close(spawn_inbox& in, io_context& ctx);

// Sends `t` from `from` (the calling thread's context, running on it) to `to`'s thread.
// Returns false, keeping `t`, when `to` is not open.
bool spawn_inbox_send(io_context& from, spawn_inbox& to, task<void>& t) noexcept;

}  // namespace ringsock::detail
