// The loop of an io_context: one routine (loop()) behind one scope guard, shared by run,
// run_until, block_on and the shutdowns. A turn runs the ready work (deferred resumptions,
// cross-thread cancels, posted functions), then one io_uring_enter that submits everything
// prepared and, when nothing is ready, waits for a completion.
#include <stdexcept>
#include <string>

#include "ringsock/io_context.hpp"

namespace ringsock {

void io_context::resume_handle(void* a) { std::coroutine_handle<>::from_address(a).resume(); }

bool io_context::task_done(void* h) { return std::coroutine_handle<>::from_address(h).done(); }

void io_context::report_posted_error(void* self, std::exception_ptr e) {
  static_cast<io_context*>(self)->report_exception(std::move(e));
}

bool io_context::loop(bool (*done)(void*), void* arg, const char* who, bool outermost,
                      const std::chrono::steady_clock::time_point* deadline) {
  check_thread();
  if (outermost && in_loop_)
    throw std::logic_error(std::string("ringsock: io_context::") + who +
                           " called from inside the loop");
  loop_scope scope(*this);
  for (;;) {
    run_ready();
    if (done(arg)) return true;
    if (!deadline) {
      enter(true);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= *deadline) {
      // One last look that does not wait: what the kernel already finished counts (a zero
      // timeout polls).
      enter(false);
      run_ready();
      return done(arg);
    }
    enter_for(*deadline - now);
  }
}

void io_context::run() {
  auto stop_or_idle = [](void* self) {
    auto* c = static_cast<io_context*>(self);
    return c->mailbox_.stop_requested() || !c->has_work();
  };
  loop(stop_or_idle, this, "run", true, nullptr);
  mailbox_.clear_stop();
}

void io_context::run_until(bool (*done)(void*), void* arg) {
  loop(done, arg, "run_until", false, nullptr);
}

bool io_context::run_until(bool (*done)(void*), void* arg, std::chrono::nanoseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  return loop(done, arg, "run_until", false, &deadline);
}

bool io_context::has_work() const noexcept {
  return busy() || guards_ > 0;
}

bool io_context::busy() const noexcept {
  return live_tasks_ > 0 || pending_requests_ > 0 || ready_head_ < ready_.size() ||
         mailbox_.has_mail();
}

void io_context::defer(void (*fn)(void*), void* arg) { ready_.push_back({fn, arg}); }

void io_context::run_ready() {
  // FIFO with a shared head: a nested loop (run_until inside a callback) continues where the
  // outer one is, so every item runs exactly once. Items added meanwhile wait for the next turn,
  // so a completion loop cannot starve I/O.
  const std::size_t end = ready_.size();
  while (ready_head_ < end && ready_head_ < ready_.size()) {
    ready_item it = ready_[ready_head_++];
    if (draining_ && it.fn == &resume_handle) continue;  // a dying context resumes nobody
    it.fn(it.arg);
  }
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  } else if (ready_head_ > 1024 && ready_head_ * 2 > ready_.size()) {
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(ready_head_));
    ready_head_ = 0;
  }
  if (mailbox_.has_mail()) {
    free_retired_cores();
    mailbox_.run_mail(&report_posted_error, this);
  }
}

void io_context::enter(bool may_block) {
  ring_.enter(may_block && ready_head_ == ready_.size() && !mailbox_.stop_requested());
}

void io_context::enter_for(std::chrono::nanoseconds limit) {
  if (ready_head_ < ready_.size() || limit.count() <= 0) {
    ring_.enter(false);
    return;
  }
  ring_.enter_for(limit);
}

}  // namespace ringsock
