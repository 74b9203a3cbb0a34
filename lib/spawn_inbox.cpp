// spawn_on between a runtime's threads: the lock-free inbox and its MSG_RING wake
// (spawn_inbox.hpp).
#include "spawn_inbox.hpp"

#include <liburing.h>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/ring.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock::detail {

namespace {

using handle = std::coroutine_handle<task_promise<void>>;

// Every task in the inbox, oldest first.
spawned_link* take_all(spawn_inbox& in) noexcept {
  spawned_link* newest = in.head.exchange(nullptr, std::memory_order_acquire);
  spawned_link* oldest = nullptr;
  while (newest) {
    spawned_link* next = newest->next;
    newest->next = oldest;
    oldest = newest;
    newest = next;
  }
  return oldest;
}

// On the target's thread: each task starts on a following loop turn.
void deliver(spawn_inbox& in) noexcept {
  for (spawned_link* l = take_all(in); l;) {
    spawned_link* next = std::exchange(l->next, nullptr);
    ++in.received;
    try {
      in.ctx->spawn(task<void>(handle::from_address(l->frame.address())));
    } catch (...) {  // bad_alloc queueing it: the task was destroyed unrun; that is reported
      access::report_exception(*in.ctx, std::current_exception());
    }
    l = next;
  }
}

// The target ring's CQE: a wake.
void on_wake(operation* op, int, std::uint32_t) noexcept {
  auto& in = *static_cast<spawn_inbox*>(op);
  access::ring_of(*in.ctx).expect_cqes();  // reap counted a CQE this ring never expected
  deliver(in);
  in.gate.leave();
}

// The sender ring's CQE of a wake: 0 (posted) or -errno (nothing was: the target's CQ could take
// no more). Then the target's mailbox wakes it; its context lives until in_flight is 0.
void on_sent(operation* op, int res, std::uint32_t) noexcept {
  if (res >= 0) return;
  spawn_inbox& in = *static_cast<spawn_inbox::sent_op*>(op)->inbox;
  access::queue_hook(*in.ctx, &in.hook);
  in.gate.leave();
}

void on_hook(mail_hook* h) noexcept { deliver(*static_cast<spawn_inbox::hook_op*>(h)->inbox); }

}  // namespace

spawn_inbox::spawn_inbox() noexcept : operation(&on_wake) {}
spawn_inbox::sent_op::sent_op(spawn_inbox* in) noexcept : operation(&on_sent), inbox(in) {}
spawn_inbox::hook_op::hook_op(spawn_inbox* in) noexcept : inbox(in) { fn = &on_hook; }

void spawn_inbox_open(spawn_inbox& in, io_context& ctx) noexcept {
  in.ctx = &ctx;
  in.gate.open();
}

void spawn_inbox_close(spawn_inbox& in, io_context& ctx) {
  if (!in.ctx) return;  // never opened (no MSG_RING)
  in.gate.close(ctx, "runtime spawn_on");
  deliver(in);  // a hook's tasks, if the mailbox has not run it yet
}

bool spawn_inbox_send(io_context& from, spawn_inbox& to, task<void>& t) noexcept {
  if (!to.gate.enter()) return false;
  handle h = handle::from_address(access::release(t).address());
  spawned_link* l = &h.promise().spawned_;  // unused until the target spawns it
  l->frame = h;
  spawned_link* old = to.head.load(std::memory_order_relaxed);
  do {
    l->next = old;
  } while (!to.head.compare_exchange_weak(old, l, std::memory_order_release, std::memory_order_relaxed));
  if (old) {  // the wake of the task below it is on its way, and takes this one too
    to.gate.leave();
    return true;
  }
  ring& r = access::ring_of(from);
  r.prep_message(access::ring_of(*to.ctx).fd(), reinterpret_cast<std::uintptr_t>(static_cast<operation*>(&to)),
                 0, &to.sent);
  r.expect_cqes();
  // Submitted now, not with the sender's next enter: the tasks that ride on this wake must not
  // wait for whatever the sender does first (one system call per empty-to-busy inbox).
  r.flush();
  return true;
}

}  // namespace ringsock::detail
