// The unit of kernel work and the request built on it. Internal: users never name these.
#pragma once

#include <linux/time_types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>

#include "ringsock/detail/frame_allocator.hpp"
#include "ringsock/io_options.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

// One SQE out, one CQE back (or several for a multishot). Its address is the SQE's user_data,
// so it must not move or die until its last CQE has been reaped.
struct operation {
  using cqe_fn = void (*)(operation*, int res, std::uint32_t flags) noexcept;
  explicit operation(cqe_fn fn) noexcept : on_cqe_(fn) {}
  operation(const operation&) = delete;
  operation& operator=(const operation&) = delete;
  cqe_fn on_cqe_;
};

struct io_request;
struct socket_core;

// The std::stop_callback payload: asks the request to stop (may run on any thread).
struct stop_request {
  io_request* req;
  void operator()() const noexcept;
};

// The timer half of a request: a linked timeout, or a plain timer for an accept that waits in
// the listener's queue. Its CQE must arrive before the request may finish.
struct timer_part : operation {
  explicit timer_part(io_request* owner) noexcept : operation(nullptr), owner_(owner) {}
  io_request* owner_;
  __kernel_timespec ts_{};
};

// What only a timed or stoppable request needs: made (from the frame recycler: no allocation in
// steady state) when such a request is armed, freed as it finishes. Kept out of io_request so the
// operations of a server that uses neither (nearly all of them) carry about 100 bytes less in each
// awaiter, and an idle connection's coroutine frame is that much smaller.
struct request_extras : frame_allocated {
  explicit request_extras(io_request* r) noexcept : timer(r) {}
  timer_part timer;
  std::optional<std::stop_callback<stop_request>> stop;
  io_request* cross_next = nullptr;  // cross-thread cancel list (guarded by the mailbox's mutex)
  bool timer_armed = false;
  bool timer_fired = false;
  bool cross_queued = false;
};

// A user-visible operation in flight: the request's own CQE(s), an optional timer and an
// optional stop callback (both in extras_). It completes (completion_ is called) only when every
// CQE that refers to it has arrived, so the waiter may destroy it as soon as it is told. The
// operation it carries (detail/socket_ops.hpp) is reached through op_.
//
// completion_ is also called while the context is being destroyed (draining): it must then
// release what it holds and resume nobody. The forms differ only in completion_: the coroutine
// form resumes `waiter_`, the args form tells its socket_args. `again_` lets a multi-round
// operation (send_all, accept with a first receive) start its next round instead of completing.
struct io_request : operation {
  using completion_fn = void (*)(io_request*) noexcept;
  using cancel_fn = void (*)(io_request*) noexcept;
  using again_fn = bool (*)(io_request*) noexcept;

  io_request() noexcept;
  ~io_request() {
    if (extras_) drop_extras();  // a request abandoned before it was armed (an exception)
  }
  io_request(const io_request&) = delete;
  io_request& operator=(const io_request&) = delete;

  io_context* ctx_ = nullptr;
  completion_fn completion_ = nullptr;
  void* waiter_ = nullptr;  // coroutine address (coroutine form) or owner (args form)
  void* op_ = nullptr;      // the operation object (socket_ops.hpp) this request carries
  cancel_fn cancel_ = nullptr;
  again_fn again_ = nullptr;
  socket_core* core_ = nullptr;  // the socket it runs on (kept alive until the request ends)
  request_extras* extras_ = nullptr;  // set while a timed or stoppable request is in flight
  int res_ = 0;                 // the result: >= 0 value, < 0 -errno
  std::uint8_t cqes_left_ = 0;  // CQEs (or deliveries) still to come
  bool timed_ = false;          // each round gets a linked timeout of extras_->timer.ts_
  bool cancelled_ = false;      // a stop was requested (written on the context's thread only)

  // Default CQE handler: records the result and finishes when nothing else is outstanding.
  static void on_cqe(operation* op, int res, std::uint32_t flags) noexcept;
  // Default timer handler: notes whether the timeout fired.
  static void on_timer_cqe(operation* op, int res, std::uint32_t flags) noexcept;
  // Default cancel: IORING_OP_ASYNC_CANCEL by user_data (the target's own CQE ends it).
  static void cancel_sqe(io_request* r) noexcept;

  // One awaited CQE (or delivery) arrived; completes the request when it was the last.
  void count_down() noexcept;
  // Before the request is armed (nothing submitted yet, so it may throw std::bad_alloc): makes
  // extras_ when `o` asks for a timeout or a stop token.
  void prepare(const io_options& o) {
    if (o.timeout.count() > 0 || o.stop.stop_possible()) [[unlikely]]
      make_extras();
  }
  void make_extras();
  request_extras& extras() noexcept { return *extras_; }
  bool timer_armed() const noexcept { return extras_ && extras_->timer_armed; }
  // Install the stop callback (after the request is armed; extras_ made).
  void watch(const std::stop_token& tok) noexcept;
  // The request finished: the stop callback goes (waiting for one running on another thread),
  // the cross-thread cancel is unqueued, the extras are freed.
  void finish_extras() noexcept;
  void drop_extras() noexcept;
};

// Inline: an awaiter builds one per operation, and the compiler then folds these stores into its own.
inline io_request::io_request() noexcept : operation(&io_request::on_cqe) {}

// A request that waits outside the kernel (in a listener's or a socket's FIFO) for `ns`: a plain
// timer whose CQE (handled by on_timer) is one more the request waits for.
void arm_wait_timer(io_request& r, std::int64_t ns, operation::cqe_fn on_timer) noexcept;
// The wait ended first: asks the kernel to drop that timer (its own CQE still comes). Inline:
// nearly every wait has none, and that costs a test.
[[gnu::cold]] void remove_armed_wait_timer(io_request& r) noexcept;
inline void remove_wait_timer(io_request& r) noexcept {
  if (r.timer_armed()) [[unlikely]]
    remove_armed_wait_timer(r);
}

// A stop request reached the context's thread: mark the request and cancel it.
void cancel_now(io_request* r) noexcept;

// A duration as the kernel's timespec (negative durations become 0).
inline __kernel_timespec to_timespec(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  return {ns / 1'000'000'000, ns % 1'000'000'000};
}

// Completion of the coroutine view: resume the awaiting coroutine.
void resume_waiter(io_request* r) noexcept;

}  // namespace ringsock::detail
