// runtime: one io_context per thread, started, listened on and shut down as one (thread-per-core).
//
//   ringsock::runtime rt({.threads = 4});
//   runtime_report r = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
//     socket l = rt.listen(ctx, endpoint::parse("0.0.0.0:8080"));  // SO_REUSEPORT, every thread
//     co_await accept_loop(ctx, l);                               // the kernel spreads connections
//   });
//
// Each thread makes its own context (a ring is bound to the thread that submits to it), runs
// the factory's task on it, and runs its loop until stop(). Nothing is shared between the threads
// on the data path: a connection is accepted, served and closed on the thread whose listener the
// kernel gave it to, with that thread's ring, buffers and frame recycler, and no lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ringsock/endpoint.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/socket.hpp"
#include "ringsock/task.hpp"

namespace ringsock {

namespace detail {
struct handoff_group;
class signal_stop;
}

// How runtime::listen shares a port between the threads.
enum class spread_mode {
  // A listener per thread with SO_REUSEPORT: the kernel spreads connections by a hash of their
  // addresses. Nothing is shared; a thread that is busy still gets its share.
  reuse_port,
  // The first thread to listen on an endpoint accepts for all and hands each connection to the
  // thread with the fewest connections waiting for it (its own queue or another thread's, over
  // IORING_OP_MSG_RING). The other threads' listen() gives a fed listener: its accept_async
  // completes inline when a handed connection is queued, as any listener's. For uneven load.
  hand_off,
};

// What one thread of a runtime did, at its end.
struct thread_report {
  unsigned index = 0;
  int cpu = -1;                 // the CPU it was pinned to (-1: not pinned)
  shutdown_report shutdown{};   // its context's graceful shutdown
  io_stats stats{};             // its context's counters, taken after the shutdown
  // spread_mode::hand_off: connections this thread's accepting listener posted to others (kept:
  // took itself), and those it was posted (refused: closed unserved, its listener had stopped).
  // Summed over the threads, handed_out == handed_in.
  std::uint64_t handed_out = 0, kept = 0, handed_in = 0, refused = 0;
  // Tasks other runtime threads handed to this one through its inbox (spawn_on; those whose
  // MSG_RING wake the kernel refused, and came by the mailbox's wake instead, included).
  std::uint64_t spawned_in = 0;
};

// What run() returns: one report per thread, and their sums.
struct runtime_report {
  std::vector<thread_report> threads;
  bool finished_in_time = true;  // every thread's tasks and operations ended within the grace
  std::size_t tasks_at_deadline = 0, ops_at_deadline = 0, tasks_left = 0;  // summed
  io_stats stats{};              // summed counters
  int stop_signal = 0;           // the one of params::stop_signals that stopped it (0: none)
};

class runtime {
 public:
  struct params {
    unsigned threads = 0;  // 0: one per CPU this process may run on (sched_getaffinity)
    bool pin = false;      // pin thread i to the i-th of those CPUs
    io_context::params context{};                  // for every thread's context
    std::chrono::milliseconds grace{5000};         // each context's shutdown_gracefully
    spread_mode spread = spread_mode::reuse_port;  // how listen() shares a port
    // Signals that stop the run as stop() does (say {SIGINT, SIGTERM}). run() blocks them in its
    // own thread and its threads (they inherit the mask) and takes them through a signalfd that
    // every thread's ring polls; the thread that reads one calls stop() on its next loop turn.
    // After the run the ones still pending are taken (unless the caller had blocked them itself)
    // and the caller's mask is restored. Other threads of the process must block them too: the
    // kernel gives a process-wide signal to a thread that does not, and its default action runs
    // there. A signal sent to one thread (pthread_kill, raise) is not seen: send it to the process.
    std::vector<int> stop_signals{};
  };

  // Makes no thread yet: run() does. Throws std::invalid_argument for more threads than CPUs
  // when pinning.
  runtime() : runtime(params{}) {}
  explicit runtime(params p);
  // Stops a run() still going on another thread and waits for it (a runtime must not be
  // destroyed from one of its own threads).
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  unsigned size() const noexcept { return threads_; }

