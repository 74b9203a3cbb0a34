// runtime::params::stop_signals: the signals that stop a run, taken through a signalfd that every
// runtime thread's ring polls (no handler runs; stop() is called from a loop turn, never from
// signal context or from inside a reap).
#pragma once

#include <signal.h>

#include <atomic>
#include <memory>
#include <vector>

#include "ringsock/detail/mailbox.hpp"
#include "ringsock/detail/operation.hpp"

namespace ringsock {
class io_context;
}

namespace ringsock::detail {

class signal_stop {
 public:
  // Blocks `signals` in the calling thread (the threads it starts next inherit the mask) and
  // opens a signalfd for them, for `threads` threads to poll. Throws std::invalid_argument for a
  // signal that cannot be taken this way (SIGKILL, SIGSTOP, out of range), socket_error when
  // signalfd fails.
  signal_stop(const std::vector<int>& signals, unsigned threads);
  // Takes the signals still pending that the calling thread did not block before (a second
  // Ctrl-C during the shutdown), so restoring its mask delivers none of them; closes the fd.
  ~signal_stop();
  signal_stop(const signal_stop&) = delete;
  signal_stop& operator=(const signal_stop&) = delete;

  // On thread `index`, whose context is ctx: polls the signalfd on ctx's ring for as long as the
  // context lives (its end cancels the poll). When a signal comes, one thread reads it and, on
  // its next loop turn, calls on_signal(arg, signo).
  void arm(unsigned index, io_context& ctx, void (*on_signal)(void*, int), void* arg) noexcept;
  // The first signal that came (0: none).
  int received() const noexcept { return received_.load(std::memory_order_acquire); }

 private:
  struct watch;
  // The way to the loop turn that cannot fail (no allocation), when deferring could not.
  struct stop_hook : mail_hook {
    watch* w = nullptr;
  };
  struct watch : operation {
    watch() noexcept;
    signal_stop* owner = nullptr;
    io_context* ctx = nullptr;
    void (*on_signal)(void*, int) = nullptr;
    void* arg = nullptr;
    int signo = 0;
    stop_hook hook;
  };
  static void on_poll(operation* op, int res, std::uint32_t flags) noexcept;
  static void poll(watch& w) noexcept;

  sigset_t set_{};
  sigset_t old_{};
  int fd_ = -1;
  std::unique_ptr<watch[]> watches_;
  std::atomic<int> received_{0};
};

}  // namespace ringsock::detail
