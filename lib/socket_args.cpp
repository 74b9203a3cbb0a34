#include "ringsock/socket_args.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "acceptor.hpp"

namespace ringsock {

socket_args::socket_args() noexcept { req_.done_ = &socket_args::on_done; }

void socket_args::set_buffer(std::span<std::byte> buf) {
  if (in_use_) throw args_in_use_error("socket_args::set_buffer");
  buffer_ = buf;
}

const endpoint& socket_args::remote_endpoint() const {
  if (remote_from_peer_) {
    remote_from_peer_ = false;
    socklen_t len = endpoint::capacity();
    if (accept_socket_.is_open() &&
        ::getpeername(accept_socket_.native_handle(), remote_.data(), &len) == 0)
      remote_.resize(len);
    else
      remote_ = endpoint();
  }
  return remote_;
}

void socket_args::set_remote_endpoint(const endpoint& ep) {
  if (in_use_) throw args_in_use_error("socket_args::set_remote_endpoint");
  remote_ = ep;
  remote_from_peer_ = false;
}

detail::io_request& socket_args::begin(socket_operation op, const char* what) {
  if (in_use_) throw args_in_use_error(what);
  last_op_ = op;
  transferred_ = 0;
  error_.clear();
  sync_ = false;
  req_.done_ = &socket_args::on_done;
  req_.waiter_ = this;
  req_.buf_ = buffer_;
  req_.again_ = nullptr;
  req_.fd_ = -1;
  return req_;
}

// Everything an operation produced, from the request into the args' public fields.
void socket_args::take_result() noexcept {
  const int res = req_.res_;
  switch (last_op_) {
    case socket_operation::accept: {
      // With a first receive the connection is in fd_ and res_ counts the bytes.
      int fd = req_.buf_.empty() ? res : req_.fd_;
      if (res >= 0 && req_.ctx_->draining()) {
        ::close(fd);  // the context is going away: nobody will serve this connection
        error_ = std::make_error_code(std::errc::operation_canceled);
        break;
      }
      if (res < 0) {
        if (!req_.buf_.empty() && fd >= 0) ::close(fd);  // its first receive failed
        error_ = make_error_code_from_errno(-res);
        break;
      }
      accept_socket_ = socket(*req_.ctx_, fd);
      transferred_ = req_.buf_.empty() ? 0 : static_cast<std::size_t>(res);
      remote_from_peer_ = true;
      break;
    }
    case socket_operation::send_all:
      transferred_ = req_.done_bytes_;
      if (res < 0) error_ = make_error_code_from_errno(-res);
      break;
    case socket_operation::receive_from:
      if (res >= 0) remote_.resize(msg_.msg_namelen);
      [[fallthrough]];
    default:
      if (res < 0)
        error_ = make_error_code_from_errno(-res);
      else
        transferred_ = static_cast<std::size_t>(res);
  }
}

void socket_args::complete_inline() noexcept {
  take_result();
  sync_ = true;
}

void socket_args::on_done(detail::io_request* r) noexcept {
  auto& a = *static_cast<socket_args*>(r->waiter_);
  a.take_result();
  a.in_use_ = false;
  if (r->ctx_->draining()) {
    if (a.on_abandon_) a.on_abandon_(a, a.target_);
    return;
  }
  if (a.on_complete_)
    a.on_complete_(a, a.target_);
  else
    resume(a, a.target_);
}

void socket_args::resume(socket_args&, void* target) noexcept {
  std::coroutine_handle<>::from_address(target).resume();
}

namespace detail {
bool args_awaiter::await_ready() {
  args_->set_abandon(nullptr);
  if ((sock_->*start_)(*args_, opts_)) return true;
  // Only now: a start that threw for misuse must leave a pending operation's waiter untouched.
  // Nothing can complete before await_suspend() ran.
  args_->set_completion(nullptr, nullptr);  // default: resume the coroutine
  return false;
}
void args_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  args_->set_completion_target(h.address());
}
std::error_code args_awaiter::await_resume() const noexcept { return args_->socket_error(); }
}  // namespace detail

// ---- the args-form start routines ----

