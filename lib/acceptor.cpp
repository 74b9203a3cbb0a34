#include "acceptor.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "handoff.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock::detail {

namespace {
constexpr unsigned first_backoff_ms = 10;
constexpr unsigned max_backoff_ms = 500;

std::size_t ring_size_for(std::size_t capacity) {
  std::size_t n = 8;
  while (n < 2 * capacity) n *= 2;
  return n;
}

}  // namespace

acceptor::multishot_accept::multishot_accept(acceptor* a) noexcept : operation(&acceptor::on_accept), self(a) {}
acceptor::backoff_op::backoff_op(acceptor* a) noexcept
    : operation(&acceptor::on_backoff), self(a) {}

acceptor::acceptor(io_context& ctx, int fd, std::size_t capacity)
    : ctx_(ctx),
      fd_(fd),
      capacity_(capacity ? capacity : 1),
      ready_(ring_size_for(capacity_), -1),
      accept_(this),
      backoff_(this) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
    kind_ = type == SOCK_STREAM ? socket_core::kind_stream : socket_core::kind_other;
  hook_.stop = [](void* a) noexcept { static_cast<acceptor*>(a)->stop_accepting(); };
  hook_.has_waiters = [](const void* a) noexcept {
    return static_cast<const acceptor*>(a)->has_waiters();
  };
  hook_.abandon = [](void* a) noexcept { static_cast<acceptor*>(a)->abandon_waiters(); };
  hook_.owner = this;
  access::link_hook(ctx_, &hook_);
}

acceptor::~acceptor() {
  if (fed_by_) handoff_left(*fed_by_);
  if (router_) handoff_origin_left(*router_);
  access::unlink_hook(ctx_, &hook_);
}

void close_listener(acceptor* a) noexcept { a->close(); }

namespace {
accept_op& op_of(io_request& r) noexcept { return *static_cast<accept_op*>(r.op_); }
}  // namespace

void accept_op::abandon() noexcept {
  source->forget(*this);
}

void check_op(const socket_core* c, const accept_op&) {
  if (!c || c->fd < 0) throw socket_closed_error(accept_op::name);
  if (!c->listener) throw not_listening_error(accept_op::name);
}

bool start_op(socket_core& c, io_request& r, accept_op& op, const io_options& o) {
  check_op(&c, op);  // again: the listener may have been closed since the call
  r.op_ = &op;
  r.again_ = nullptr;
  return c.listener->start(r, o);
}

void acceptor::abandon_waiters() noexcept {
  io_request* all = take_waiters();  // after this, `this` may be freed by a count_down below
  while (io_request* w = all) {
    all = op_of(*w).next;
    w->res_ = -ECANCELED;
    w->count_down();
  }
}

void acceptor::set_capacity(std::size_t n) {
  capacity_ = n ? n : 1;
  if (ready_.size() < 2 * capacity_) {
    std::vector<int> bigger(ring_size_for(capacity_), -1);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = ready_[(head_ + i) & (ready_.size() - 1)];
    ready_.swap(bigger);
    head_ = 0;
  }
}

// ---- ready queue and waiter FIFO ----

void acceptor::push_ready(int fd) {
  if (count_ == ready_.size()) set_capacity(ready_.size());  // a late CQE raced our cancel
  ready_[(head_ + count_) & (ready_.size() - 1)] = fd;
  ++count_;
}

int acceptor::pop_ready() noexcept {
  int fd = ready_[head_];
  head_ = (head_ + 1) & (ready_.size() - 1);
  --count_;
  if (fed_by_) handoff_taken(*fed_by_);
  return fd;
}

void acceptor::push_waiter(io_request& r) noexcept {
  op_of(r).next = nullptr;
  op_of(r).source = this;
  if (waiters_tail_)
    op_of(*waiters_tail_).next = &r;
  else
    waiters_ = &r;
  waiters_tail_ = &r;
}

