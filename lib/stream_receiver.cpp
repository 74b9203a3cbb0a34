// The receive operation: the stream receiver (detail/stream_receiver.hpp has its state table)
// and, for every other socket, one SQE into the caller's buffer.
#include "ringsock/detail/stream_receiver.hpp"

#include <limits.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "ringsock/detail/socket_ops.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock::detail {

namespace {

receive_op& op_of(io_request& r) noexcept { return *static_cast<receive_op*>(r.op_); }
buffer_ring& buffers_of(io_context& ctx) noexcept { return access::ring_of(ctx).buffers(); }

void on_receive(operation* op, int res, std::uint32_t flags) noexcept;
void on_wait_timer(operation* op, int res, std::uint32_t flags) noexcept;
void on_wait_cancel(io_request* r) noexcept;
void cancel_waiter(void* r) noexcept;
void wake_starved(buffer_waiter* w) noexcept;
void maybe_arm_now(socket_core& c, bool demand) noexcept;
// The armed multishot is the common case: it costs one test, not a call.
inline void maybe_arm(socket_core& c, bool demand = false) noexcept {
  if (!c.rx.in_kernel) maybe_arm_now(c, demand);
}
void start_direct(socket_core& c) noexcept;
void on_direct_receive(operation* o, int res, std::uint32_t flags) noexcept;
void complete(io_request& w, int res) noexcept;
void deliver_now(socket_core& c) noexcept;
// Nothing to hand over (no waiter, or nothing queued) is the common case: one test.
inline void deliver(socket_core& c) noexcept {
  if (c.rx.waiters && (c.rx.has_data() || c.rx.end != stream_receiver::no_end)) deliver_now(c);
}
void serve_next_later(socket_core& c) noexcept;

// The first receive decides: a stream socket (SOCK_STREAM) of a context with a buffer ring.
bool uses_receiver(socket_core& c) noexcept {
  if (c.kind == socket_core::kind_unknown) {
    int type = 0;
    socklen_t len = sizeof type;
    const bool stream = ::getsockopt(c.fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    c.kind = stream ? socket_core::kind_stream : socket_core::kind_other;
  }
  return c.kind == socket_core::kind_stream && access::ring_of(*c.ctx).features().multishot_receive;
}

// A buffer went back to the ring: receivers starved by ENOBUFS re-arm on a following turn (not
// here, in the middle of someone's copy).
void deferred_wake(void* ctx) noexcept { buffers_of(*static_cast<io_context*>(ctx)).wake_waiters(); }

void give_back(io_context& ctx, const buffer_piece& p) noexcept {
  buffer_ring& b = buffers_of(ctx);
  if (b.release(p) && b.has_waiters() && b.available() == 1) access::defer(ctx, &deferred_wake, &ctx);
}

// Copies queued bytes into `out` (as much as is queued, up to out.size()).
std::size_t copy_out(io_context& ctx, stream_receiver& rx, std::span<std::byte> out) noexcept {
  const buffer_ring& b = buffers_of(ctx);
  std::size_t done = 0;
  while (done < out.size() && rx.has_data()) {
    buffer_piece& p = rx.front();
    const std::size_t n = std::min<std::size_t>(p.len, out.size() - done);
    std::memcpy(out.data() + done, b.data(p), n);
    done += n;
    if (n < p.len) {
      p.offset += static_cast<std::uint32_t>(n);
      p.len -= static_cast<std::uint32_t>(n);
      break;
    }
    const buffer_piece whole = p;
    rx.pop();
    give_back(ctx, whole);
  }
  return done;
}

// MSG_PEEK: copies queued bytes into `out` and leaves them queued.
std::size_t peek_out(io_context& ctx, const stream_receiver& rx, std::span<std::byte> out) noexcept {
  const buffer_ring& b = buffers_of(ctx);
  std::size_t done = 0;
  for (std::uint32_t i = 0; i < rx.count && done < out.size(); ++i) {
    const buffer_piece& p = rx.at(i);
    const std::size_t n = std::min<std::size_t>(p.len, out.size() - done);
    std::memcpy(out.data() + done, b.data(p), n);
    done += n;
  }
  return done;
}

// A peek that the queue cannot fill completes on a following turn, not inline: a loop that peeks
// until enough bytes are there must let the loop reap them.
bool peek_must_wait(const stream_receiver& rx, const receive_op& op) noexcept {
  return (op.msg_flags & MSG_PEEK) && rx.has_data() && rx.end == stream_receiver::no_end &&
         rx.queued_bytes() < op.buf.size();
}

// Copies queued bytes into the segments, in order (as much as is queued).
std::size_t copy_out(io_context& ctx, stream_receiver& rx, std::span<const iovec> segs) noexcept {
  std::size_t done = 0;
  for (const iovec& v : segs) {
    const std::size_t n = copy_out(ctx, rx, {static_cast<std::byte*>(v.iov_base), v.iov_len});
    done += n;
    if (n < v.iov_len) break;  // the queue ran out
  }
  return done;
}

// What a receive takes from a non-empty queue: a copy into its buffer (or segments), the front
// piece whole (borrow), or nothing (readiness). Returns the byte count it reports.
int take_for(io_context& ctx, stream_receiver& rx, receive_op& op) noexcept {
  if (op.msg_flags & MSG_PEEK) return static_cast<int>(peek_out(ctx, rx, op.buf));
  if (!op.segments.empty()) return static_cast<int>(copy_out(ctx, rx, op.segments));
  if (!op.borrow) return static_cast<int>(copy_out(ctx, rx, op.buf));
  op.lent = rx.front();
  op.lent_ctx = &ctx;
  rx.pop();
  return static_cast<int>(op.lent.len);
}

// A piece a waiting receive can take whole: a loan, or a copy that fits its buffer.
bool takes_whole(const receive_op& op, const buffer_piece& p) noexcept {
  return op.borrow ||
         (!op.readiness && op.msg_flags == 0 && op.segments.empty() && op.buf.size() >= p.len);
}

int take_whole(io_context& ctx, receive_op& op, const buffer_piece& p) noexcept {
  if (op.borrow) {
    op.lent = p;
    op.lent_ctx = &ctx;
  } else {
    std::memcpy(op.buf.data(), buffers_of(ctx).data(p), p.len);
    give_back(ctx, p);
  }
  return static_cast<int>(p.len);
}

void drop_queue(io_context& ctx, stream_receiver& rx) noexcept {
  while (rx.has_data()) {
    const buffer_piece p = rx.front();
    rx.pop();
    give_back(ctx, p);
  }
}

// The end (after the queued bytes): end of stream stays; an error goes to one receive, and the
// next receive asks the kernel again (as recv(2): after a reset it then reads 0; after ENOTCONN
// on a socket connected since, data).
int take_end(stream_receiver& rx) noexcept {
  const int e = rx.end;
  if (e < 0) rx.end = stream_receiver::no_end;  // a peek too: recv(MSG_PEEK) clears the error
  return e;
}

void push_waiter(stream_receiver& rx, socket_core& c, io_request& r) noexcept {
  op_of(r).next = nullptr;
  op_of(r).source = &c;
  if (rx.waiters_tail)
    op_of(*rx.waiters_tail).next = &r;
  else
    rx.waiters = &r;
  rx.waiters_tail = &r;
}

io_request* pop_waiter(stream_receiver& rx) noexcept {
  io_request* w = rx.waiters;
  rx.waiters = op_of(*w).next;
  if (!rx.waiters) rx.waiters_tail = nullptr;
  op_of(*w).source = nullptr;
  op_of(*w).next = nullptr;
  return w;
}

io_request* take_waiters(stream_receiver& rx) noexcept {
  io_request* all = rx.waiters;
  rx.waiters = rx.waiters_tail = nullptr;
  for (io_request* w = all; w; w = op_of(*w).next) op_of(*w).source = nullptr;
  return all;
}

void forget(socket_core& c, receive_op& op) noexcept {
  stream_receiver& rx = c.rx;
  io_request* prev = nullptr;
  for (io_request* w = rx.waiters; w; prev = w, w = op_of(*w).next) {
    if (w->op_ != &op) continue;
    (prev ? op_of(*prev).next : rx.waiters) = op.next;
    if (rx.waiters_tail == w) rx.waiters_tail = prev;
    break;
  }
  op.source = nullptr;
  op.next = nullptr;
}

void complete(io_request& w, int res) noexcept {
  w.res_ = res;
  remove_wait_timer(w);
  w.count_down();  // may resume a coroutine that uses (or closes, or drops) this socket
}

// Hands queued bytes (or the end) to the waiting receives, in their order.
// Only the receives waiting on entry: one that a completion starts goes through start_op (and
// is served on a following turn), so that peeks, which leave the bytes, cannot take turns for
// ever inside one call.
void deliver_now(socket_core& c) noexcept {
  stream_receiver& rx = c.rx;
  io_request* const last = rx.waiters_tail;
  while (rx.waiters && (rx.has_data() || rx.end != stream_receiver::no_end) && c.fd >= 0) {
    io_context& ctx = *rx.op.ctx;
    io_request* w = pop_waiter(rx);
    receive_op& op = op_of(*w);
    const int res = rx.has_data() ? take_for(ctx, rx, op) : take_end(rx);
    const bool was_last = w == last;
    complete(*w, res);  // may resume a coroutine that frees w
    if (was_last) break;
  }
}

// Holds the core for the duration (a resumed waiter may close or drop the socket).
void run_deferred_delivery(void* p) noexcept {
  auto& c = *static_cast<socket_core*>(p);
  c.rx.deliver_due = false;
  if (c.ctx && !access::draining(*c.ctx) && c.fd >= 0) {
    deliver(c);
    maybe_arm(c);
  }
  --c.held;
  free_core_if_unused(&c);
}

void deliver_later(socket_core& c) noexcept {
  if (c.rx.deliver_due) return;
  c.rx.deliver_due = true;
  ++c.held;
  access::defer(*c.ctx, &run_deferred_delivery, &c);
}

// A waiter left the FIFO early: while starved, the one now first may need its direct receive.
void serve_next_later(socket_core& c) noexcept {
  if (c.rx.starved && c.rx.waiters && !c.rx.direct && c.fd >= 0 && c.ctx && !access::draining(*c.ctx))
    deliver_later(c);
}

void arm(socket_core& c) noexcept {
  stream_receiver& rx = c.rx;
  io_context& ctx = *c.ctx;
  ring& rg = access::ring_of(ctx);
  ++c.held;   // the reservation may dispatch completions, one of which may drop the socket
  io_uring_sqe* sqe = rg.reserve_sqes(1);
  if (c.fd < 0 || rx.in_kernel || rx.direct) {
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 0);
    --c.held;
    free_core_if_unused(&c);
    return;
  }
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffer_ring::group;
  io_uring_sqe_set_data(sqe, &rx.op);
  rg.expect_cqes();
  --c.held;
  ++c.armed;  // the multishot's own reference, until its last CQE
  rx.in_kernel = true;
  rx.cancel_sent = false;
  rx.persistent = true;
}

// One multishot in the kernel while someone waits (`demand`: a receive is about to), or (once
// armed) while the queue has room.
void maybe_arm_now(socket_core& c, bool demand) noexcept {
  stream_receiver& rx = c.rx;
  if (c.fd < 0 || !c.ctx || rx.in_kernel || rx.direct || rx.end != stream_receiver::no_end) return;
  if (access::draining(*c.ctx)) return;
  if (rx.starved) {
    start_direct(c);
    return;
  }
  if (!rx.waiters && !demand &&
      (!rx.persistent || rx.count > access::receive_queue_limit(*c.ctx) / 2))
    return;
  arm(c);
}

// Starved: the first waiter, when it has a buffer of its own, gets a single-shot receive into
// it (a readiness wait: a poll); a borrowing receive needs the ring and waits for a buffer.
void start_direct(socket_core& c) noexcept {
  stream_receiver& rx = c.rx;
  io_request* w = rx.waiters;
  if (!w || rx.direct || op_of(*w).borrow) return;
  ring& rg = access::ring_of(*c.ctx);
  ++c.held;
  io_uring_sqe* sqe = rg.reserve_sqes(1);  // may dispatch completions: look again
  if (c.fd < 0 || rx.waiters != w || rx.direct || rx.in_kernel) {
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 0);
    --c.held;
    free_core_if_unused(&c);
    return;
  }
  --c.held;  // the waiter holds the core itself
  pop_waiter(rx);
  receive_op& op = op_of(*w);
  op.source = &c;  // still this socket's: a cancel or timeout now cancels its SQE
  rx.direct = w;
  w->on_cqe_ = &on_direct_receive;
  op.prep(sqe, c.fd);  // into its buffer, or (readiness) a poll for input
  io_uring_sqe_set_data(sqe, w);
  rg.expect_cqes();
  if (w->cancelled_) rg.prep_cancel(w);
}

