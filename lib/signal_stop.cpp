// Stop signals through a signalfd polled by a ring (signal_stop.hpp).
#include "signal_stop.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include "ringsock/detail/ring.hpp"
#include "ringsock/error.hpp"

namespace ringsock::detail {

signal_stop::signal_stop(const std::vector<int>& signals) : operation(&signal_stop::on_poll) {
  sigemptyset(&set_);
  for (int s : signals) {
    if (s == SIGKILL || s == SIGSTOP || sigaddset(&set_, s) != 0)
      throw std::invalid_argument("ringsock: runtime: stop signal " + std::to_string(s) +
                                  " cannot be taken (SIGKILL, SIGSTOP or not a signal)");
  }
  // Non-blocking: it is read only after the ring's poll said it is readable.
  fd_ = ::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) throw socket_error(errno, "ringsock: runtime: signalfd for the stop signals");
  // Blocked, so that the kernel leaves them pending for the signalfd instead of running their
  // default action (a signal no thread blocks goes to a thread that does not).
  ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
}

signal_stop::~signal_stop() {
  signalfd_siginfo info;
  while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  ::close(fd_);
}

void signal_stop::arm(ring& r, void (*on_signal)(void*, int), void* arg) noexcept {
  on_signal_ = on_signal;
  arg_ = arg;
  ring_ = &r;
  poll();
}

void signal_stop::poll() noexcept {
  io_uring_sqe* sqe = ring_->reserve_sqes(1);
  io_uring_prep_poll_add(sqe, fd_, POLLIN);
  io_uring_sqe_set_data(sqe, static_cast<operation*>(this));
  ring_->expect_cqes();
}

void signal_stop::on_poll(operation* op, int res, std::uint32_t) noexcept {
  auto& s = *static_cast<signal_stop*>(op);
  if (res < 0) return;  // cancelled: its ring goes
  signalfd_siginfo info;
  if (::read(s.fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) {
    s.poll();  // taken by someone else (sigwaitinfo on another thread): watch on
    return;
  }
  s.received_.store(static_cast<int>(info.ssi_signo), std::memory_order_release);
  s.on_signal_(s.arg_, static_cast<int>(info.ssi_signo));
}

}  // namespace ringsock::detail
