#include "ringsock/io_context.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "ringsock/detail/acceptor.hpp"
#include "ringsock/error.hpp"

namespace ringsock {

namespace detail {
// The root frame of a spawned task: starts on a following loop turn, reports an escaping
// exception, and frees itself at its end (or is destroyed, unfinished, with its context).
struct spawned_task::promise_type : frame_allocated {
  io_context* ctx;
  io_context::spawned_link link;
  promise_type(io_context& c, task<void>&) noexcept : ctx(&c) {
    link.frame = std::coroutine_handle<promise_type>::from_promise(*this);
    ctx->link_spawned(link);
    ctx->on_task_started();
  }
  ~promise_type() {
    ctx->unlink_spawned(link);
    ctx->on_task_ended();
  }
  spawned_task get_return_object() noexcept {
    return {std::coroutine_handle<promise_type>::from_promise(*this)};
  }
  std::suspend_always initial_suspend() const noexcept { return {}; }
  std::suspend_never final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  void unhandled_exception() noexcept { ctx->report_exception(std::current_exception()); }
};

namespace {
spawned_task run_spawned(io_context&, task<void> t) { co_await std::move(t); }
}  // namespace
}  // namespace detail

io_context::wake_op::wake_op(io_context* c) noexcept : operation(&io_context::on_wake), ctx(c) {}

io_context::io_context() : io_context(params{}) {}

io_context::io_context(const params& p)
    : owner_(std::this_thread::get_id()), wake_(this), max_posted_(p.max_posted) {
  spawned_.next = spawned_.prev = &spawned_;
  cores_.next = cores_.prev = &cores_;
  setup(p);
  // Blocking on purpose: io_uring answers a read on an O_NONBLOCK file with -EAGAIN instead of
  // waiting for it.
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    int err = errno;
    io_uring_queue_exit(&ring_);
    throw socket_error(err, "ringsock: eventfd for io_context::post");
  }
  ready_.reserve(256);
  arm_wake();
}

void io_context::setup(const params& p) {
  // Newest first; older kernels refuse unknown flags with EINVAL and we step down.
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  const unsigned tries[] = {
      base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      base,
      IORING_SETUP_CQSIZE,
  };
  int r = -EINVAL;
  for (unsigned flags : tries) {
    io_uring_params prm{};
    prm.flags = flags;
    prm.cq_entries = p.cq_entries;
    r = io_uring_queue_init_params(p.sq_entries, &ring_, &prm);
    if (r == 0) {
      features_.single_issuer = flags & IORING_SETUP_SINGLE_ISSUER;
      features_.defer_taskrun = flags & IORING_SETUP_DEFER_TASKRUN;
      features_.coop_taskrun = flags & IORING_SETUP_COOP_TASKRUN;
      break;
    }
    if (r != -EINVAL) break;
  }
  if (r < 0) throw ring_setup_error(-r);
  features_.registered_ring_fd = io_uring_register_ring_fd(&ring_) == 1;
}

io_context::~io_context() {
  check_thread();
  shutdown();
  ::close(wake_fd_);
  io_uring_queue_exit(&ring_);
}

// TRICKY: the order matters. Kernel-owned memory (op states in frames, buffers) must stay alive
// until its CQE, so: cancel everything, reap until nothing refers to live memory, and only then
// destroy the frames. While draining, completions record results but resume nobody.
// The sockets are closed and detached first: a completion below may wake another thread
// (compat's EndX), which may then destroy its socket; that socket must no longer be linked here.
void io_context::shutdown() noexcept {
  draining_ = true;
  orphan_cores();
  prep_cancel_all();
  flush();
  // Bounded: an accounting bug must not hang a destructor forever.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (inflight_ > 0 && std::chrono::steady_clock::now() < deadline) {
    __kernel_timespec ts{0, 50'000'000};
    io_uring_cqe* cqe = nullptr;
    before_submit();
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    reap();
    if (inflight_ > 0) prep_cancel_all();  // re-armed meanwhile? cancel again
  }
  // Accepts waiting in a listener's queue are not in the kernel: abandon them. Each abandon may
  // release the last owner of a listener (freeing it), so look the list up again every time.
  for (;;) {
    detail::acceptor* with_waiters = nullptr;
    for (detail::acceptor* a : acceptors_)
      if (a->has_waiters()) with_waiters = a;
    if (!with_waiters) break;
    with_waiters->abandon_waiters();
  }
  // Deferred work gets one last run: completions release what they hold (args, compat results)
  // and resume nobody; resumptions are skipped (run_ready skips them while draining_).
  for (int round = 0; round < 4 && ready_head_ < ready_.size(); ++round) run_ready();
  ready_.clear();
  ready_head_ = 0;
  while (spawned_.next != &spawned_) spawned_.next->frame.destroy();
  orphan_cores();  // any made meanwhile
  flush();
}