  // Starts the threads; on each, makes its context and, once every thread's context is up,
  // spawns factory(ctx, index) (a callable returning task<void>, kept alive until run() returns,
  // so a coroutine lambda may use its captures), then runs that thread's loop until stop() or
  // until that thread has no work left (a thread whose tasks all ended stops early: keep an
  // io_context::work_guard in its factory to keep it up for spawn_on); then shuts each context
  // down gracefully (params::grace), joins, and returns the report.
  // An exception escaping the factory, a spawned task (other than a socket_error, which ends only
  // its task, as in io_context::spawn) or a context's construction stops every thread; run() then
  // rethrows the first one, after every thread has shut down and joined. Not reentrant: throws
  // std::logic_error when a run() is already going on.
  template <class Factory>
  runtime_report run(Factory&& factory) {
    std::function<task<void>(io_context&, unsigned)> f = std::forward<Factory>(factory);
    return run_threads(f);
  }

  // Stops every thread: each loop returns at the end of its turn, and the graceful shutdown
  // runs. Thread-safe, from any thread (it takes a mutex: not from a signal handler; a task
  // reading a signalfd may call it). Called before run() starts, that run() ends as soon as
  // its threads are up.
  void stop() noexcept;

  // A listening socket on ctx (one of this runtime's contexts, during run()) for `ep`, so that
  // every thread may have one on the same port. reuse_port: bound with SO_REUSEPORT, and the
  // kernel spreads connections over them. hand_off: the first call for `ep` makes the listener
  // that accepts, and each later call (one per thread) a fed listener that is handed its share
  // (the first call's backlog applies to all); when the accepting listener closes, the fed ones
  // stop: their accepts complete with ECANCELED.
  // Port 0: the first listener picks a free port and the others of the same address take it.
  // Thread-safe (the threads' factories call it at once). Throws std::invalid_argument for a
  // context not of this run, std::logic_error for a second hand-off listener of `ep` on one
  // thread or after the accepting one closed, socket_error when bind or listen fails.
  socket listen(io_context& ctx, const endpoint& ep, int backlog = SOMAXCONN);
  // The port listeners of `ep` have: ep's own, or for port 0 the one the first listen() picked
  // (0 while none did yet).
  std::uint16_t bound_port(const endpoint& ep) const;

  // Runs `t` on thread `index` (a following loop turn of its context). Any thread. From one of
  // this runtime's threads the task is pushed onto the target's lock-free inbox (its own promise
  // is the node: nothing is allocated) and, when the inbox was empty, one IORING_OP_MSG_RING
  // from the caller's ring wakes the target (one io_uring_enter; tasks pushed meanwhile ride on
  // that wake); from any other thread, or on a kernel without MSG_RING, through the target
  // context's mailbox (post: a mutex and an eventfd write). Every thread's context is up before
  // any factory runs, so a factory may spawn onto any thread. A task that arrives while its
  // thread shuts down gets the rest of the grace; one still unfinished then is destroyed with the
  // context, as any spawned task. Throws std::out_of_range for an index past size(),
  // std::logic_error when that thread's loop is not running (not started, or ended).
  void spawn_on(unsigned index, task<void> t);

  // The context of the calling thread when it is one of a runtime's threads (null otherwise),
  // and its index.
  static io_context* this_context() noexcept;
  static unsigned this_index() noexcept;

 private:
  struct slot;
  socket listen_hand_off(io_context& ctx, const endpoint& ep, int backlog);
  unsigned index_of(const io_context& ctx) const;  // under mutex_
  void drain_hand_offs(unsigned index, io_context& ctx);
  runtime_report run_threads(std::function<task<void>(io_context&, unsigned)>& f);
  void thread_main(unsigned index, std::function<task<void>(io_context&, unsigned)>& f) noexcept;
  void fail(std::exception_ptr e) noexcept;

  unsigned threads_;
  bool pin_;
  spread_mode spread_;
  io_context::params ctx_params_;
  std::chrono::milliseconds grace_;
  std::vector<int> cpus_;  // the CPUs this process may run on

  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::unique_ptr<slot[]> slots_;  // one per thread while run() goes on
  mutable std::mutex mutex_;        // guards the fields below (off the data path)
  std::condition_variable ended_;   // running_ went false
  std::exception_ptr first_error_;
  struct bound {
    endpoint requested;
    std::uint16_t port;
  };
  std::vector<bound> bound_;
  std::vector<std::unique_ptr<detail::handoff_group>> groups_;  // hand_off: one per endpoint
  std::unique_ptr<detail::signal_stop> signals_;  // params::stop_signals, during run()
  std::vector<int> stop_signals_;
  std::size_t starting_ = 0;         // (mutex_) threads that have not yet made their context
  std::condition_variable started_;  // starting_ reached 0
};

}  // namespace ringsock