void on_direct_receive(operation* o, int res, std::uint32_t) noexcept {
  auto& r = *static_cast<io_request*>(o);
  socket_core& c = *op_of(r).source;
  stream_receiver& rx = c.rx;
  op_of(r).source = nullptr;
  rx.direct = nullptr;
  ++c.held;  // held until the end of the handler
  if (res == 0 && rx.end == stream_receiver::no_end) rx.end = 0;  // the end: for the others too
  complete(r, res);
  if (c.fd >= 0 && c.ctx && !access::draining(*c.ctx)) {
    deliver(c);
    maybe_arm(c);
  } else if (c.ctx && !access::draining(*c.ctx)) {
    close_receiver(c);  // closed meanwhile: the waiters behind it end now, in their order
  }
  --c.held;
  free_core_if_unused(&c);
}

void on_receive(operation* op, int res, std::uint32_t flags) noexcept {
  auto& m = *static_cast<stream_receiver::multishot_receive*>(op);
  socket_core& c = *m.core;
  stream_receiver& rx = c.rx;
  io_context& ctx = *m.ctx;
  const bool more = flags & IORING_CQE_F_MORE;
  ++c.held;  // held until the end of the handler
  if (!more) {
    rx.in_kernel = false;
    --c.armed;
  }
  const bool open = c.fd >= 0 && !access::draining(ctx);
  io_request* handed = nullptr;  // the fast path: the first waiter takes the piece at once
  int handed_res = 0;
  if (res > 0) {
    const buffer_piece p = buffers_of(ctx).take(flags, static_cast<std::uint32_t>(res));
    if (!open) {
      give_back(ctx, p);  // closed meanwhile: nobody will read it
    } else if (!rx.has_data() && rx.waiters && takes_whole(op_of(*rx.waiters), p)) {
      // What deliver() would do after push(), without the queue.
      handed = pop_waiter(rx);
      handed_res = take_whole(ctx, op_of(*handed), p);
    } else {
      rx.push(p);
      if (rx.count >= access::receive_queue_limit(ctx) && rx.in_kernel && !rx.cancel_sent &&
          !rx.waiters) {
        access::ring_of(ctx).prep_cancel(&rx.op);  // backpressure: the kernel's buffer holds the rest
        rx.cancel_sent = true;
      }
    }
  } else if (res == -ENOBUFS) {
    // The ring ran dry: the connection is healthy. Wait for a buffer to come back (at once if
    // one came back since the kernel looked).
    access::count_buffer_shortage(ctx);
    buffer_ring& b = buffers_of(ctx);
    if (open && !more && b.available() == 0) {
      rx.starved = true;
      rx.starve.wake = &wake_starved;
      rx.starve.owner = &c;
      b.wait(rx.starve);
    }
  } else if (res == -ECANCELED) {
    // Ours (backpressure or close), or a cancel-all of a shutdown: re-armed on demand only.
    if (!rx.cancel_sent) rx.persistent = false;
  } else if (open && rx.end == stream_receiver::no_end) {
    rx.end = res;  // 0: end of stream; -errno: for one receive, then ask the kernel again
    if (res < 0) rx.persistent = false;  // ... when a receive asks, not before
  }
  if (!more) rx.cancel_sent = false;
  if (open) {
    if (handed) complete(*handed, handed_res);
    deliver(c);
    maybe_arm(c);
  }
  --c.held;
  free_core_if_unused(&c);
}

