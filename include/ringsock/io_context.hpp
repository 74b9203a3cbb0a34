// io_context: one io_uring instance, one thread (the runtime layer of README "How it works"; the ring is detail/ring.hpp).
//
// Thread rules: create, run and destroy a context on one thread. The only members that other
// threads may call are post() and stop(). Everything else (and every socket of the context)
// belongs to the owning thread.
#pragma once

#include <liburing.h>

#include <cassert>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/drain_hook.hpp"
#include "ringsock/detail/mailbox.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/ring.hpp"
#include "ringsock/detail/socket_core.hpp"
#include "ringsock/io_options.hpp"
#include "ringsock/task.hpp"

namespace ringsock {

// Counters of one context, for tests and benchmarks.
struct io_stats {
  std::uint64_t sqes_submitted = 0;      // SQEs handed to the kernel
  std::uint64_t enter_calls = 0;         // io_uring_enter system calls made by the loop
  std::uint64_t cqes = 0;                // completions reaped
  std::uint64_t inline_completions = 0;  // operations that completed with no SQE and no suspension
  std::uint64_t tasks_ended_by_io_error = 0;  // spawned tasks a socket_error ended (see spawn)
  std::uint32_t buffers_total = 0;       // receive buffers in the provided-buffer ring
  std::uint32_t buffers_lent = 0;        // ... out of it: holding received bytes not yet taken
  std::uint32_t buffer_pieces_held = 0;  // received pieces queued or lent (received_buffer)
  std::uint64_t buffer_shortages = 0;    // multishot receives the ring ran dry for (ENOBUFS)
  std::uint64_t zero_copy_sends = 0;     // sends that went zero-copy (params::send_zc_threshold)
  std::uint64_t zero_copy_copied = 0;    // ... of which the kernel copied the bytes after all
};

// What io_context::shutdown_gracefully found and did.
struct shutdown_report {
  bool finished_in_time = false;       // every task and operation ended within the grace period
  std::size_t tasks_at_deadline = 0;   // spawned tasks still running when the grace period ended
  std::size_t ops_at_deadline = 0;     // operations then still pending: they were cancelled
  std::size_t tasks_left = 0;          // tasks that outlived the cancellation as well (destroyed
                                       // unfinished with the context)
  std::chrono::milliseconds took{0};
};

class io_context;


class io_context {
 public:
  struct params {
    unsigned sq_entries = 256;
    unsigned cq_entries = 8192;  // keep above the number of operations in flight
    std::size_t max_posted = 65536;  // post() items waiting for the loop, at most
    // The provided-buffer ring stream receives take their bytes from (0 buffers: none; each
    // receive then has an SQE of its own into the caller's buffer). Rounded up to a power of
    // two, at most 32768.
    unsigned receive_buffers = 256;
    unsigned receive_buffer_size = 32 * 1024;
    // Received pieces a stream socket may hold before anyone asks; at the limit its multishot
    // receive is cancelled (the kernel's socket buffer holds the rest) until half of them are
    // taken. Pieces the kernel posted in the same burst still queue (a multishot receive
    // retries up to 32 times per wake-up), so a socket may briefly hold up to limit + 32.
    // Taken between 1 and 65536.
    unsigned receive_queue_limit = 8;
    // Sends of one buffer (send_async, send_all_async) of at least this many bytes on a TCP or
    // UDP socket go zero-copy (IORING_OP_SEND_ZC) when the kernel has it with usage reports
    // (6.2+; features().send_zc); 0 (the default): every send copies. A zero-copy send
    // completes only once the kernel no longer reads the buffer (for TCP: once the peer
    // acknowledged the bytes), so the buffer is the caller's again when its co_await returns,
    // as with a copying send. Costs: a sender with one send in flight waits about a round trip
    // per send (each round of a send_all too); and a timeout or stop token bounds the send,
    // not the wait for that release, which a peer that stops reading can hold back for as long
    // as TCP keeps the connection (close() does not shorten it). When a notification says the
    // kernel copied anyway (loopback, a device without scatter-gather), that socket sends by
    // copying from then on (stats().zero_copy_copied counts these).
    std::size_t send_zc_threshold = 0;
  };

