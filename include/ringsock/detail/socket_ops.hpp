// The I/O operations, each written once: its SQE and the translation of its result. The plain
// form (op_awaiter), the args form (socket_args) and compat start every operation through
// start_op(); they differ only in how the caller is told (the request's completion_ function).
// Internal: users never name these.
//
// An operation object lives beside its request (in the awaiter, or in the socket_args) and must
// not move while the request is in flight: the kernel may read its buffers and message header
// until the request ends, and the request's hooks reach it through io_request::op_.
#pragma once

#include <liburing.h>
#include <sys/socket.h>
#include <limits.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <utility>

#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/socket_core.hpp"
#include "ringsock/endpoint.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/io_options.hpp"
#include "ringsock/received_buffer.hpp"

namespace ringsock {
class socket;
class socket_args;
}  // namespace ringsock

namespace ringsock::detail {

class acceptor;

struct connect_op {
  static constexpr const char* name = "connect_async";
  static constexpr const char* what = "ringsock: connect";
  endpoint to;  // a copy: the kernel may read it after submission
  void check() const noexcept {}
  void prep(io_uring_sqe* sqe, int fd) noexcept { io_uring_prep_connect(sqe, fd, to.data(), to.size()); }
  void value(const io_request&) const noexcept {}
};

// A stream socket's receive is served by its stream_receiver (detail/stream_receiver.hpp): from
// the bytes a persistent multishot receive already queued (inline: no SQE, no system call), or
// by waiting in the socket's FIFO of receives. Other sockets (datagrams, or a context without a
// buffer ring) get one SQE into the caller's buffer. The fields after `readiness` are the
// receiver's bookkeeping while the request waits.
struct receive_op {
  static constexpr const char* name = "receive_async";
  static constexpr const char* what = "ringsock: receive";
  std::span<std::byte> buf;
  std::span<const iovec> segments{};  // scatter (compat's BufferList): used instead of buf
  int msg_flags = 0;               // MSG_PEEK (copies, takes nothing), MSG_OOB (compat's SocketFlags)
  bool readiness = false;          // an empty buffer waits for data and takes none (compat)
  bool borrow = false;             // takes the next piece whole (receive_borrowed_op)
  socket_core* source = nullptr;   // the socket whose FIFO it waits in, while it waits
  io_request* next = nullptr;      // that FIFO
  buffer_piece lent;               // borrow: the piece taken (valid while lent_ctx is set)
  io_context* lent_ctx = nullptr;  // ... non-null while this op holds it