void wake_starved(buffer_waiter* w) noexcept {
  auto& c = *static_cast<socket_core*>(w->owner);
  c.rx.starved = false;
  maybe_arm(c);
}

void on_wait_timer(operation* op, int res, std::uint32_t) noexcept {
  io_request& r = *static_cast<timer_part*>(op)->owner_;
  r.extras().timer_armed = false;
  if (res == -ETIME) {
    r.extras().timer_fired = true;
    receive_op& o = op_of(r);
    if (socket_core* c = o.source; c && c->rx.direct == &r) {
      access::ring_of(*r.ctx_).prep_cancel(&r);  // its own receive: its CQE ends it
    } else if (c) {
      forget(*c, o);
      serve_next_later(*c);
      r.res_ = -ETIMEDOUT;
      r.count_down();  // the delivery that will not come
    }
  }
  r.count_down();
}

// Same thread as the ring. Completion is deferred to a following turn so that request_stop()
// never runs the waiter on its stack.
void on_wait_cancel(io_request* r) noexcept {
  receive_op& o = op_of(*r);
  socket_core* c = o.source;
  if (!c) return;
  if (c->rx.direct == r) {
    access::ring_of(*r->ctx_).prep_cancel(r);  // its own receive: its CQE ends it
    return;
  }
  forget(*c, o);
  serve_next_later(*c);
  access::defer(*r->ctx_, &cancel_waiter, r);
}

