#include "ringsock/detail/mailbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "ringsock/detail/ring.hpp"
#include "ringsock/error.hpp"

namespace ringsock::detail {

mailbox::wake_op::wake_op(mailbox* m) noexcept : operation(&mailbox::on_wake), box(m) {}

mailbox::mailbox(ring& r, std::size_t max_posted)
    : ring_(r), wake_op_(this), max_posted_(max_posted) {
  // Blocking on purpose: io_uring answers a read on an O_NONBLOCK file with -EAGAIN instead of
  // waiting for it.
  fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (fd_ < 0) throw socket_error(errno, "ringsock: eventfd for io_context::post");
  running_.reserve(64);
  arm_wake();
}

mailbox::~mailbox() { ::close(fd_); }

void mailbox::arm_wake() noexcept {
  io_uring_sqe* sqe = ring_.reserve_sqes(1);
  io_uring_prep_read(sqe, fd_, &wake_op_.value, sizeof wake_op_.value, 0);
  io_uring_sqe_set_data(sqe, &wake_op_);
  ring_.expect_cqes();
}

void mailbox::on_wake(operation* op, int, std::uint32_t) noexcept {
  mailbox& m = *static_cast<wake_op*>(op)->box;
  m.wake_pending_.store(false);
  if (!m.closing_) m.arm_wake();
}

void mailbox::wake() noexcept {
  if (wake_pending_.exchange(true)) return;  // one write is enough until the read completes
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

void mailbox::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (posted_.size() >= max_posted_)
      throw queue_full_error("ringsock: io_context::post: the posted-work queue is full (" +
                             std::to_string(max_posted_) + " items); the loop is not keeping up");
    posted_.push_back(std::move(fn));
    has_mail_.store(true, std::memory_order_release);
  }
  wake();
}

void mailbox::request_stop(bool wake_loop) noexcept {
  stop_.store(true, std::memory_order_release);
  if (wake_loop) wake();
}

void mailbox::queue_cancel(io_request* r) {
  {
    std::lock_guard lock(mutex_);
    request_extras& x = r->extras();
    if (x.cross_queued) return;
    x.cross_queued = true;
    x.cross_next = cancels_;
    cancels_ = r;
    has_mail_.store(true, std::memory_order_release);
  }
  wake();
}

void mailbox::unqueue_cancel(io_request* r) noexcept {
  std::lock_guard lock(mutex_);
  if (!r->extras().cross_queued) return;
  for (io_request** p = &cancels_; *p; p = &(*p)->extras().cross_next)
    if (*p == r) {
      *p = r->extras().cross_next;
      break;
    }
  r->extras().cross_queued = false;
}

void mailbox::retire_core(socket_core* c) noexcept {
  {
    std::lock_guard lock(mutex_);
    c->retired_next = retired_;
    retired_ = c;
    has_mail_.store(true, std::memory_order_release);
  }
  wake();
}

void mailbox::queue_hook(mail_hook* h) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (h->queued) return;
    h->queued = true;
    h->next = hooks_;
    hooks_ = h;
    has_mail_.store(true, std::memory_order_release);
  }
  wake();
}

socket_core* mailbox::take_retired() noexcept {
  std::lock_guard lock(mutex_);
  return std::exchange(retired_, nullptr);
}

void mailbox::run_mail(void (*on_error)(void*, std::exception_ptr), void* arg) {
  for (;;) {
    io_request* r;
    {
      std::lock_guard lock(mutex_);
      r = cancels_;
      if (!r) {
        for (auto& fn : posted_) running_.push_back(std::move(fn));
        posted_.clear();
        has_mail_.store(retired_ != nullptr, std::memory_order_release);
        break;
      }
      cancels_ = r->extras().cross_next;
      r->extras().cross_queued = false;
    }
    cancel_now(r);
  }
  for (;;) {
    mail_hook* h;
    {
      std::lock_guard lock(mutex_);
      h = hooks_;
      if (!h) break;
      hooks_ = h->next;
      h->queued = false;
    }
    h->fn(h);
  }
  // A posted function may re-enter the loop (compat's EndX): the nested delivery continues from
  // the shared head, so every item runs exactly once and in the order posted.
  while (running_head_ < running_.size()) {
    std::function<void()> fn = std::move(running_[running_head_++]);
    try {
      fn();
    } catch (...) {
      on_error(arg, std::current_exception());
    }
  }
  running_.clear();
  running_head_ = 0;
}

}  // namespace ringsock::detail