io_request* acceptor::take_waiters() noexcept {
  io_request* all = waiters_;
  waiters_ = waiters_tail_ = nullptr;
  for (io_request* w = all; w; w = op_of(*w).next) op_of(*w).source = nullptr;
  return all;
}

void acceptor::forget(accept_op& op) noexcept {
  io_request* prev = nullptr;
  for (io_request* w = waiters_; w; prev = w, w = op_of(*w).next) {
    if (w->op_ != &op) continue;
    (prev ? op_of(*prev).next : waiters_) = op.next;
    if (waiters_tail_ == w) waiters_tail_ = prev;
    break;
  }
  op.source = nullptr;
}

// ---- the multishot accept ----

void acceptor::arm() noexcept {
  io_uring_sqe* sqe = access::ring_of(ctx_).reserve_sqes(1);
  if (multishot_)
    io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  else
    io_uring_prep_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data(sqe, &accept_);
  access::ring_of(ctx_).expect_cqes();
  ++own_sqes_due_;
  in_kernel_ = true;
  cancel_sent_ = false;
}

// Keep one accept armed while the queue has room: connections then wait in our queue, ready to
// be taken inline. A full queue stops it and leaves the rest in the kernel's backlog.
void acceptor::maybe_arm() noexcept {
  if (fed_by_ || stopped_ || fatal_ || in_kernel_ || backing_off_ || access::draining(ctx_)) return;
  if (count_ > capacity_ / 2) return;
  if (!multishot_ && !waiters_ && count_ > 0) return;
  arm();
}

void acceptor::start_backoff() noexcept {
  backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, max_backoff_ms) : first_backoff_ms;
  backoff_.ts.tv_sec = backoff_ms_ / 1000;
  backoff_.ts.tv_nsec = static_cast<long long>(backoff_ms_ % 1000) * 1'000'000;
  io_uring_sqe* sqe = access::ring_of(ctx_).reserve_sqes(1);
  io_uring_prep_timeout(sqe, &backoff_.ts, 0, 0);
  io_uring_sqe_set_data(sqe, &backoff_);
  access::ring_of(ctx_).expect_cqes();
  ++own_sqes_due_;
  backing_off_ = true;
}

void acceptor::on_accept(operation* op, int res, std::uint32_t flags) noexcept {
  acceptor& a = *static_cast<multishot_accept*>(op)->self;
  const bool more = flags & IORING_CQE_F_MORE;
  if (!more) {
    --a.own_sqes_due_;
    a.in_kernel_ = false;
  }
  ++a.in_handler_;
  if (a.stopped_ || access::draining(a.ctx_)) {
    if (res >= 0) ::close(res);  // a late CQE can still carry a new connection
  } else if (res >= 0) {
    a.accepted_any_ = true;
    a.backoff_ms_ = 0;
    if (a.router_ && handoff_route(*a.router_, res)) {
      if (!more) a.maybe_arm();  // another thread has it
    } else {
      a.take_connection(res, more);
    }
  } else {
    const int err = -res;
    if (err == ECANCELED || is_connection_errno(err)) {
      if (!more) a.maybe_arm();
    } else if (err == EINVAL && a.multishot_ && !a.accepted_any_) {
      a.multishot_ = false;  // the kernel predates multishot accept: one SQE per connection
      a.maybe_arm();
    } else if (is_resource_errno(err)) {
      // Never spin on EMFILE: stop, back off, retry. Only args-form accepts hear about it.
      if (more && !a.cancel_sent_) {
        access::ring_of(a.ctx_).prep_cancel(&a.accept_);
        a.cancel_sent_ = true;
      }
      if (!a.backing_off_) a.start_backoff();
      io_request* all = a.take_waiters();
      while (io_request* w = all) {
        all = op_of(*w).next;
        if (op_of(*w).report_errors)
          a.hand_over(*w, res);  // the resumed loop may accept again, or close the listener
        else if (a.stopped_)
          access::defer(a.ctx_, &acceptor::cancel_waiter, w);
        else
          a.push_waiter(*w);
      }
    } else {
      a.fatal_ = res;  // the listener is broken: every accept from now on gets this error
      io_request* all = a.take_waiters();
      while (io_request* w = all) {
        all = op_of(*w).next;
        a.hand_over(*w, res);
      }
    }
  }
  --a.in_handler_;
  a.maybe_free();
}