void cancel_waiter(void* p) noexcept { complete(*static_cast<io_request*>(p), -ECANCELED); }

// The classic form: one SQE into the caller's buffer.
bool start_single(socket_core& c, io_request& r, receive_op& op, const io_options& o) {
  r.core_ = &c;
  ++c.armed;
  access::arm(*c.ctx, r, o, [&](io_uring_sqe* sqe) { op.prep(sqe, c.fd); });
  return false;
}

}  // namespace

stream_receiver::multishot_receive::multishot_receive() noexcept : operation(&on_receive) {}

stream_receiver::stream_receiver() noexcept = default;

stream_receiver::~stream_receiver() {
  if (q != inline_q) delete[] q;
}

void stream_receiver::push(const buffer_piece& p) {
  if (count == room) {  // CQEs that raced the backpressure cancel: never drop bytes
    auto* bigger = new buffer_piece[2u * room];
    for (std::uint32_t i = 0; i < count; ++i) bigger[i] = at(i);
    if (q != inline_q) delete[] q;
    q = bigger;
    head = 0;
    room *= 2;
  }
  q[(head + count) & (room - 1)] = p;
  ++count;
}

void receive_op::abandon() noexcept {
  if (source && source->rx.direct && source->rx.direct->op_ == this) source->rx.direct = nullptr;
  if (source) forget(*source, *this);
  if (lent_ctx) give_back(*lent_ctx, lent);
}

