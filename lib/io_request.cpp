#include <cerrno>
#include <utility>

#include "ringsock/io_context.hpp"

namespace ringsock::detail {

void io_request::on_cqe(operation* op, int res, std::uint32_t) noexcept {
  auto* r = static_cast<io_request*>(op);
  r->res_ = res;
  r->count_down();
}

void io_request::on_timer_cqe(operation* op, int res, std::uint32_t) noexcept {
  io_request* r = static_cast<timer_part*>(op)->owner_;
  // -ETIME: the timeout fired (the linked op then ends with -ECANCELED); -ECANCELED: the op
  // finished first and the kernel removed the timeout.
  if (res == -ETIME) r->extras_->timer_fired = true;
  r->extras_->timer_armed = false;
  r->count_down();
}

void io_request::make_extras() {
  if (extras_) {  // left by a start that threw before arming (the args form reuses its request)
    drop_extras();
  }
  extras_ = new request_extras(this);
}

void io_request::finish_extras() noexcept {
  request_extras& x = *extras_;
  if (x.stop) {
    x.stop.reset();  // waits for a callback running on another thread
    access::unqueue_cancel(*ctx_, this);
  }
  drop_extras();
}

void io_request::drop_extras() noexcept {
  delete std::exchange(extras_, nullptr);
}

void io_request::cancel_sqe(io_request* r) noexcept { access::ring_of(*r->ctx_).prep_cancel(r); }

void arm_wait_timer(io_request& r, std::int64_t ns, operation::cqe_fn on_timer) noexcept {
  timer_part& t = r.extras().timer;
  t.ts_ = to_timespec(ns);
  t.on_cqe_ = on_timer;
  ring& rg = access::ring_of(*r.ctx_);
  io_uring_sqe* sqe = rg.reserve_sqes(1);
  io_uring_prep_timeout(sqe, &t.ts_, 0, 0);
  io_uring_sqe_set_data(sqe, &t);
  rg.expect_cqes();
  r.extras().timer_armed = true;
  ++r.cqes_left_;
}

void remove_armed_wait_timer(io_request& r) noexcept {
  io_uring_sqe* sqe = access::ring_of(*r.ctx_).reserve_sqes(1);
  io_uring_prep_timeout_remove(sqe, reinterpret_cast<std::uintptr_t>(&r.extras().timer), 0);
  io_uring_sqe_set_data64(sqe, 0);
}

void io_request::watch(const std::stop_token& tok) noexcept {
  // stop_callback's constructor throws nothing (it may run the callback at once).
  extras_->stop.emplace(tok, stop_request{this});
}

void stop_request::operator()() const noexcept {
  io_request* r = req;
  if (r->ctx_->running_in_this_thread())
    cancel_now(r);
  else
    access::queue_cancel(*r->ctx_, r);  // the ring and the request belong to the context's thread
}

void cancel_now(io_request* r) noexcept {
  r->cancelled_ = true;
  r->cancel_(r);
}

void resume_waiter(io_request* r) noexcept {
  // A dying context destroys the waiting frame instead of resuming it.
  if (!access::draining(*r->ctx_)) std::coroutine_handle<>::from_address(r->waiter_).resume();
}

}  // namespace ringsock::detail
