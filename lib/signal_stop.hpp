// runtime::params::stop_signals: the signals that stop a run, taken through a signalfd that one
// runtime thread's ring polls (no handler runs, so stop() and its mutex are called from a loop,
// never from signal context).
#pragma once

#include <signal.h>

#include <atomic>
#include <vector>

#include "ringsock/detail/operation.hpp"

namespace ringsock::detail {

class ring;

class signal_stop : operation {
 public:
  // Blocks `signals` in the calling thread (the threads it starts next inherit the mask) and
  // opens a signalfd for them. Throws std::invalid_argument for a signal that cannot be taken
  // this way (SIGKILL, SIGSTOP, out of range), socket_error when signalfd fails.
  explicit signal_stop(const std::vector<int>& signals);
  // Takes the signals still pending (a second Ctrl-C during the shutdown), so restoring the
  // calling thread's mask delivers none of them; closes the signalfd.
  ~signal_stop();
  signal_stop(const signal_stop&) = delete;
  signal_stop& operator=(const signal_stop&) = delete;

  // On r's thread: polls the signalfd; when one of the signals comes, reads it and calls
  // on_signal(arg, signo) once. The poll is an ordinary kernel request of r: r's context
  // cancels and reaps it when it goes. Once per run.
  void arm(ring& r, void (*on_signal)(void*, int), void* arg) noexcept;
  // The signal that came (0: none yet).
  int received() const noexcept { return received_.load(std::memory_order_acquire); }

 private:
  static void on_poll(operation* op, int res, std::uint32_t flags) noexcept;
  void poll() noexcept;

  sigset_t set_{};
  sigset_t old_{};
  int fd_ = -1;
  void (*on_signal_)(void*, int) = nullptr;
  void* arg_ = nullptr;
  ring* ring_ = nullptr;
  std::atomic<int> received_{0};
};

}  // namespace ringsock::detail
