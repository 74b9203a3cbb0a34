// Stop signals through a signalfd polled by the runtime threads' rings (signal_stop.hpp).
#include "signal_stop.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <stdexcept>
#include <string>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/ring.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock::detail {

signal_stop::watch::watch() noexcept : operation(&signal_stop::on_poll) {
  hook.w = this;
  hook.fn = [](mail_hook* h) noexcept {
    watch& x = *static_cast<stop_hook*>(h)->w;
    x.on_signal(x.arg, x.signo);
  };
}

signal_stop::signal_stop(const std::vector<int>& signals, unsigned threads)
    : watches_(std::make_unique<watch[]>(threads)) {
  sigemptyset(&set_);
  for (int s : signals) {
    if (s == SIGKILL || s == SIGSTOP || sigaddset(&set_, s) != 0)
      throw std::invalid_argument("ringsock: runtime: stop signal " + std::to_string(s) +
                                  " cannot be taken (SIGKILL, SIGSTOP or not a signal)");
  }
  // Non-blocking: it is read only after a ring's poll said it is readable, and several threads
  // poll it (the one that reads second finds nothing and polls again).
  fd_ = ::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) throw socket_error(errno, "ringsock: runtime: signalfd for the stop signals");
  // Blocked, so that the kernel leaves them pending for the signalfd instead of running their
  // default action (a signal no thread blocks goes to a thread that does not).
  ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  for (unsigned i = 0; i < threads; ++i) watches_[i].owner = this;
}

signal_stop::~signal_stop() {
  // Only those this object blocked: a caller that blocked one itself takes it its own way.
  sigset_t ours;
  sigemptyset(&ours);
  for (int s = 1; s < NSIG; ++s)
    if (sigismember(&set_, s) == 1 && sigismember(&old_, s) != 1) sigaddset(&ours, s);
  const timespec now{0, 0};
  while (::sigtimedwait(&ours, nullptr, &now) > 0) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  ::close(fd_);
}

void signal_stop::arm(unsigned index, io_context& ctx, void (*on_signal)(void*, int), void* arg) noexcept {
  watch& w = watches_[index];
  w.ctx = &ctx;
  w.on_signal = on_signal;
  w.arg = arg;
  poll(w);
}

void signal_stop::poll(watch& w) noexcept {
  ring& r = access::ring_of(*w.ctx);
  io_uring_sqe* sqe = r.reserve_sqes(1);
  io_uring_prep_poll_add(sqe, w.owner->fd_, POLLIN);
  io_uring_sqe_set_data(sqe, static_cast<operation*>(&w));
  r.expect_cqes();
}

void signal_stop::on_poll(operation* op, int res, std::uint32_t) noexcept {
  auto& w = *static_cast<watch*>(op);
  if (res < 0) return;  // cancelled: its context goes
  signal_stop& s = *w.owner;
  signalfd_siginfo info;
  if (::read(s.fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    w.signo = static_cast<int>(info.ssi_signo);
    int none = 0;
    s.received_.compare_exchange_strong(none, w.signo, std::memory_order_acq_rel);
    // Not from inside the reap: the callback may take locks that this thread's caller of a
    // nested reap (a full SQ) holds.
    auto call = [](void* p) {
      auto& x = *static_cast<watch*>(p);
      x.on_signal(x.arg, x.signo);
    };
    try {
      access::defer(*w.ctx, call, &w);
    } catch (...) {  // no room to defer it: through the mailbox, also on a later loop turn
      access::queue_hook(*w.ctx, &w.hook);
    }
  }
  poll(w);  // a later signal (or one another thread read first) is taken the same way
}

}  // namespace ringsock::detail