void io_context::orphan_cores() noexcept {
  free_retired_cores();
  while (cores_.next != &cores_) {
    detail::socket_core* c = cores_.next;
    unlink_core(c);
    c->ctx = nullptr;
    const int fd = std::exchange(c->fd, -1);
    if (detail::acceptor* a = std::exchange(c->listener, nullptr))
      a->close();  // owns fd: closes it, and frees itself, after its last CQE
    else if (fd >= 0)
      ::close(fd);  // the kernel keeps its own reference for what is still in flight
  }
}

detail::socket_core* io_context::make_core(int fd) {
  auto* c = new detail::socket_core;
  c->ctx = this;
  c->fd = fd;
  c->prev = cores_.prev;
  c->next = &cores_;
  cores_.prev->next = c;
  cores_.prev = c;
  return c;
}

void io_context::unlink_core(detail::socket_core* c) noexcept {
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->next = c->prev = nullptr;
}

void io_context::resume_handle(void* a) { std::coroutine_handle<>::from_address(a).resume(); }

void io_context::run() {
  check_thread();
  if (in_loop_) throw std::logic_error("ringsock: io_context::run called from inside the loop");
  in_loop_ = true;
  try {
    for (;;) {
      run_ready();
      if (stop_requested_.load(std::memory_order_acquire) || !has_work()) break;
      pump(true);
    }
  } catch (...) {
    in_loop_ = false;
    throw;
  }
  in_loop_ = false;
  stop_requested_.store(false, std::memory_order_relaxed);
  flush();
}