  // Throws ring_setup_error (with the cause and the remedy in what()) when io_uring is
  // unavailable: EPERM (sysctl / seccomp), ENOSYS, ENOMEM (memlock).
  io_context();
  explicit io_context(const params& p);
  // Closes the sockets still open on it (their objects stay valid: closed, and using them throws
  // socket_closed_error), cancels everything in flight, reaps every CQE, completes what was
  // pending with operation_canceled (resuming and calling back nobody, but waking other threads
  // blocked on a compat operation), then destroys the frames of unfinished spawned tasks
  // without resuming them (their locals' destructors run).
  ~io_context();
  io_context(const io_context&) = delete;
  io_context& operator=(const io_context&) = delete;

  // Runs the loop until stop() is called or no work is left (no live spawned task, no
  // operation in flight, no work_guard, nothing ready or posted).
  void run();
  // Makes run() return at the end of the current loop turn. Thread-safe.
  void stop() noexcept;

  // Runs the loop until `t` finishes and returns its value (rethrows its exception). Spawned
  // tasks run meanwhile; those still pending continue in the next run()/block_on().
  template <class T>
  T block_on(task<T> t);

  // Runs loop turns until done(arg) is true. Unlike run()/block_on() it may be called from
  // inside the loop (a callback that must wait for a result, like compat's EndAccept); it
  // blocks for as long as the condition needs.
  void run_until(bool (*done)(void*), void* arg);
  template <class Pred>
  void run_until(Pred&& pred) {
    run_until(&call_pred<Pred>, as_arg(pred));
  }
  // The same, for at most `limit`: returns done(arg) (false: the time ran out first). The bound
  // is the loop's own wait, so nothing is left armed when it returns.
  bool run_until(bool (*done)(void*), void* arg, std::chrono::nanoseconds limit);
  template <class Pred>
  bool run_until(Pred&& pred, std::chrono::nanoseconds limit) {
    return run_until(&call_pred<Pred>, as_arg(pred), limit);
  }

  // Starts a detached task on the next loop turn (never on the caller's stack). An exception
  // escaping it goes to the exception handler. The default handler ends the task quietly when
  // the exception is a socket_error (an I/O outcome of that task's connection: a reset peer, a
  // cancellation; counted in stats().tasks_ended_by_io_error) and prints and calls
  // std::terminate for anything else (a bug).
  void spawn(task<void> t);
  void set_exception_handler(std::function<void(std::exception_ptr)> h);

  // Runs fn on the context's thread during a following loop turn; wakes a blocked run().
  // Thread-safe. Throws queue_full_error (and queues nothing) when params::max_posted items are
  // already waiting: a producer faster than the loop gets backpressure, not unbounded memory.
  void post(std::function<void()> fn);

  // Graceful shutdown, on the owning thread and outside the loop (typically after run() returned
  // because stop() was called):
  //   1. every listener of this context stops accepting: new connections are refused, pending
  //      accepts complete with operation_canceled, connections not yet claimed are closed;
  //   2. the loop runs until every spawned task and operation has ended, for at most `grace`;
  //   3. what is still pending then is cancelled (operation_canceled), repeatedly, and the loop
  //      runs until everything has ended and every CQE is reaped (at most `grace` once more).
  // Work guards do not hold it up. Sockets stay open until their owners close them.
  shutdown_report shutdown_gracefully(std::chrono::milliseconds grace);

  // Keeps run() from returning for lack of work while it lives (like asio's work guard).
  class work_guard {
   public:
    explicit work_guard(io_context& c) noexcept : ctx_(&c) { ++c.guards_; }
    ~work_guard() {
      if (ctx_) --ctx_->guards_;
    }
    work_guard(const work_guard&) = delete;
    work_guard& operator=(const work_guard&) = delete;