  receive_op() noexcept = default;
  explicit receive_op(std::span<std::byte> b, bool ready = false) noexcept : buf(b), readiness(ready) {}
  // Scatter: fills the segments in order (their total must not be 0).
  explicit receive_op(std::span<const iovec> segs) noexcept : segments(segs) {}
  // A copy takes the operands only: it is never in a FIFO, whatever the original is doing.
  receive_op(const receive_op& o) noexcept
      : buf(o.buf), segments(o.segments), msg_flags(o.msg_flags), readiness(o.readiness), borrow(o.borrow) {}
  receive_op& operator=(const receive_op&) = delete;
  // Only when it dies unfinished (its frame is destroyed with the context): leaves the FIFO;
  // a borrowed piece nobody claimed goes back to the ring. Inline: a finished one costs a test.
  ~receive_op() {
    if (source || lent_ctx) [[unlikely]]
      abandon();
  }
  [[gnu::cold]] void abandon() noexcept;
  void check() const {
    std::size_t room = buf.size();
    for (const iovec& v : segments) room += v.iov_len;
    if (room == 0 && !readiness && !borrow)
      throw std::invalid_argument("ringsock: receive_async: empty buffer (0 bytes means end of stream)");
    if ((msg_flags & ~(MSG_PEEK | MSG_OOB)) != 0)
      throw std::invalid_argument("ringsock: receive_async: flags other than MSG_PEEK and MSG_OOB");
    if (msg_flags != 0 && (buf.empty() || readiness || borrow))
      throw std::invalid_argument("ringsock: receive_async: MSG_PEEK and MSG_OOB need one buffer");
  }
  // The single-shot form: into the caller's buffer (or segments: readv), or (readiness) a poll
  // for input.
  void prep(io_uring_sqe* sqe, int fd) noexcept;
  std::size_t value(const io_request& r) const noexcept {
    return buf.empty() && segments.empty()
               ? (borrow && r.res_ > 0 ? static_cast<std::size_t>(r.res_) : 0)
               : static_cast<std::size_t>(r.res_);
  }
};

// receive as a loan: the next piece the multishot receive put into the buffer ring, handed over
// whole (no copy). Stream sockets of a context with a buffer ring only.
struct receive_borrowed_op : receive_op {
  static constexpr const char* name = "receive_borrowed_async";
  static constexpr const char* what = "ringsock: receive_borrowed";
  receive_borrowed_op() noexcept { borrow = true; }
  void check() const noexcept {}  // no buffer, no flags: always well formed
  // The piece, now the caller's (an empty handle at the end of stream).
  received_buffer value(const io_request& r) const noexcept {
    return const_cast<receive_borrowed_op*>(this)->take(r);  // the op is the awaiter's, not const
  }
  // The piece for the args form (it keeps it in the args).
  received_buffer take(const io_request& r) noexcept {
    if (r.res_ <= 0 || !lent_ctx) return {};
    io_context& ctx = *std::exchange(lent_ctx, nullptr);
    return access::lend(ctx, lent, access::ring_of(ctx).buffers().data(lent));
  }
};

// The flags a send may carry besides MSG_NOSIGNAL (std::invalid_argument otherwise). The throw
// is out of line, so that the check stays a test on the hot path.
[[noreturn, gnu::cold]] void throw_bad_send_flags();
inline void check_send_flags(int flags) {
  if ((flags & ~(MSG_OOB | MSG_DONTROUTE)) != 0) throw_bad_send_flags();
}

// Zero-copy sends (io_context::params::send_zc_threshold). start_op chooses, for a send of one
// buffer, IORING_OP_SEND_ZC when the buffer is at least the threshold and the socket's kernel
// has not copied such a send before (socket_core::send_copies); its request then takes its CQEs
// through on_send_zc_cqe: the result (with F_MORE when a notification follows) and the
// notification that the kernel no longer reads the buffer. The request completes after both,
// so the buffer is the caller's once its co_await returns, as with a copying send.
// Only TCP and UDP sockets take zero-copy sends (a Unix socket answers EOPNOTSUPP): a socket's
// family is asked once, at its first send that could go zero-copy.
[[gnu::cold]] void learn_zero_copy(socket_core& c) noexcept;
inline bool zero_copy_wanted(socket_core& c, std::size_t n) noexcept {
  const std::size_t t = access::send_zc_threshold(*c.ctx);
  if (t == 0 || n < t || c.send_copies) return false;
  if (!c.send_known) [[unlikely]]
    learn_zero_copy(c);
  return !c.send_copies;
}
inline void prep_send(io_uring_sqe* sqe, int fd, const std::byte* p, std::size_t n, int flags,
                      bool zero_copy) noexcept {
  if (zero_copy) [[unlikely]] {
    io_uring_prep_send_zc(sqe, fd, p, n, MSG_NOSIGNAL | flags, 0);
    sqe->ioprio |= send_zc_report_usage;
    return;
  }
  io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL | flags);
}
// A zero-copy request's CQE handler (see above); a notification that says the kernel copied
// marks the socket send_copies.
void on_send_zc_cqe(operation* op, int res, std::uint32_t flags) noexcept;

// MSG_NOSIGNAL on every send: a dead peer gives EPIPE, never SIGPIPE.
struct send_op {
  static constexpr const char* name = "send_async";
  static constexpr const char* what = "ringsock: send";
  std::span<const std::byte> buf;
  int msg_flags = 0;       // MSG_OOB, MSG_DONTROUTE (compat's SocketFlags)
  bool zero_copy = false;  // chosen by start_op (zero_copy_wanted)
  void check() const { check_send_flags(msg_flags); }
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    prep_send(sqe, fd, buf.data(), buf.size(), msg_flags, zero_copy);
  }
  std::size_t value(const io_request& r) const noexcept { return static_cast<std::size_t>(r.res_); }
};

// send as a policy: each short send arms the rest from the completion (io_request::again_),
// without telling the caller; a closed socket (its core's fd is -1) stops it, since the number
// may already be reused. The result is the total; `sent` keeps what went out before an error.
struct send_all_op {
  static constexpr const char* name = "send_all_async";
  static constexpr const char* what = "ringsock: send_all";
  std::span<const std::byte> buf;
  std::size_t sent = 0;
  int msg_flags = 0;       // as send_op's
  bool zero_copy = false;  // as send_op's (for every round; see send_rest)
  void check() const { check_send_flags(msg_flags); }
  // An empty buffer completes inline with 0.
  bool done_inline(io_request& r) noexcept {
    sent = 0;
    if (!buf.empty()) return false;
    r.res_ = 0;
    return true;
  }
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    prep_send(sqe, fd, buf.data() + sent, buf.size() - sent, msg_flags, zero_copy);
  }
  static bool again(io_request* r) noexcept;
  // The total is `sent` (r.res_ only says success: a total past 2 GiB does not fit an int).
  std::size_t value(const io_request&) const noexcept { return sent; }
  std::size_t value_on_error() const noexcept { return sent; }
};