// A new connection is ours: to the first waiter, else to the ready queue (full: stop accepting).
void acceptor::take_connection(int fd, bool more) noexcept {
  if (io_request* w = waiters_) {
    waiters_ = op_of(*w).next;
    if (!waiters_) waiters_tail_ = nullptr;
    op_of(*w).source = nullptr;
    if (!more) maybe_arm();
    hand_over(*w, fd);  // may resume a coroutine that uses this acceptor: state is completed
    return;
  }
  push_ready(fd);
  if (count_ >= capacity_ && in_kernel_ && !cancel_sent_) {
    access::ring_of(ctx_).prep_cancel(&accept_);
    cancel_sent_ = true;
  }
  if (!more) maybe_arm();
}

void acceptor::make_fed(handoff_member* m) noexcept { fed_by_ = m; }

void acceptor::deliver(int fd) noexcept {
  if (stopped_ || access::draining(ctx_)) {
    ::close(fd);  // like a closed listener's backlog: the peer sees a reset
    if (fed_by_) handoff_refused(*fed_by_);
    return;
  }
  ++in_handler_;
  if (waiters_ && fed_by_) handoff_taken(*fed_by_);  // straight to a waiter: never queued
  take_connection(fd, true);
  --in_handler_;
  maybe_free();
}

void acceptor::on_backoff(operation* op, int, std::uint32_t) noexcept {
  acceptor& a = *static_cast<backoff_op*>(op)->self;
  --a.own_sqes_due_;
  a.backing_off_ = false;
  a.maybe_arm();
  a.maybe_free();
}

void acceptor::maybe_free() noexcept {
  if (closing_ && own_sqes_due_ == 0 && in_handler_ == 0) {
    ::close(fd_);
    delete this;
  }
}

// ---- waiters ----

void acceptor::watch(io_request& r, const io_options& o) {
  r.cancel_ = &acceptor::on_wait_cancel;
  r.cqes_left_ = 1;
  if (o.timeout.count() > 0) arm_wait_timer(r, o.timeout.count(), &acceptor::on_wait_timer);
  if (o.stop.stop_possible()) r.watch(o.stop);
}

bool acceptor::start(io_request& r, const io_options& o) {
  accept_op& op = op_of(r);
  const bool ends_now = fatal_ || stopped_ || o.stop.stop_requested();
  if (!ends_now && !(count_ > 0 && op.buf.empty()))
    r.prepare(o);  // it will wait: the only step that may throw, before anything is taken
  access::track(ctx_, r);
  op.kind = kind_;
  op.fd = -1;
  op.second_round = false;
  op.source = nullptr;
  if (ends_now) {
    r.res_ = fatal_ ? fatal_ : -ECANCELED;
    access::untrack(ctx_, r);
    access::count_inline(ctx_);
    return true;
  }
  if (count_ > 0) {
    int fd = pop_ready();
    maybe_arm();
    if (op.buf.empty()) {  // the inline path: no SQE, no syscall, no suspension
      r.res_ = fd;
      access::untrack(ctx_, r);
      access::count_inline(ctx_);
      return true;
    }
    watch(r, o);
    first_receive(r, fd);
    return false;
  }
  // The timer's SQE first: making room for it may reap, and a connection reaped then must not
  // reach this request before its caller has suspended. maybe_arm() reserves an SQE only when no
  // accept is in the kernel, so no connection can arrive during it.
  watch(r, o);
  push_waiter(r);
  maybe_arm();
  return false;
}