void io_context::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  if (!running_in_this_thread() && !wake_pending_.exchange(true)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

bool io_context::has_work() const noexcept {
  return live_tasks_ > 0 || outstanding_ > 0 || guards_ > 0 || ready_head_ < ready_.size() ||
         has_cross_.load(std::memory_order_acquire);
}

void io_context::spawn(task<void> t) {
  check_thread();
  if (!t.valid()) throw std::logic_error("ringsock: spawn of an empty task");
  detail::spawned_task s = detail::run_spawned(*this, std::move(t));
  defer(&resume_handle, s.frame.address());
}

void io_context::set_exception_handler(std::function<void(std::exception_ptr)> h) {
  on_exception_ = std::move(h);
}

void io_context::report_exception(std::exception_ptr e) noexcept {
  if (on_exception_) {
    on_exception_(e);
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const socket_error&) {
    ++stats_.tasks_ended_by_io_error;  // that task's connection failed: nothing else did
    return;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "ringsock: exception escaped a spawned task: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "ringsock: unknown exception escaped a spawned task\n");
  }
  std::terminate();
}

void io_context::link_spawned(spawned_link& l) noexcept {
  l.prev = spawned_.prev;
  l.next = &spawned_;
  spawned_.prev->next = &l;
  spawned_.prev = &l;
}

void io_context::link_acceptor(detail::acceptor* a) noexcept { acceptors_.push_back(a); }

void io_context::unlink_acceptor(detail::acceptor* a) noexcept {
  for (auto& p : acceptors_)
    if (p == a) {
      p = acceptors_.back();
      acceptors_.pop_back();
      return;
    }
}

void io_context::unlink_spawned(spawned_link& l) noexcept {
  l.prev->next = l.next;
  l.next->prev = l.prev;
  l.next = l.prev = &l;
}

void io_context::post(std::function<void()> fn) {
  {
    std::lock_guard lock(cross_mutex_);
    if (posted_.size() >= max_posted_)
      throw queue_full_error("ringsock: io_context::post: the posted-work queue is full (" +
                             std::to_string(max_posted_) + " items); the loop is not keeping up");
    posted_.push_back(std::move(fn));
    has_cross_.store(true, std::memory_order_release);
  }
  if (!wake_pending_.exchange(true)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void io_context::defer(void (*fn)(void*), void* arg) { ready_.push_back({fn, arg}); }

void io_context::queue_cancel(detail::io_request* r) {
  {
    std::lock_guard lock(cross_mutex_);
    if (r->cross_queued_) return;
    r->cross_queued_ = true;
    r->cross_next_ = cancels_;
    cancels_ = r;
    has_cross_.store(true, std::memory_order_release);
  }
  if (!wake_pending_.exchange(true)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void io_context::unqueue_cancel(detail::io_request* r) noexcept {
  std::lock_guard lock(cross_mutex_);
  if (!r->cross_queued_) return;
  for (detail::io_request** p = &cancels_; *p; p = &(*p)->cross_next_)
    if (*p == r) {
      *p = r->cross_next_;
      break;
    }
  r->cross_queued_ = false;
}

void io_context::retire_core(detail::socket_core* c) noexcept {
  {
    std::lock_guard lock(cross_mutex_);
    c->retired_next = retired_;
    retired_ = c;
    has_cross_.store(true, std::memory_order_release);
  }
  if (!wake_pending_.exchange(true)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void io_context::free_retired_cores() noexcept {
  detail::socket_core* c;
  {
    std::lock_guard lock(cross_mutex_);
    c = std::exchange(retired_, nullptr);
  }
  while (c) {
    detail::socket_core* next = c->retired_next;
    unlink_core(c);
    delete c;
    c = next;
  }
}

void io_context::drain_cancels() {
  free_retired_cores();
  for (;;) {
    detail::io_request* r;
    {
      std::lock_guard lock(cross_mutex_);
      r = cancels_;
      if (!r) return;
      cancels_ = r->cross_next_;
      r->cross_queued_ = false;
    }
    detail::cancel_now(r);
  }
}

void io_context::drain_posted() {
  {
    std::lock_guard lock(cross_mutex_);
    for (auto& fn : posted_) posted_run_.push_back(std::move(fn));
    posted_.clear();
    has_cross_.store(cancels_ != nullptr || retired_ != nullptr, std::memory_order_release);
  }
  // A posted function may re-enter the loop (compat's EndX): the nested drain continues from
  // the shared head, so every item runs exactly once and in the order posted.
  while (posted_head_ < posted_run_.size()) {
    std::function<void()> fn = std::move(posted_run_[posted_head_++]);
    try {
      fn();
    } catch (...) {
      report_exception(std::current_exception());
    }
  }
  posted_run_.clear();
  posted_head_ = 0;
}

void io_context::arm_wake() noexcept {
  io_uring_sqe* sqe = acquire_sqes(1);
  io_uring_prep_read(sqe, wake_fd_, &wake_.value, sizeof wake_.value, 0);
  io_uring_sqe_set_data(sqe, &wake_);
  ++inflight_;
}

void io_context::on_wake(detail::operation* op, int, std::uint32_t) noexcept {
  auto* w = static_cast<wake_op*>(op);
  w->ctx->wake_pending_.store(false);
  if (!w->ctx->draining_) w->ctx->arm_wake();
}

void io_context::run_ready() {
  // FIFO with a shared head: a nested loop (run_until inside a callback) continues where the
  // outer one is, so every item runs exactly once. Items added meanwhile wait for the next turn,
  // so a completion loop cannot starve I/O.
  const std::size_t end = ready_.size();
  while (ready_head_ < end && ready_head_ < ready_.size()) {
    ready_item it = ready_[ready_head_++];
    if (draining_ && it.fn == &resume_handle) continue;  // a dying context resumes nobody
    it.fn(it.arg);
  }
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
  } else if (ready_head_ > 1024 && ready_head_ * 2 > ready_.size()) {
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(ready_head_));
    ready_head_ = 0;
  }
  if (has_cross_.load(std::memory_order_acquire)) {
    drain_cancels();
    drain_posted();
  }
}

bool io_context::run_until(bool (*done)(void*), void* arg, std::chrono::nanoseconds limit) {
  check_thread();
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + limit;
  const bool outer = !in_loop_;
  in_loop_ = true;
  struct loop_exit {  // the loop state is restored even when a callback throws
    io_context* c;
    bool outer;
    ~loop_exit() {
      if (!outer) return;
      c->in_loop_ = false;
      c->flush();
    }
  } restore{this, outer};
  for (;;) {
    run_ready();
    if (done(arg)) return true;
    const auto now = clock::now();
    if (now >= deadline) {
      // One last look that does not wait: what the kernel already finished counts (a zero
      // timeout polls).
      pump(false);
      run_ready();
      return done(arg);
    }
    pump_for(deadline - now);
  }
}

void io_context::run_until(bool (*done)(void*), void* arg) {
  check_thread();
  const bool outer = !in_loop_;
  in_loop_ = true;
  try {
    for (;;) {
      run_ready();
      if (done(arg)) break;
      pump(true);
    }
  } catch (...) {
    if (outer) in_loop_ = false;
    throw;
  }
  if (outer) {
    in_loop_ = false;
    flush();
  }
}

void io_context::pump(bool may_block) {
  // Completions already copied out (a nested loop inside a callback of the outer batch) are
  // work at hand: dispatch them before ever waiting for the kernel.
  const bool wait = may_block && ready_head_ == ready_.size() && batch_head_ == batch_size_ &&
                    !stop_requested_.load(std::memory_order_relaxed);
  before_submit();
  note_enter(wait ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit_and_get_events(&ring_));
  reap();
}

void io_context::pump_for(std::chrono::nanoseconds limit) {
  if (ready_head_ < ready_.size() || batch_head_ < batch_size_ || limit.count() <= 0) {
    pump(false);
    return;
  }
  __kernel_timespec ts = detail::to_timespec(limit.count());
  io_uring_cqe* cqe = nullptr;
  before_submit();
  note_enter(io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr));
  reap();
}

bool io_context::busy() const noexcept {
  return live_tasks_ > 0 || outstanding_ > 0 || ready_head_ < ready_.size() ||
         has_cross_.load(std::memory_order_acquire);
}

shutdown_report io_context::shutdown_gracefully(std::chrono::milliseconds grace) {
  check_thread();
  if (in_loop_)
    throw std::logic_error("ringsock: io_context::shutdown_gracefully called from inside the loop");
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  shutdown_report rep;
  for (detail::acceptor* a : acceptors_) a->stop_accepting();  // frees nothing: sockets own them
  in_loop_ = true;
  struct loop_exit {  // the loop state is restored even when a callback throws
    io_context* c;
    ~loop_exit() {
      c->in_loop_ = false;
      c->flush();
    }
  } restore{this};
  auto run_for = [&](clock::time_point until, bool cancelling) {
    for (;;) {
      if (cancelling && outstanding_ > 0) prep_cancel_all();
      run_ready();
      if (!busy()) return true;
      const auto now = clock::now();
      if (now >= until) return false;
      // While cancelling, a task may start new operations after each cancellation: look often.
      auto wait = until - now;
      if (cancelling) wait = std::min<clock::duration>(wait, std::chrono::milliseconds(10));
      pump_for(wait);
    }
  };
  rep.finished_in_time = run_for(start + grace, false);
  if (!rep.finished_in_time) {
    rep.tasks_at_deadline = live_tasks_;
    rep.ops_at_deadline = outstanding_;
    run_for(clock::now() + grace, true);
    rep.tasks_left = live_tasks_;
  }
  rep.took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  return rep;
}

void io_context::prep_cancel_all() noexcept {
  // Everything in the kernel (the wake read too: it is re-armed by its handler).
  io_uring_sqe* sqe = acquire_sqes(1);
  io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, 0);
}

void io_context::flush() noexcept {
  if (io_uring_sq_ready(&ring_) == 0) return;
  before_submit();
  note_enter(io_uring_submit(&ring_));
}

void io_context::reap() {
  // CQEs are copied out and the CQ advanced before dispatch: a completion may resume a
  // coroutine that submits and reaps again (then it continues this batch, see the header).
  for (;;) {
    while (batch_head_ < batch_size_) {
      const cqe_item it = batch_[batch_head_++];
      // 0: fire-and-forget (cancel, close); LIBURING_UDATA_TIMEOUT: liburing's own wait timeout
      if (it.data == 0 || it.data == LIBURING_UDATA_TIMEOUT) continue;
      if (!(it.flags & IORING_CQE_F_MORE)) --inflight_;
      auto* op = reinterpret_cast<detail::operation*>(static_cast<std::uintptr_t>(it.data));
      op->complete_(op, it.res, it.flags);
    }
    unsigned n = 0, head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      batch_[n++] = {cqe->user_data, cqe->res, cqe->flags};
      if (n == cqe_batch) break;
    }
    io_uring_cq_advance(&ring_, n);
    stats_.cqes += n;
    batch_head_ = 0;
    batch_size_ = n;
    if (n == 0) {
      if (!io_uring_cq_has_overflow(&ring_)) return;
      io_uring_get_events(&ring_);  // the kernel holds overflowed CQEs: have them posted
    }
  }
}

void io_context::prep_cancel(const void* target) noexcept {
  io_uring_sqe* sqe = acquire_sqes(1);
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(target), 0);
  io_uring_sqe_set_data64(sqe, 0);
}

void io_context::prep_cancel_fd(int fd) noexcept {
  io_uring_sqe* sqe = acquire_sqes(1);
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, 0);
}

void io_context::prep_close(int fd) noexcept {
  io_uring_sqe* sqe = acquire_sqes(1);
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, 0);
}

}  // namespace ringsock
