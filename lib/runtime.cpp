// runtime: the threads, their contexts, the shared listeners and the one shutdown (runtime.hpp).
#include "ringsock/runtime.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "acceptor.hpp"
#include "handoff.hpp"
#include "signal_stop.hpp"
#include "spawn_inbox.hpp"
#include "ringsock/detail/socket_core.hpp"
#include "ringsock/error.hpp"

namespace ringsock {

namespace {
thread_local io_context* t_context = nullptr;
thread_local unsigned t_index = 0;
thread_local const runtime* t_runtime = nullptr;

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

endpoint with_port(const endpoint& ep, std::uint16_t port) {
  endpoint e = ep;
  if (e.family() == address_family::ipv4)
    reinterpret_cast<sockaddr_in*>(e.data())->sin_port = htons(port);
  else if (e.family() == address_family::ipv6)
    reinterpret_cast<sockaddr_in6*>(e.data())->sin6_port = htons(port);
  return e;
}
}  // namespace

// One thread's place: its context while it runs (published under the runtime's mutex, so that
// stop() and spawn_on() never reach a context that is being destroyed), and its report.
struct runtime::slot {
  io_context* ctx = nullptr;
  thread_report report{};
  bool taking = false;        // (mutex_) its loop runs: spawn_on may send it tasks
  detail::spawn_inbox inbox;  // spawn_on from the other threads, over MSG_RING
};

runtime::runtime(params p)
    : threads_(p.threads), pin_(p.pin), spread_(p.spread), ctx_params_(p.context), grace_(p.grace),
      cpus_(allowed_cpus()), stop_signals_(std::move(p.stop_signals)) {
  if (threads_ == 0) threads_ = static_cast<unsigned>(cpus_.size());
  if (pin_ && threads_ > cpus_.size())
    throw std::invalid_argument("ringsock: runtime: " + std::to_string(threads_) +
                                " pinned threads but only " + std::to_string(cpus_.size()) +
                                " CPUs to pin them to");
}

runtime::~runtime() {
  stop();
  std::unique_lock lock(mutex_);  // a run() on another thread: until it has joined its threads
  ended_.wait(lock, [this] { return !running_.load(); });
}

io_context* runtime::this_context() noexcept { return t_context; }
unsigned runtime::this_index() noexcept { return t_index; }

void runtime::stop() noexcept {
  std::lock_guard lock(mutex_);
  stop_.store(true);
  if (!slots_) return;
  for (unsigned i = 0; i < threads_; ++i)
    if (io_context* c = slots_[i].ctx) c->stop();
}

void runtime::fail(std::exception_ptr e) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!first_error_) first_error_ = std::move(e);
  }
  stop();
}

runtime_report runtime::run_threads(std::function<task<void>(io_context&, unsigned)>& f) {
  bool idle = false;
  if (!running_.compare_exchange_strong(idle, true))
    throw std::logic_error("ringsock: runtime::run called while a run is going on");
  // However run() leaves from here (a bad_alloc included), the run ends: the state is reset for
  // the next one, the caller's signal mask restored, and a waiting destructor released.
  struct run_end {
    runtime& rt;
    ~run_end() {
      std::lock_guard lock(rt.mutex_);
      rt.groups_.clear();  // every context is gone: nothing refers to them any more
      rt.slots_.reset();
      rt.signals_.reset();  // the signals still pending are taken; the mask is as it was
      rt.stop_.store(false);
      rt.running_.store(false);
      rt.ended_.notify_all();  // under the lock: a destructor waiting for it finds us gone after it
    }
  } end{*this};
  // Before any thread starts, so that every one of them inherits the blocked mask.
  if (!stop_signals_.empty()) signals_ = std::make_unique<detail::signal_stop>(stop_signals_, threads_);
  {
    std::lock_guard lock(mutex_);
    slots_ = std::make_unique<slot[]>(threads_);
    first_error_ = nullptr;
    bound_.clear();
    groups_.clear();
    starting_ = threads_;
  }
  std::vector<std::thread> threads;
  try {
    threads.reserve(threads_);
    for (unsigned i = 0; i < threads_; ++i)
      threads.emplace_back([this, i, &f] { thread_main(i, f); });
  } catch (...) {
    fail(std::current_exception());  // the threads already started stop at once,
    std::lock_guard lock(mutex_);    // and wait at the start for none that will not come
    starting_ -= threads_ - static_cast<unsigned>(threads.size());
    started_.notify_all();
  }
  for (std::thread& t : threads) t.join();

  runtime_report rep;
  std::exception_ptr error;
  {
    std::lock_guard lock(mutex_);
    error = std::exchange(first_error_, nullptr);
    rep.threads.reserve(threads_);
    for (unsigned i = 0; i < threads_; ++i) {
      thread_report& t = slots_[i].report;
      t.spawned_in = slots_[i].inbox.received;
      rep.threads.push_back(t);
      rep.finished_in_time = rep.finished_in_time && t.shutdown.finished_in_time;
      rep.tasks_at_deadline += t.shutdown.tasks_at_deadline;
      rep.ops_at_deadline += t.shutdown.ops_at_deadline;
      rep.tasks_left += t.shutdown.tasks_left;
      rep.stats.sqes_submitted += t.stats.sqes_submitted;
      rep.stats.enter_calls += t.stats.enter_calls;
      rep.stats.cqes += t.stats.cqes;
      rep.stats.inline_completions += t.stats.inline_completions;
      rep.stats.tasks_ended_by_io_error += t.stats.tasks_ended_by_io_error;
      rep.stats.buffers_total += t.stats.buffers_total;
      rep.stats.buffers_lent += t.stats.buffers_lent;
      rep.stats.buffer_pieces_held += t.stats.buffer_pieces_held;
      rep.stats.buffer_shortages += t.stats.buffer_shortages;
      rep.stats.zero_copy_sends += t.stats.zero_copy_sends;
      rep.stats.zero_copy_copied += t.stats.zero_copy_copied;
    }
    for (const auto& g : groups_) {
      rep.threads[g->origin].handed_out += g->sent;
      rep.threads[g->origin].kept += g->kept;
      for (unsigned i = 0; i < threads_; ++i) {
        rep.threads[i].handed_in += g->members[i].received;
        rep.threads[i].refused += g->members[i].refused;
      }
    }
    rep.stop_signal = signals_ ? signals_->received() : 0;
  }
  if (error) std::rethrow_exception(error);
  return rep;
}

