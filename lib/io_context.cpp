// io_context: construction and destruction, spawn and the exception policy, the registries
// (spawned tasks, socket cores, drain hooks). The loop is in loop.cpp, the shutdowns in
// shutdown.cpp, the ring in ring.cpp, the cross-thread mailbox in mailbox.cpp.
#include "ringsock/io_context.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "ringsock/error.hpp"

namespace ringsock {

namespace detail {
void end_spawned(spawned_link& l, std::exception_ptr& error) noexcept {
  if (error) access::report_exception(*l.ctx, std::exchange(error, nullptr));
  l.frame.destroy();  // its promise leaves the context's list
}

void unlink_spawned(spawned_link& l) noexcept { access::unlink_task(*l.ctx, l); }
}  // namespace detail

io_context::io_context() : io_context(params{}) {}

io_context::io_context(const params& p)
    : owner_(std::this_thread::get_id()),
      ring_(p.sq_entries, p.cq_entries, p.send_zc_threshold > 0),
      mailbox_(ring_, p.max_posted) {
  spawned_.next = spawned_.prev = &spawned_;
  cores_.next = cores_.prev = &cores_;
  ready_.reserve(256);
  receive_queue_limit_ = std::clamp(p.receive_queue_limit, 1u, 65536u);
  ring_.setup_buffers(p.receive_buffers, p.receive_buffer_size);
  if (ring_.features().send_zc) send_zc_threshold_ = p.send_zc_threshold;
}

io_context::~io_context() {
  check_thread();
  shutdown();
  if (ring_.buffers().pieces_held() > 0) {
    // Only a received_buffer can still hold one (every queue gave its pieces back): its data
    // is about to be unmapped under it.
    std::fprintf(stderr,
                 "ringsock: an io_context was destroyed while a received_buffer still held one of "
                 "its receive buffers; release every received_buffer before its context\n");
    std::abort();
  }
}

io_stats io_context::stats() const noexcept {
  const detail::ring_counters& c = ring_.counters();
  const detail::buffer_ring& b = ring_.buffers();
  return {c.sqes_submitted, c.enter_calls, c.cqes, inline_completions_, tasks_ended_by_io_error_,
          b.total(), b.lent(), b.pieces_held(), buffer_shortages_, zero_copy_sends_,
          zero_copy_copied_};
}

void io_context::spawn(task<void> t) {
  check_thread();
  if (!t.valid()) throw std::logic_error("ringsock: spawn of an empty task");
  // The task's own frame is the root (no wrapper frame): its promise joins the list of tasks,
  // and its end (detail::end_spawned) reports an exception and frees the frame.
  auto h = t.release();
  detail::promise_base& p = h.promise();
  p.state_ = detail::run_state::running;
  p.spawned_.frame = h;
  p.spawned_.ctx = this;
  link_task(p.spawned_);
  try {
    defer(&resume_handle, h.address());
  } catch (...) {
    h.destroy();  // never started: it leaves the list
    throw;
  }
}

void io_context::set_exception_handler(std::function<void(std::exception_ptr)> h) {
  on_exception_ = std::move(h);
}

void io_context::report_exception(std::exception_ptr e) noexcept {
  if (on_exception_) {
    on_exception_(e);
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const socket_error&) {
    ++tasks_ended_by_io_error_;  // that task's connection failed: nothing else did
    return;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "ringsock: exception escaped a spawned task: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "ringsock: unknown exception escaped a spawned task\n");
  }
  std::terminate();
}

void io_context::post(std::function<void()> fn) { mailbox_.post(std::move(fn)); }

void io_context::stop() noexcept { mailbox_.request_stop(!running_in_this_thread()); }

void io_context::link_task(detail::spawned_link& l) noexcept {
  ++live_tasks_;
  l.prev = spawned_.prev;
  l.next = &spawned_;
  spawned_.prev->next = &l;
  spawned_.prev = &l;
}

void io_context::unlink_task(detail::spawned_link& l) noexcept {
  --live_tasks_;
  l.prev->next = l.next;
  l.next->prev = l.prev;
  l.next = l.prev = &l;
}

void io_context::link_hook(detail::drain_hook* h) noexcept { hooks_.push_back(h); }

void io_context::unlink_hook(detail::drain_hook* h) noexcept {
  for (auto& p : hooks_)
    if (p == h) {
      p = hooks_.back();
      hooks_.pop_back();
      return;
    }
}

detail::socket_core* io_context::make_core(int fd) {
  auto* c = new detail::socket_core;
  c->ctx = this;
  c->fd = fd;
  c->rx.op.core = c;
  c->rx.op.ctx = this;
  c->prev = cores_.prev;
  c->next = &cores_;
  cores_.prev->next = c;
  cores_.prev = c;
  return c;
}

void io_context::free_retired_cores() noexcept {
  detail::socket_core* c = mailbox_.take_retired();
  while (c) {
    detail::socket_core* next = c->retired_next;
    if (c->fd >= 0) detail::close_core(*c);  // its owner closed it on another thread
    c->owned = false;
    detail::free_core_if_unused(c);  // else the last operation armed on it frees it
    c = next;
  }
}

void io_context::unlink_core(detail::socket_core* c) noexcept {
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->next = c->prev = nullptr;
}

}  // namespace ringsock
