// The out-of-line parts of the operations (detail/socket_ops.hpp); accept's live with the
// acceptor.
#include "ringsock/detail/socket_ops.hpp"

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
  access::submit_round(*r->ctx_, *r, [&op, fd](io_uring_sqe* sqe) { op.prep(sqe, fd); });
  return true;
}
}  // namespace

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