bool socket::start_accept(socket_args& a, const io_options& o) {
  detail::acceptor& acc = checked_acceptor("accept_async");
  detail::io_request& r = a.begin(socket_operation::accept, "accept_async");
  a.accept_socket().close();
  r.report_errors_ = true;
  if (acc.start(r, o)) {
    a.complete_inline();
    return true;
  }
  a.in_use_ = true;
  return false;
}

bool socket::start_connect(socket_args& a, const io_options& o) {
  checked("connect_async");
  if (a.remote().family() == address_family::unspecified)
    throw std::invalid_argument("ringsock: connect_async: args.remote_endpoint() is not set");
  detail::io_request& r = a.begin(socket_operation::connect, "connect_async");
  arm(r, o, [&](io_uring_sqe* sqe, int fd) {
    io_uring_prep_connect(sqe, fd, a.remote().data(), a.remote().size());
  });
  a.in_use_ = true;
  return false;
}

bool socket::start_receive(socket_args& a, const io_options& o) {
  checked("receive_async");
  if (a.buffer().empty())
    throw std::invalid_argument("ringsock: receive_async: empty buffer (0 bytes means end of stream)");
  detail::io_request& r = a.begin(socket_operation::receive, "receive_async");
  arm(r, o, [&](io_uring_sqe* sqe, int fd) {
    io_uring_prep_recv(sqe, fd, r.buf_.data(), r.buf_.size(), 0);
  });
  a.in_use_ = true;
  return false;
}

bool socket::start_send(socket_args& a, const io_options& o) {
  checked("send_async");
  detail::io_request& r = a.begin(socket_operation::send, "send_async");
  arm(r, o, [&](io_uring_sqe* sqe, int fd) {
    io_uring_prep_send(sqe, fd, r.buf_.data(), r.buf_.size(), MSG_NOSIGNAL);
  });
  a.in_use_ = true;
  return false;
}

bool socket::start_send_all(socket_args& a, const io_options& o) {
  io_context& ctx = checked("send_all_async");
  detail::io_request& r = a.begin(socket_operation::send_all, "send_all_async");
  r.done_bytes_ = 0;
  if (r.buf_.empty()) {
    r.res_ = 0;
    ctx.count_inline();
    a.complete_inline();
    return true;
  }
  r.again_ = &detail::send_all_again;
  arm(r, o, [&](io_uring_sqe* sqe, int fd) { detail::prep_send_rest(sqe, fd, r); });
  a.in_use_ = true;
  return false;
}

bool socket::start_send_to(socket_args& a, const io_options& o) {
  checked("send_to_async");
  if (a.remote().family() == address_family::unspecified)
    throw std::invalid_argument("ringsock: send_to_async: args.remote_endpoint() is not set");
  detail::io_request& r = a.begin(socket_operation::send_to, "send_to_async");
  msghdr& m = a.message();
  a.io_vector() = {r.buf_.data(), r.buf_.size()};
  m = {};
  m.msg_name = a.remote().data();
  m.msg_namelen = a.remote().size();
  m.msg_iov = &a.io_vector();
  m.msg_iovlen = 1;
  arm(r, o, [&](io_uring_sqe* sqe, int fd) { io_uring_prep_sendmsg(sqe, fd, &m, MSG_NOSIGNAL); });
  a.in_use_ = true;
  return false;
}

bool socket::start_receive_from(socket_args& a, const io_options& o) {
  checked("receive_from_async");
  if (a.buffer().empty()) throw std::invalid_argument("ringsock: receive_from_async: empty buffer");
  detail::io_request& r = a.begin(socket_operation::receive_from, "receive_from_async");
  msghdr& m = a.message();
  a.io_vector() = {r.buf_.data(), r.buf_.size()};
  m = {};
  m.msg_name = a.remote().data();
  m.msg_namelen = endpoint::capacity();
  m.msg_iov = &a.io_vector();
  m.msg_iovlen = 1;
  arm(r, o, [&](io_uring_sqe* sqe, int fd) { io_uring_prep_recvmsg(sqe, fd, &m, 0); });
  a.in_use_ = true;
  return false;
}

}  // namespace ringsock