// Gather (compat's BufferList): one sendmsg of every segment; a datagram socket sends them as
// one datagram.
struct send_vec_op {
  static constexpr const char* name = "send_async";
  static constexpr const char* what = "ringsock: send";
  std::span<const iovec> segments;
  msghdr msg{};
  void check() const noexcept {}
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    msg = {};
    msg.msg_iov = const_cast<iovec*>(segments.data());  // sendmsg only reads it
    msg.msg_iovlen = segments.size();
    io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
  }
  std::size_t value(const io_request& r) const noexcept { return static_cast<std::size_t>(r.res_); }
};

// send_all over segments: a short send arms the rest from where it stopped (the rest of the
// segment it stopped in with one send, then the following segments with one sendmsg), without
// writing to the caller's array.
struct send_all_vec_op {
  static constexpr const char* name = "send_all_async";
  static constexpr const char* what = "ringsock: send_all";
  std::span<const iovec> segments;
  std::size_t total = 0, sent = 0;
  std::size_t next = 0, offset = 0;  // where the next round starts: segment, byte in it
  msghdr msg{};
  void check() const noexcept {}
  // Nothing to send (every segment empty) completes inline with 0.
  bool done_inline(io_request& r) noexcept {
    total = sent = next = offset = 0;
    for (const iovec& v : segments) total += v.iov_len;
    if (total != 0) return false;
    r.res_ = 0;
    return true;
  }
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    while (segments[next].iov_len == 0) ++next;  // total > sent: a non-empty one follows
    if (offset != 0) {
      const iovec& v = segments[next];
      io_uring_prep_send(sqe, fd, static_cast<const char*>(v.iov_base) + offset, v.iov_len - offset,
                         MSG_NOSIGNAL);
      return;
    }
    msg = {};
    msg.msg_iov = const_cast<iovec*>(segments.data() + next);
    // At most IOV_MAX per round (the kernel refuses more); the rest goes in the next rounds.
    msg.msg_iovlen = std::min<std::size_t>(segments.size() - next, IOV_MAX);
    io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
  }
  // Moves the start of the next round past `n` more bytes.
  void advance(std::size_t n) noexcept {
    sent += n;
    while (n > 0) {
      const std::size_t left = segments[next].iov_len - offset;
      if (n < left) {
        offset += n;
        return;
      }
      n -= left;
      ++next;
      offset = 0;
    }
  }
  static bool again(io_request* r) noexcept;
  std::size_t value(const io_request&) const noexcept { return sent; }  // as send_all_op's
  std::size_t value_on_error() const noexcept { return sent; }
};

struct send_to_op {
  static constexpr const char* name = "send_to_async";
  static constexpr const char* what = "ringsock: send_to";
  std::span<const std::byte> buf;
  endpoint to;
  iovec iov{};
  msghdr msg{};
  void check() const noexcept {}
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    iov = {const_cast<std::byte*>(buf.data()), buf.size()};  // sendmsg only reads it
    msg = {};
    msg.msg_name = to.data();
    msg.msg_namelen = to.size();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
  }
  std::size_t value(const io_request& r) const noexcept { return static_cast<std::size_t>(r.res_); }
};

struct receive_from_op {
  static constexpr const char* name = "receive_from_async";
  static constexpr const char* what = "ringsock: receive_from";
  std::span<std::byte> buf;
  endpoint* from;  // the caller's: receives the sender's address
  iovec iov{};
  msghdr msg{};
  void check() const {
    if (buf.empty()) throw std::invalid_argument("ringsock: receive_from_async: empty buffer");
  }
  void prep(io_uring_sqe* sqe, int fd) noexcept {
    iov = {buf.data(), buf.size()};
    msg = {};
    msg.msg_name = from->data();
    msg.msg_namelen = endpoint::capacity();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    io_uring_prep_recvmsg(sqe, fd, &msg, 0);
  }
  std::size_t value(const io_request& r) const noexcept {
    from->resize(msg.msg_namelen);
    return static_cast<std::size_t>(r.res_);
  }
};