void runtime::thread_main(unsigned index,
                          std::function<task<void>(io_context&, unsigned)>& f) noexcept {
  slot& s = slots_[index];
  s.report.index = index;
  t_runtime = this;
  bool arrived = false;
  // Every thread's context is up (or failed) before any factory runs: spawn_on from a factory
  // reaches every thread.
  auto arrive = [this, &arrived](bool wait) {
    arrived = true;
    std::unique_lock lock(mutex_);
    if (--starting_ == 0) started_.notify_all();
    if (wait) started_.wait(lock, [this] { return starting_ == 0; });
  };
  if (pin_) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus_[index], &set);
    if (::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0) s.report.cpu = cpus_[index];
  }
  try {
    io_context ctx(ctx_params_);
    // A socket_error ends only its task (io_context's default); anything else is a bug of that
    // task, which stops the whole runtime and reaches run()'s caller.
    ctx.set_exception_handler([this, &ctx](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const socket_error&) {
        detail::access::count_io_error(ctx);
      } catch (...) {
        fail(std::current_exception());
      }
    });
    t_context = &ctx;
    t_index = index;
    {
      std::lock_guard lock(mutex_);
      s.ctx = &ctx;
      s.taking = true;
      if (stop_.load()) ctx.stop();
    }
    if (detail::access::ring_of(ctx).features().msg_ring) detail::spawn_inbox_open(s.inbox, ctx);
    // However this thread leaves, no sender reaches its context after it is gone.
    struct inbox_closer {
      detail::spawn_inbox& in;
      io_context& ctx;
      ~inbox_closer() {
        try {
          detail::spawn_inbox_close(in, ctx);
        } catch (...) {
        }
      }
    } closer{s.inbox, ctx};
    if (signals_)
      signals_->arm(index, ctx, [](void* rt, int) { static_cast<runtime*>(rt)->stop(); }, this);
    arrive(true);
    try {
      ctx.spawn(f(ctx, index));
      ctx.run();
    } catch (...) {
      fail(std::current_exception());
    }
    {
      std::lock_guard lock(mutex_);
      s.taking = false;  // its loop ended: spawn_on to it throws from here on
    }
    detail::spawn_inbox_close(s.inbox, ctx);  // what was on its way still gets the grace
    s.report.shutdown = ctx.shutdown_gracefully(grace_);
    drain_hand_offs(index, ctx);
    s.report.stats = ctx.stats();
    {
      std::lock_guard lock(mutex_);
      s.ctx = nullptr;  // from here on, stop() and spawn_on() leave this thread alone
    }
    t_context = nullptr;
    // ctx goes: the sockets still open on it close, unfinished tasks are destroyed.
  } catch (...) {
    t_context = nullptr;
    {
      std::lock_guard lock(mutex_);
      s.ctx = nullptr;
      s.taking = false;
    }
    fail(std::current_exception());  // before the others go on from the start: they stop at once
    if (!arrived) arrive(false);
  }
  t_runtime = nullptr;
}

// Connections still travelling to this thread arrive (and are closed: its listeners stopped)
// before its ring goes.
void runtime::drain_hand_offs(unsigned index, io_context& ctx) {
  std::vector<detail::handoff_group*> groups;
  {
    std::lock_guard lock(mutex_);
    for (const auto& g : groups_) groups.push_back(g.get());
  }
  // The accepting thread may have prepared messages it never entered the ring to submit (it
  // stopped while idle): they go to the kernel now, so every in-flight count can reach 0.
  for (detail::handoff_group* g : groups)
    if (g->origin == index) g->origin_ring->flush();
  // A member's ring must outlive every message sent to it: the wait is not cut.
  for (detail::handoff_group* g : groups) detail::handoff_drain(g->members[index], ctx);
}