void receive_op::prep(io_uring_sqe* sqe, int fd) noexcept {
  if (!segments.empty())
    io_uring_prep_readv(sqe, fd, segments.data(),
                        static_cast<unsigned>(std::min<std::size_t>(segments.size(), IOV_MAX)), 0);
  else if (buf.empty())
    io_uring_prep_poll_add(sqe, fd, POLLIN);
  else
    io_uring_prep_recv(sqe, fd, buf.data(), buf.size(), msg_flags);
}

bool start_op(socket_core& c, io_request& r, receive_op& op, const io_options& o) {
  r.op_ = &op;
  r.again_ = nullptr;
  op.source = nullptr;
  op.next = nullptr;
  // Out-of-band data is not in the stream the receiver queues: its own single receive.
  if (!uses_receiver(c) || (op.msg_flags & MSG_OOB)) {
    if (op.borrow)
      throw std::invalid_argument(
          "ringsock: receive_borrowed_async needs a stream socket of a context with a buffer ring "
          "(features().buffer_ring)");
    return start_single(c, r, op, o);
  }
  io_context& ctx = *c.ctx;
  stream_receiver& rx = c.rx;
  if (!rx.waiters && !peek_must_wait(rx, op)) {  // the inline view: nobody waits before it, bytes are here
    if (rx.has_data() || rx.end != stream_receiver::no_end) {
      r.res_ = rx.has_data() ? take_for(ctx, rx, op) : take_end(rx);
      access::count_inline(ctx);
      maybe_arm(c);  // the queue may have drained below the backpressure mark
      return true;
    }
  }
  if (o.stop.stop_requested()) {
    r.res_ = -ECANCELED;
    access::count_inline(ctx);
    return true;
  }
  r.prepare(o);
  access::track(ctx, r);
  r.core_ = &c;
  ++c.armed;
  r.cancel_ = &on_wait_cancel;
  r.cqes_left_ = 1;
  // The timer's SQE may dispatch completions (a full SQ): bytes for this socket, or its close,
  // may arrive before the request is in the FIFO. It then completes on a following turn.
  if (o.timeout.count() > 0) arm_wait_timer(r, o.timeout.count(), &on_wait_timer);
  // The multishot's SQE too, before the request joins the FIFO: nothing reaped while making
  // room for it can then reach the request before its caller suspends.
  if (!rx.waiters && !rx.has_data()) maybe_arm(c, true);
  push_waiter(rx, c, r);
  if (c.fd < 0) {
    forget(c, op);
    access::defer(ctx, &cancel_waiter, &r);
  } else if (rx.has_data() || rx.end != stream_receiver::no_end) {
    deliver_later(c);
  } else if (rx.starved && !rx.direct && rx.waiters == &r) {
    deliver_later(c);  // its direct receive is started on a following turn
  }
  if (o.stop.stop_possible()) r.watch(o.stop);
  return false;
}