// Accept runs through the listener's acceptor (lib/acceptor.hpp), not one SQE of its own. The
// fields below are the acceptor's bookkeeping for this request while it waits.
struct accept_op {
  static constexpr const char* name = "accept_async";
  static constexpr const char* what = "ringsock: accept";
  std::span<std::byte> buf;    // non-empty: the first block is received before completion
  bool report_errors = false;  // resource errors (EMFILE ...) reach this waiter (args form)
  acceptor* source = nullptr;  // the listener whose FIFO it waits in, while it waits
  io_request* next = nullptr;  // that FIFO
  int fd = -1;                 // with a first receive: the accepted connection
  bool second_round = false;   // the first receive is in the kernel
  signed char kind = 0;        // the accepted socket's kind (socket_core::kind)

  accept_op() noexcept = default;
  accept_op(std::span<std::byte> b, bool report) noexcept : buf(b), report_errors(report) {}
  // A copy takes the operands only: it is never in a FIFO, whatever the original is doing.
  accept_op(const accept_op& o) noexcept : buf(o.buf), report_errors(o.report_errors) {}
  accept_op& operator=(const accept_op&) = delete;
  // Only when it dies unfinished (its frame is destroyed with the context): leaves the FIFO.
  ~accept_op() {
    if (source) [[unlikely]]
      abandon();
  }
  [[gnu::cold]] void abandon() noexcept;
  void check() const noexcept {}
  // The accepted descriptor (with a first receive, r.res_ counts its bytes instead).
  int value(const io_request& r) const noexcept { return buf.empty() ? r.res_ : fd; }
};

// The socket behind the core is usable (throws socket_closed_error), and so are op's operands
// (empty receive buffer: std::invalid_argument). Nothing has been submitted when it throws.
template <class Op>
void check_op(const socket_core* c, const Op& op) {
  if (!c || c->fd < 0) throw socket_closed_error(Op::name);
  op.check();
}
// For accept, also: the socket listens (not_listening_error).
void check_op(const socket_core* c, const accept_op& op);

// Starts `op` as request `r` on the socket of `c`. Returns true when it completed inline (no
// SQE, no system call: r.res_ holds the result and r.completion_ is never called), false when
// r.completion_ will be called exactly once, later, on the context's thread. The caller has set
// r.completion_ and r.waiter_. Throws only for misuse the call could not see earlier (accept on a
// listener closed since), before anything is submitted.
template <class Op>
bool start_op(socket_core& c, io_request& r, Op& op, const io_options& o);
bool start_op(socket_core& c, io_request& r, accept_op& op, const io_options& o);
bool start_op(socket_core& c, io_request& r, receive_op& op, const io_options& o);
inline bool start_op(socket_core& c, io_request& r, receive_borrowed_op& op, const io_options& o) {
  return start_op(c, r, static_cast<receive_op&>(op), o);
}

// The args form's start (lib/socket_args.cpp): checks, then start_op on the args' own request
// and operation. True: completed inline (the args hold the result, nothing will be signalled).
template <class Op>
bool start_args(socket& s, socket_args& a, const io_options& o);
// What start_args runs once it has built the operation from the args' fields.
template <class Op>
bool start_args_with(socket& s, socket_args& a, Op op, const io_options& o);
// The same for a receive that waits for data and takes none (compat's zero-byte receive): it
// completes with 0 bytes once a receive would not wait.
bool start_readiness(socket& s, socket_args& a, const io_options& o);

template <class Op>
bool start_op(socket_core& c, io_request& r, Op& op, const io_options& o) {
  r.op_ = &op;
  if constexpr (requires { op.done_inline(r); }) {
    if (op.done_inline(r)) {
      access::count_inline(*c.ctx);
      return true;
    }
  }
  if constexpr (requires { &Op::again; })
    r.again_ = &Op::again;
  else
    r.again_ = nullptr;
  if constexpr (requires { op.zero_copy; }) op.zero_copy = zero_copy_wanted(c, op.buf.size());
  // Held before arming: making room for the SQE may dispatch completions, and one of them may
  // close or destroy the socket (prep then sees fd -1 and the kernel answers EBADF).
  r.core_ = &c;
  ++c.armed;
  access::arm(*c.ctx, r, o, [&](io_uring_sqe* sqe) {
    op.prep(sqe, c.fd);
    if constexpr (requires { op.zero_copy; }) {
      // Here, after arm's reset of the handler and before anything can reap this request.
      if (op.zero_copy) [[unlikely]]
        r.on_cqe_ = &on_send_zc_cqe;
    }
  });
  return false;
}

}  // namespace ringsock::detail
