// The two ends of an io_context's life: the graceful shutdown a server calls, and the drain the
// destructor does.
#include <algorithm>
#include <stdexcept>

#include <unistd.h>

#include "ringsock/io_context.hpp"

namespace ringsock {

shutdown_report io_context::shutdown_gracefully(std::chrono::milliseconds grace) {
  check_thread();
  if (in_loop_)
    throw std::logic_error("ringsock: io_context::shutdown_gracefully called from inside the loop");
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  shutdown_report rep;
  for (detail::drain_hook* h : hooks_) h->stop(h->owner);  // frees nothing: sockets own the listeners
  auto idle = [](void* self) { return !static_cast<io_context*>(self)->busy(); };
  // After each turn's ready work, so an operation a task started meanwhile is cancelled with
  // the same io_uring_enter.
  auto idle_or_cancel = [](void* self) {
    auto* c = static_cast<io_context*>(self);
    if (!c->busy()) return true;
    if (c->pending_requests_ > 0) {
      c->ring_.prep_cancel_all();
      // Receives waiting in a socket's FIFO are not in the kernel: cancel them one by one.
      for (detail::socket_core* s = c->cores_.next; s != &c->cores_; s = s->next)
        if (s->rx.waiters) detail::cancel_receive_waiters(*s);
    }
    return false;
  };
  auto until = start + grace;
  rep.finished_in_time = loop(idle, this, "shutdown_gracefully", true, &until);
  if (!rep.finished_in_time) {
    rep.tasks_at_deadline = live_tasks_;
    rep.ops_at_deadline = pending_requests_;
    until = clock::now() + grace;
    loop(idle_or_cancel, this, "shutdown_gracefully", true, &until);
    rep.tasks_left = live_tasks_;
  }
  rep.took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  return rep;
}

// TRICKY: the order matters. Kernel-owned memory (op states in frames, buffers) must stay alive
// until its CQE, so: cancel everything, reap until nothing refers to live memory, and only then
// destroy the frames. While draining, completions record results but resume nobody.
// The sockets are closed and detached first: a completion below may wake another thread
// (compat's EndX), which may then destroy its socket; that socket must no longer be linked here.
void io_context::shutdown() noexcept {
  draining_ = true;
  mailbox_.close();
  orphan_cores(true);
  ring_.prep_cancel_all();
  ring_.flush();
  // Bounded: an accounting bug must not hang a destructor forever.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (ring_.cqes_due() > 0 && std::chrono::steady_clock::now() < deadline) {
    ring_.enter_for(std::chrono::milliseconds(50));
    if (ring_.cqes_due() > 0) ring_.prep_cancel_all();  // re-armed meanwhile? cancel again
  }
  // Requests waiting outside the kernel (accepts in a listener's queue): abandon them. Each
  // abandon may free its holder (and its hook), so look the list up again every time.
  for (;;) {
    detail::drain_hook* with_waiters = nullptr;
    for (detail::drain_hook* h : hooks_)
      if (h->has_waiters(h->owner)) with_waiters = h;
    if (!with_waiters) break;
    with_waiters->abandon(with_waiters->owner);
  }
  // Deferred work gets one last run: completions release what they hold (args, compat results)
  // and resume nobody; resumptions are skipped (run_ready skips them while draining_).
  for (int round = 0; round < 4 && ready_head_ < ready_.size(); ++round) run_ready();
  ready_.clear();
  ready_head_ = 0;
  while (spawned_.next != &spawned_) spawned_.next->frame.destroy();
  orphan_cores(false);  // any made meanwhile
  ring_.flush();
}

void io_context::orphan_cores(bool receives_later) noexcept {
  free_retired_cores();
  while (cores_.next != &cores_) {
    detail::socket_core* c = cores_.next;
    unlink_core(c);
    c->ctx = nullptr;
    ++c->held;  // abandoning its receives may release the last hold on it
    const int fd = std::exchange(c->fd, -1);
    if (detail::acceptor* a = std::exchange(c->listener, nullptr))
      detail::close_listener(a);  // owns fd: closes it, and frees itself, after its last CQE
    else if (fd >= 0)
      ::close(fd);  // the kernel keeps its own reference for what is still in flight
    detail::abandon_receiver(*c, receives_later);
    --c->held;
    detail::free_core_if_unused(c);
  }
}

}  // namespace ringsock
