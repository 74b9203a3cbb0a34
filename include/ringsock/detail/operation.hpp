// The unit of kernel work and the request built on it. Internal: users never name these.
#pragma once

#include <linux/time_types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

// One SQE out, one CQE back (or several for a multishot). Its address is the SQE's user_data,
// so it must not move or die until its last CQE has been reaped.
struct operation {
  using complete_fn = void (*)(operation*, int res, std::uint32_t flags) noexcept;
  explicit operation(complete_fn fn) noexcept : complete_(fn) {}
  operation(const operation&) = delete;
  operation& operator=(const operation&) = delete;
  complete_fn complete_;
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
  explicit timer_part(io_request* owner) noexcept;
  io_request* owner_;
  __kernel_timespec ts_{};
};

// A user-visible operation in flight: the request's own CQE(s), an optional timer and an
// optional stop callback. It finishes (done_ is called) only when every CQE that refers to it
// has arrived, so the waiter may destroy it as soon as it is told.
//
// done_ is also called while the context is being destroyed (draining): it must then release
// what it holds and resume nobody.
// The two views (coroutine and event-args) differ only in done_: the coroutine view resumes `waiter_`, the
// event-args view raises Completed. `again_` lets multi-round operations (send_all, accept with a
// first receive) start their next round instead of finishing.
struct io_request : operation {
  using done_fn = void (*)(io_request*) noexcept;
  using cancel_fn = void (*)(io_request*) noexcept;
  using again_fn = bool (*)(io_request*) noexcept;

  io_request() noexcept;
  io_request(const io_request&) = delete;
  io_request& operator=(const io_request&) = delete;

  io_context* ctx_ = nullptr;
  done_fn done_ = nullptr;
  void* waiter_ = nullptr;  // coroutine address (coroutine view) or owner (args view)
  cancel_fn cancel_ = nullptr;
  again_fn again_ = nullptr;
  void* source_ = nullptr;  // the acceptor an accept waits in, while it waits
  io_request* next_ = nullptr;  // acceptor's waiter list
  io_request* cross_next_ = nullptr;  // cross-thread cancel list (guarded by the context's mutex)
  socket_core* core_ = nullptr;  // the socket it runs on (kept alive until the request ends)
  std::span<std::byte> buf_{};
  std::size_t done_bytes_ = 0;  // multi-round progress (send_all)
  int fd_ = -1;                 // the target fd (or the accepted fd of an accept)
  int res_ = 0;                 // the result: >= 0 value, < 0 -errno
  std::uint8_t pending_ = 0;    // CQEs (or deliveries) still to come
  bool timed_ = false;          // each round gets a linked timeout of timer_.ts_
  bool timer_armed_ = false;
  bool timer_fired_ = false;
  bool cancelled_ = false;      // a stop was requested (written on the context's thread only)
  bool cross_queued_ = false;
  bool report_errors_ = false;  // accept: resource errors reach this waiter (args form)
  bool second_round_ = false;   // accept: the first receive is in the kernel
  timer_part timer_;
  std::optional<std::stop_callback<stop_request>> stop_;

  // Default CQE handler: records the result and finishes when nothing else is outstanding.
  static void on_cqe(operation* op, int res, std::uint32_t flags) noexcept;
  // Default timer handler: notes whether the timeout fired.
  static void on_timer_cqe(operation* op, int res, std::uint32_t flags) noexcept;
  // Default cancel: IORING_OP_ASYNC_CANCEL by user_data (the target's own CQE ends it).
  static void cancel_sqe(io_request* r) noexcept;

  // One outstanding CQE/delivery arrived; finish when it was the last.
  void settle() noexcept;
  // Install the stop callback (after the request is armed).
  void watch(const std::stop_token& tok);
};

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