   private:
    io_context* ctx_;
  };

  // Counters of this context (a snapshot).
  io_stats stats() const noexcept;
  // Operations started and not finished (accepts waiting in a listener's queue included).
  std::size_t pending_operations() const noexcept { return pending_requests_; }
  const ring_features& features() const noexcept { return ring_.features(); }
  bool running_in_this_thread() const noexcept { return std::this_thread::get_id() == owner_; }
  // The thread that owns (created, runs and destroys) this context.
  std::thread::id owner_thread() const noexcept { return owner_; }

#ifdef RINGSOCK_FAULT_INJECTION
  // Tests only: the ring consults `p` before each SQE and CQE (see testing/fault_plan.hpp).
  void set_fault_plan(testing::fault_plan* p) noexcept { ring_.set_fault_plan(p); }
#endif

 private:
  // ---- internal: the library reaches these only through detail::access ----
  friend struct detail::access;
  detail::ring& ring() noexcept { return ring_; }
  // Arms `r`: prep(sqe) fills the SQE; a timeout in `o` becomes a linked timeout; a stop token
  // installs the stop callback. r's completion_/waiter_ must be set by the caller.
  template <class Prep>
  void arm(detail::io_request& r, const io_options& o, Prep&& prep);
  // The next round of a multi-round request (send_all): same timeout, no new bookkeeping.
  template <class Prep>
  void submit_round(detail::io_request& r, Prep&& prep);
  // Counts `r` as pending (pending_operations()) and resets its outcome; its completion is
  // someone else's (an accept waiting in its listener's queue) until untrack().
  void track(detail::io_request& r) noexcept;
  // The request completed: no longer pending; it lets go of its socket's core.
  void untrack(detail::io_request& r) noexcept;
  detail::socket_core* make_core(int fd);
  void unlink_core(detail::socket_core* c) noexcept;
  void defer(void (*fn)(void*), void* arg);
  void report_exception(std::exception_ptr e) noexcept;
  void link_task(detail::spawned_link& l) noexcept;
  void unlink_task(detail::spawned_link& l) noexcept;
  void link_hook(detail::drain_hook* h) noexcept;
  void unlink_hook(detail::drain_hook* h) noexcept;
  bool draining() const noexcept { return draining_; }
  bool in_loop() const noexcept { return in_loop_; }
  void check_thread() const noexcept { assert(running_in_this_thread()); }
  struct ready_item {
    void (*fn)(void*);
    void* arg;
  };
  template <class Pred>
  static bool call_pred(void* p) {
    return static_cast<bool>((*static_cast<std::remove_reference_t<Pred>*>(p))());
  }
  template <class Pred>
  static void* as_arg(Pred& pred) noexcept {
    return const_cast<void*>(static_cast<const void*>(std::addressof(pred)));
  }
  // The loop's state for as long as one loop routine runs; nested routines share it, and the
  // outermost one hands what is prepared to the kernel when it returns (also by exception).
  class loop_scope {
   public:
    explicit loop_scope(io_context& c) noexcept : c_(c), outer_(!c.in_loop_) { c.in_loop_ = true; }
    ~loop_scope() {
      if (!outer_) return;
      c_.in_loop_ = false;
      c_.ring_.flush();
    }
    loop_scope(const loop_scope&) = delete;
    loop_scope& operator=(const loop_scope&) = delete;

   private:
    io_context& c_;
    bool outer_;
  };
  static void resume_handle(void* a);
  static void report_posted_error(void* self, std::exception_ptr e);
  static bool task_done(void* h);