namespace {
// The queued pieces go back to the ring; the socket no longer waits for buffers.
void let_go(io_context& ctx, stream_receiver& rx) noexcept {
  drop_queue(ctx, rx);
  if (rx.starved) buffers_of(ctx).unwait(rx.starve);
  rx.starved = false;
}

// Every waiting receive completes with ECANCELED on a following loop turn.
void cancel_later(io_context& ctx, stream_receiver& rx) noexcept {
  io_request* all = take_waiters(rx);
  while (io_request* w = all) {
    all = op_of(*w).next;
    access::defer(ctx, &cancel_waiter, w);
  }
}
}  // namespace

void close_receiver(socket_core& c) noexcept {
  let_go(*c.ctx, c.rx);
  if (!c.rx.direct) cancel_later(*c.ctx, c.rx);  // else they follow its cancelled CQE
}

void abandon_receiver(socket_core& c, bool later) noexcept {
  io_context& ctx = *c.rx.op.ctx;  // the core's ctx is already null
  let_go(ctx, c.rx);
  if (later) {
    cancel_later(ctx, c.rx);
    return;
  }
  io_request* all = take_waiters(c.rx);
  while (io_request* w = all) {
    all = op_of(*w).next;
    w->res_ = -ECANCELED;
    w->count_down();  // resumes nobody: the context is draining
  }
}

void cancel_receive_waiters(socket_core& c) noexcept { cancel_later(*c.ctx, c.rx); }

}  // namespace ringsock::detail

namespace ringsock {

void received_buffer::give_back() noexcept {
  io_context& ctx = *std::exchange(ctx_, nullptr);
  data_ = nullptr;
  detail::give_back(ctx, piece_);
}

}  // namespace ringsock