void acceptor::first_receive(io_request& r, int fd) noexcept {
  accept_op& op = op_of(r);
  op.fd = fd;
  op.second_round = true;
  r.on_cqe_ = &acceptor::on_first_receive;
  io_uring_sqe* sqe = access::ring_of(ctx_).reserve_sqes(1);
  io_uring_prep_recv(sqe, fd, op.buf.data(), op.buf.size(), 0);
  io_uring_sqe_set_data(sqe, &r);
  access::ring_of(ctx_).expect_cqes();
  if (r.cancelled_) access::ring_of(ctx_).prep_cancel(&r);
}

// The first block arrived (or the receive failed): the accept's timer has nothing left to guard.
void acceptor::on_first_receive(operation* op, int res, std::uint32_t) noexcept {
  auto& r = *static_cast<io_request*>(op);
  r.res_ = res;
  remove_wait_timer(r);
  r.count_down();
}

void acceptor::hand_over(io_request& r, int res) noexcept {
  op_of(r).source = nullptr;
  if (res >= 0 && !op_of(r).buf.empty()) {
    first_receive(r, res);  // completes when the receive's CQE arrives
    return;
  }
  r.res_ = res;
  remove_wait_timer(r);
  r.count_down();
}

void acceptor::on_wait_timer(operation* op, int res, std::uint32_t) noexcept {
  io_request& r = *static_cast<timer_part*>(op)->owner_;
  r.extras().timer_armed = false;
  if (res == -ETIME) {
    r.extras().timer_fired = true;
    accept_op& op = op_of(r);
    if (acceptor* a = op.source) {
      a->forget(op);
      r.res_ = -ETIMEDOUT;
      r.count_down();  // the delivery that will not come
    } else if (op.second_round) {
      access::ring_of(*r.ctx_).prep_cancel(&r);  // the first receive: its CQE ends it
    }
  }
  r.count_down();
}

// Same thread as the ring (stop callback or the cross-thread queue's drain). Completion is
// deferred to a following turn so that request_stop() never runs the waiter on its stack.
void acceptor::on_wait_cancel(io_request* r) noexcept {
  accept_op& op = op_of(*r);
  if (acceptor* a = op.source) {
    a->forget(op);
    access::defer(*r->ctx_, &acceptor::cancel_waiter, r);
  } else if (op.second_round) {
    access::ring_of(*r->ctx_).prep_cancel(r);
  }
}

void acceptor::cancel_waiter(void* p) noexcept {
  auto& r = *static_cast<io_request*>(p);
  r.res_ = -ECANCELED;
  remove_wait_timer(r);
  r.count_down();
}

void acceptor::close() noexcept {
  closing_ = true;
  stop_accepting();
  maybe_free();
}

void acceptor::stop_accepting() noexcept {
  if (stopped_) return;
  stopped_ = true;
  if (fed_by_) handoff_stopped(*fed_by_);  // the accepting thread sends no more
  if (router_) handoff_origin_left(*router_);  // ... and sends nothing back here
  // Refuse new connections now, before the cancel is even seen (a fed listener's descriptor is a
  // duplicate of the accepting one's: shutting it down would stop every thread).
  if (!fed_by_) ::shutdown(fd_, SHUT_RDWR);
  io_request* all = take_waiters();
  while (io_request* w = all) {
    all = op_of(*w).next;
    access::defer(ctx_, &acceptor::cancel_waiter, w);
  }
  while (count_ > 0) {
    ::close(pop_ready());
    if (fed_by_) ++fed_by_->refused;  // handed here, never served
  }
  if (!access::draining(ctx_)) {
    if (in_kernel_) access::ring_of(ctx_).prep_cancel(&accept_);
    if (backing_off_) access::ring_of(ctx_).prep_cancel(&backoff_);
  }
}

}  // namespace ringsock::detail