  // The one loop: turns until done(arg) (checked after each turn's ready work) or, with a
  // deadline, until it passes (returns false then). `outermost`: refuses to nest.
  bool loop(bool (*done)(void*), void* arg, const char* who, bool outermost,
            const std::chrono::steady_clock::time_point* deadline);
  // One loop turn is run_ready() (ready work, posted work, cross-thread cancels), then one
  // io_uring_enter that submits everything prepared and, when nothing is ready, waits.
  void run_ready();
  void enter(bool may_block);
  // One loop turn that waits for at most `limit` when nothing is ready.
  void enter_for(std::chrono::nanoseconds limit);
  // Tasks, operations or ready work remain (work guards aside).
  bool busy() const noexcept;
  bool has_work() const noexcept;
  void shutdown() noexcept;
  // Closes the descriptors of the cores still linked and detaches them from this context.
  // `receives_later`: the receives waiting in a core complete on the drain's last run of ready
  // work (after every CQE is reaped), not at once.
  void orphan_cores(bool receives_later) noexcept;
  void free_retired_cores() noexcept;

  std::thread::id owner_;
  detail::ring ring_;
  detail::mailbox mailbox_;
  std::vector<ready_item> ready_;
  std::size_t ready_head_ = 0;   // items before it have run
  std::size_t pending_requests_ = 0;  // user-visible requests not finished
  std::size_t live_tasks_ = 0;
  std::size_t guards_ = 0;
  std::uint64_t inline_completions_ = 0;
  std::uint64_t tasks_ended_by_io_error_ = 0;
  std::uint64_t buffer_shortages_ = 0;
  std::uint64_t zero_copy_sends_ = 0;
  std::uint64_t zero_copy_copied_ = 0;
  std::size_t send_zc_threshold_ = 0;  // 0: off (not asked for, or the kernel lacks it)
  unsigned receive_queue_limit_ = 8;
  bool draining_ = false;
  bool in_loop_ = false;
  detail::spawned_link spawned_;  // sentinel of the spawned-task list
  std::vector<detail::drain_hook*> hooks_;
  std::function<void(std::exception_ptr)> on_exception_;
  detail::socket_core cores_;  // sentinel of the live cores

