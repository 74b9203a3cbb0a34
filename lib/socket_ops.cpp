// The out-of-line parts of the operations (detail/socket_ops.hpp); accept's live with the
// acceptor.
#include "ringsock/detail/socket_ops.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>

namespace ringsock::detail {

void throw_bad_send_flags() {
  throw std::invalid_argument("ringsock: send: flags other than MSG_OOB and MSG_DONTROUTE");
}

namespace {
// A short send: the rest goes out in another round. Out of line, so that the common case (every
// byte went out at once) costs no register saves.
template <class Op>
[[gnu::noinline]] bool send_rest(io_request* r, Op& op) noexcept {
  const int fd = r->core_->fd;
  if (fd < 0 || r->cancelled_) {
    r->res_ = -ECANCELED;  // closed meanwhile: never send on a number that may be reused
    return false;
  }
  if constexpr (requires { op.zero_copy; }) {
    if (r->core_->send_copies) op.zero_copy = false;  // the first round's notification said so
  }
  access::submit_round(*r->ctx_, *r, [&op, fd](io_uring_sqe* sqe) { op.prep(sqe, fd); });
  return true;
}
}  // namespace

void learn_zero_copy(socket_core& c) noexcept {
  c.send_known = true;
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(c.fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      (domain != AF_INET && domain != AF_INET6))
    c.send_copies = true;
}

void on_send_zc_cqe(operation* o, int res, std::uint32_t flags) noexcept {
  auto* r = static_cast<io_request*>(o);
  if (flags & IORING_CQE_F_NOTIF) {
    // The kernel is done with the buffer. r->core_ is set while the request is in flight.
    const bool copied = static_cast<unsigned>(res) & notif_usage_zc_copied;
    if (copied) r->core_->send_copies = true;
    access::count_zero_copy(*r->ctx_, copied);
  } else {
    r->res_ = res;
    if (flags & IORING_CQE_F_MORE) ++r->cqes_left_;  // the notification is still to come
  }
  r->count_down();
}

bool send_all_op::again(io_request* r) noexcept {
  auto& op = *static_cast<send_all_op*>(r->op_);
  if (r->res_ < 0) return false;  // `sent` keeps what went out before the error
  op.sent += static_cast<std::size_t>(r->res_);
  if (op.sent >= op.buf.size() || r->res_ == 0) {
    r->res_ = 0;  // success; the total is op.sent
    return false;
  }
  return send_rest(r, op);
}

bool send_all_vec_op::again(io_request* r) noexcept {
  auto& op = *static_cast<send_all_vec_op*>(r->op_);
  if (r->res_ < 0) return false;  // `sent` keeps what went out before the error
  op.advance(static_cast<std::size_t>(r->res_));
  if (op.sent >= op.total || r->res_ == 0) {
    r->res_ = 0;  // success; the total is op.sent
    return false;
  }
  return send_rest(r, op);
}

}  // namespace ringsock::detail