unsigned runtime::index_of(const io_context& ctx) const {
  for (unsigned i = 0; i < threads_; ++i)
    if (slots_ && slots_[i].ctx == &ctx) return i;
  throw std::invalid_argument("ringsock: runtime::listen: the context is not one of this run's");
}

socket runtime::listen(io_context& ctx, const endpoint& ep, int backlog) {
  // Without MSG_RING (before 5.18) there is no hand-off: every thread listens with SO_REUSEPORT.
  if (spread_ == spread_mode::hand_off && detail::access::ring_of(ctx).features().msg_ring)
    return listen_hand_off(ctx, ep, backlog);
  std::lock_guard lock(mutex_);
  endpoint at = ep;
  bool known = false;
  if (ep.port() == 0)
    for (const bound& b : bound_)
      if (b.requested == ep) {
        at = with_port(ep, b.port);
        known = true;
      }
  socket s(ctx, ep.family(), socket_type::stream);
  s.set_reuse_address(true);
  s.set_reuse_port(true);
  s.bind(at);
  s.listen(backlog);
  if (ep.port() == 0 && !known) bound_.push_back({ep, s.local_endpoint().port()});
  return s;
}

socket runtime::listen_hand_off(io_context& ctx, const endpoint& ep, int backlog) {
  std::lock_guard lock(mutex_);
  const unsigned index = index_of(ctx);
  // The listener and its hand-off link belong to ctx's ring, which only its thread may touch.
  if (this_context() != &ctx)
    throw std::logic_error("ringsock: runtime::listen (hand_off): call it on the context's own thread");
  for (const auto& g : groups_) {
    if (!(g->requested == ep)) continue;
    detail::handoff_member& m = g->members[index];
    if (index == g->origin || m.fed)  // m.to stays: messages may still arrive
      throw std::logic_error("ringsock: runtime::listen: thread " + std::to_string(index) +
                             " already listens on " + ep.to_string());
    std::lock_guard group_lock(g->mutex);  // the accepting listener cannot end meanwhile
    if (g->listen_fd < 0)
      throw std::logic_error("ringsock: runtime::listen: the accepting listener of " +
                             ep.to_string() + " is closed");
    // A duplicate of the accepting socket's descriptor: the same socket (local_endpoint and
    // options read the same), closed on its own, never accepted on and never listen()ed again
    // (that would set the one socket's backlog for every thread).
    const int fd = ::fcntl(g->listen_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw socket_error(errno, "ringsock: runtime::listen: fcntl(F_DUPFD_CLOEXEC)");
    socket fed(ctx, fd);
    detail::socket_core& c = *detail::access::core(fed);
    c.listener = new detail::acceptor(ctx, fd, c.accept_capacity);
    c.listener->make_fed(&m);
    detail::handoff_join(m, detail::access::ring_of(ctx), *c.listener);
    return fed;
  }
  socket s(ctx, ep.family(), socket_type::stream);
  s.set_reuse_address(true);
  s.bind(ep);
  s.listen(backlog);
  detail::socket_core& c = *detail::access::core(s);
  auto g = std::make_unique<detail::handoff_group>(ep, threads_, index,
                                                    detail::access::ring_of(ctx), *c.listener,
                                                    c.fd, c.listener->capacity());
  c.listener->set_router(g.get());
  if (ep.port() == 0) bound_.push_back({ep, s.local_endpoint().port()});
  groups_.push_back(std::move(g));
  return s;
}

std::uint16_t runtime::bound_port(const endpoint& ep) const {
  if (ep.port() != 0) return ep.port();
  std::lock_guard lock(mutex_);
  for (const bound& b : bound_)
    if (b.requested == ep) return b.port;
  return 0;
}

void runtime::spawn_on(unsigned index, task<void> t) {
  if (index >= threads_)
    throw std::out_of_range("ringsock: runtime::spawn_on: thread " + std::to_string(index) +
                            " of " + std::to_string(threads_));
  if (!t.valid()) throw std::logic_error("ringsock: runtime::spawn_on of an empty task");
  // From another of our threads: ring to ring. slots_ stays while our threads run.
  if (t_runtime == this && t_context && t_index != index &&
      detail::access::ring_of(*t_context).features().msg_ring &&
      detail::spawn_inbox_send(*t_context, slots_[index].inbox, t))
    return;
  // Not open: its loop ended (then the check below throws), or it never opened one (its ring
  // could not take messages): the mailbox.
  std::lock_guard lock(mutex_);
  io_context* c = slots_ && slots_[index].taking ? slots_[index].ctx : nullptr;
  if (!c)
    throw std::logic_error("ringsock: runtime::spawn_on: thread " + std::to_string(index) +
                           " is not running");
  if (c->running_in_this_thread()) {
    c->spawn(std::move(t));
    return;
  }
  // post() takes a copyable function: the move-only task travels in a shared holder.
  auto held = std::make_shared<task<void>>(std::move(t));
  c->post([c, held] { c->spawn(std::move(*held)); });
}

}  // namespace ringsock