  friend class work_guard;
};

// ---- the door (detail/access.hpp) ----

inline detail::ring& detail::access::ring_of(io_context& c) noexcept { return c.ring_; }
template <class Prep>
void detail::access::arm(io_context& c, io_request& r, const io_options& o, Prep&& prep) {
  c.arm(r, o, std::forward<Prep>(prep));
}
template <class Prep>
void detail::access::submit_round(io_context& c, io_request& r, Prep&& prep) {
  c.submit_round(r, std::forward<Prep>(prep));
}
inline void detail::access::track(io_context& c, io_request& r) noexcept { c.track(r); }
inline void detail::access::untrack(io_context& c, io_request& r) noexcept { c.untrack(r); }
inline void detail::access::count_inline(io_context& c) noexcept { ++c.inline_completions_; }
inline void detail::access::count_io_error(io_context& c) noexcept { ++c.tasks_ended_by_io_error_; }
inline void detail::access::count_buffer_shortage(io_context& c) noexcept { ++c.buffer_shortages_; }
inline void detail::access::count_zero_copy(io_context& c, bool copied) noexcept {
  ++c.zero_copy_sends_;
  c.zero_copy_copied_ += copied;
}
inline std::size_t detail::access::send_zc_threshold(const io_context& c) noexcept {
  return c.send_zc_threshold_;
}
inline unsigned detail::access::receive_queue_limit(const io_context& c) noexcept {
  return c.receive_queue_limit_;
}
inline void detail::access::defer(io_context& c, void (*fn)(void*), void* arg) { c.defer(fn, arg); }
inline void detail::access::defer_resume(io_context& c, std::coroutine_handle<> h) {
  c.defer(&io_context::resume_handle, h.address());
}
inline bool detail::access::draining(const io_context& c) noexcept { return c.draining_; }
inline bool detail::access::in_loop(const io_context& c) noexcept { return c.in_loop_; }
inline void detail::access::report_exception(io_context& c, std::exception_ptr e) noexcept {
  c.report_exception(std::move(e));
}
inline detail::socket_core* detail::access::make_core(io_context& c, int fd) {
  return c.make_core(fd);
}
inline void detail::access::unlink_core(io_context& c, socket_core* core) noexcept {
  c.unlink_core(core);
}
inline void detail::access::retire_core(io_context& c, socket_core* core) noexcept {
  c.mailbox_.retire_core(core);
}
inline void detail::access::queue_cancel(io_context& c, io_request* r) { c.mailbox_.queue_cancel(r); }
inline void detail::access::queue_hook(io_context& c, mail_hook* h) noexcept { c.mailbox_.queue_hook(h); }
inline void detail::access::unqueue_cancel(io_context& c, io_request* r) noexcept {
  c.mailbox_.unqueue_cancel(r);
}
inline void detail::access::link_task(io_context& c, spawned_link& l) noexcept { c.link_task(l); }
inline void detail::access::unlink_task(io_context& c, spawned_link& l) noexcept {
  c.unlink_task(l);
}
inline void detail::access::link_hook(io_context& c, drain_hook* h) noexcept { c.link_hook(h); }
inline void detail::access::unlink_hook(io_context& c, drain_hook* h) noexcept {
  c.unlink_hook(h);
}

// ---- inline hot path ----

inline void io_context::track(detail::io_request& r) noexcept {
  r.ctx_ = this;
  r.on_cqe_ = &detail::io_request::on_cqe;  // a previous operation may have set its own
  r.res_ = 0;
  r.timed_ = false;
  r.cancelled_ = false;
  ++pending_requests_;
}

inline void io_context::untrack(detail::io_request& r) noexcept {
  --pending_requests_;
  if (detail::socket_core* c = r.core_) {
    r.core_ = nullptr;
    --c->armed;
    detail::free_core_if_unused(c);
  }
}

inline void detail::io_request::count_down() noexcept {
  if (--cqes_left_ != 0) return;
  // A cancellation that raced with a timeout: the op reports -ECANCELED either way.
  if (extras_ && res_ == -ECANCELED && extras_->timer_fired) res_ = -ETIMEDOUT;
  if (again_ && !access::draining(*ctx_) && again_(this)) return;  // the next round is armed
  if (extras_) finish_extras();
  access::untrack(*ctx_, *this);
  completion_(this);  // while the context is being destroyed, it only releases (see resume_waiter)
}

template <class Prep>
void io_context::arm(detail::io_request& r, const io_options& o, Prep&& prep) {
  r.prepare(o);
  track(r);
  r.timed_ = o.timeout.count() > 0;
  if (r.timed_) [[unlikely]]
    r.extras().timer.ts_ = detail::to_timespec(o.timeout.count());
  r.cancel_ = &detail::io_request::cancel_sqe;
  submit_round(r, std::forward<Prep>(prep));
  if (o.stop.stop_possible()) r.watch(o.stop);
}

template <class Prep>
void io_context::submit_round(detail::io_request& r, Prep&& prep) {
  io_uring_sqe* sqe = ring_.reserve_sqes(r.timed_ ? 2 : 1);
  prep(sqe);
  io_uring_sqe_set_data(sqe, &r);
  r.cqes_left_ = 1;
  if (r.timed_) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* t = ring_.next_sqe();
    detail::request_extras& x = r.extras();
    x.timer.on_cqe_ = &detail::io_request::on_timer_cqe;
    io_uring_prep_link_timeout(t, &x.timer.ts_, 0);
    io_uring_sqe_set_data(t, &x.timer);
    x.timer_armed = true;
    r.cqes_left_ = 2;
  }
  ring_.expect_cqes(r.cqes_left_);
}

template <class T>
T io_context::block_on(task<T> t) {
  check_thread();
  auto h = t.handle();
  if (!h) throw std::logic_error("ringsock: block_on of an empty task");
  if (in_loop_) throw std::logic_error("ringsock: block_on called from inside the loop");
  h.promise().state_ = detail::run_state::running;
  defer(&resume_handle, h.address());
  loop(&task_done, h.address(), "block_on", true, nullptr);
  return h.promise().take();
}

}  // namespace ringsock
