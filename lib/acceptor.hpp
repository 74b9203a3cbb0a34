// The accept side of a listening socket: one multishot accept, a bounded ready queue of
// connections that arrived before anyone asked, and a FIFO of waiting accepts.
//
// The listener's states (fields in brackets) and what moves it:
//
//   state         meaning                          event                      -> next
//   idle          nothing in the kernel            maybe_arm(): queue <= capacity/2,
//                                                  not stopped/fatal/backing off -> armed
//   armed         accept in the kernel             CQE fd, a waiter: hand_over   armed
//                 [in_kernel_]                     CQE fd, none: push to queue   armed
//                                                  queue reaches capacity        -> cancelling
//                                                  CQE without F_MORE            -> idle, maybe_arm
//                                                  EINVAL before any fd          -> single-shot, idle
//                                                  ECANCELED / ECONNABORTED ...  armed or idle
//                                                  EMFILE/ENFILE/ENOBUFS/ENOMEM  -> backing off
//                                                  any other error               -> fatal
//   cancelling    asked the kernel to stop         last CQE                      -> idle
//                 [in_kernel_ && cancel_sent_]
//   backing off   a timer of 10 ms, doubling to    timer CQE                     -> idle, maybe_arm
//                 500 ms [backing_off_]            (args-form waiters got the error; the others
//                                                  keep waiting)
//   fatal         [fatal_ = -errno]                every waiter and every later accept gets it
//   stopped       [stopped_] shutdown(fd) refuses  new accepts complete inline with ECANCELED;
//                 connections at once              waiters get ECANCELED on a later turn; the
//                                                  queue's connections are closed
//   closing       [closing_] (also stopped)        own_sqes_due_ == 0 and not in a handler
//                                                  -> close(fd), delete this
//
// A waiting accept (its accept_op) goes: started -> inline (a queued fd, or the error of a
// fatal/stopped listener) | waiting [source != null] -> handed a connection | timed out
// (ETIMEDOUT) | stopped (ECANCELED on a later turn) | given an error; with a buffer, a handed
// connection first goes to first receive [second_round] -> completes with the bytes received
// (its timer or stop cancels that receive). The context's destruction abandons every waiter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ringsock/detail/drain_hook.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/socket_ops.hpp"
#include "ringsock/io_options.hpp"

namespace ringsock::detail {

struct handoff_group;
struct handoff_member;

class acceptor {
 public:
  acceptor(io_context& ctx, int fd, std::size_t capacity);
  ~acceptor();
  acceptor(const acceptor&) = delete;
  acceptor& operator=(const acceptor&) = delete;

  // Starts the accept request `r`, whose accept_op is r.op_ (with a non-empty buffer a first
  // receive follows). Returns true when it completed inline: r.res_ holds the new fd (>= 0) or
  // -errno, and r.completion_ is never called. Otherwise r.completion_ is called once, later,
  // with r.res_ = fd (or, with a buffer, op.fd = fd and r.res_ = bytes received) or -errno.
  bool start(io_request& r, const io_options& o);
  // A waiter that dies before it completed (its frame was destroyed with the context).
  void forget(accept_op& op) noexcept;
  void set_capacity(std::size_t n);
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t queued() const noexcept { return count_; }

  // The listener closes: new connections are refused at once (shutdown before the cancel),
  // waiters complete with ECANCELED on a following loop turn, unclaimed connections are closed.
  // The acceptor frees itself, and releases the fd number, after its last CQE.
  void close() noexcept;
  // Graceful shutdown: the same, except that the listening socket keeps its descriptor (and this
  // object) until it is closed; accepts started later complete inline with ECANCELED.
  void stop_accepting() noexcept;

  // ---- hand-off between threads (runtime's spread_mode::hand_off, handoff.hpp) ----
  // The accepting listener offers every new connection to g first (handoff_route): it goes to
  // this thread's queue or to another thread's fed listener.
  void set_router(handoff_group* g) noexcept { router_ = g; }
  // A fed listener accepts nothing itself: connections arrive through deliver(), handed over by
  // another thread's accepting listener. m hears when one is taken and when this one stops.
  void make_fed(handoff_member* m) noexcept;
  bool fed() const noexcept { return fed_by_ != nullptr; }
  // A handed-over connection (this thread; or, on the accepting listener, one whose message
  // failed): to the first waiter, else to the ready queue; a stopped listener closes it.
  void deliver(int fd) noexcept;

  // The context is being destroyed: waiters complete with ECANCELED and are resumed by nobody.
  bool has_waiters() const noexcept { return waiters_ != nullptr; }
  void abandon_waiters() noexcept;

 private:
  struct multishot_accept : operation {
    explicit multishot_accept(acceptor* a) noexcept;
    acceptor* self;
  };
  struct backoff_op : operation {
    explicit backoff_op(acceptor* a) noexcept;
    acceptor* self;
    __kernel_timespec ts{};
  };
  static void on_accept(operation* op, int res, std::uint32_t flags) noexcept;
  static void on_backoff(operation* op, int res, std::uint32_t flags) noexcept;
  static void on_wait_timer(operation* op, int res, std::uint32_t flags) noexcept;
  static void on_first_receive(operation* op, int res, std::uint32_t flags) noexcept;
  static void on_wait_cancel(io_request* r) noexcept;
  static void cancel_waiter(void* r) noexcept;

  void arm() noexcept;
  void maybe_arm() noexcept;
  void start_backoff() noexcept;
  void maybe_free() noexcept;
  void watch(io_request& r, const io_options& o);
  void hand_over(io_request& r, int res) noexcept;
  void take_connection(int fd, bool more) noexcept;
  void first_receive(io_request& r, int fd) noexcept;
  void push_ready(int fd);
  int pop_ready() noexcept;
  void push_waiter(io_request& r) noexcept;
  io_request* take_waiters() noexcept;  // detaches the whole FIFO

  io_context& ctx_;
  int fd_;
  std::size_t capacity_;
  std::vector<int> ready_;  // ring buffer, power-of-two size >= 2 * capacity_
  std::size_t head_ = 0, count_ = 0;
  io_request* waiters_ = nullptr;
  io_request* waiters_tail_ = nullptr;
  multishot_accept accept_;
  backoff_op backoff_;
  drain_hook hook_;  // how the context's shutdowns reach this listener
  handoff_group* router_ = nullptr;   // hand-off: offered each new connection first
  handoff_member* fed_by_ = nullptr;  // a fed listener: its place in the hand-off group
  unsigned own_sqes_due_ = 0;          // our own SQEs whose last CQE has not arrived
  unsigned in_handler_ = 0;   // re-entrancy guard: a handler resumed a coroutine
  unsigned backoff_ms_ = 0;
  int fatal_ = 0;
  signed char kind_ = socket_core::kind_unknown;  // of the connections it accepts
  bool in_kernel_ = false;    // the (multishot) accept is armed
  bool cancel_sent_ = false;  // ... and asked to stop (queue full)
  bool backing_off_ = false;
  bool multishot_ = true;     // falls back to single-shot where the kernel refuses it
  bool accepted_any_ = false;
  bool stopped_ = false;      // no more accepting (closed, or stop_accepting)
  bool closing_ = false;      // closed: free after the last CQE
};

}  // namespace ringsock::detail
