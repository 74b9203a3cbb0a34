// The awaiters behind socket's operations. Each starts its operation in await_ready(): true
// means it completed inline, so the coroutine never suspends ("one operation, two
// views"). A completion cannot arrive before await_suspend() ran: the loop reaps CQEs only
// after the coroutine has suspended and returned to it.
#pragma once

#include <liburing.h>

#include <coroutine>
#include <cstddef>
#include <span>
#include <system_error>

#include "ringsock/socket.hpp"

namespace ringsock::detail {

// Base of the plain-form awaiters: one request, resumed by its completion.
class plain_awaiter {
 public:
  void await_suspend(std::coroutine_handle<> h) noexcept { req_.waiter_ = h.address(); }
  // The raw outcome once resumed: >= 0 the value, < 0 -errno (as_result reads it instead of
  // letting await_resume throw).
  int raw_result() const noexcept { return req_.res_; }

 protected:
  plain_awaiter(socket& s, io_options o) noexcept : sock_(&s), opts_(std::move(o)) {}
  int result_or_throw(const char* what) const {
    if (req_.res_ < 0) throw socket_error(-req_.res_, what);
    return req_.res_;
  }
  // prep(sqe, fd) fills the SQE.
  template <class Prep>
  void arm(Prep&& prep) {
    req_.done_ = &resume_waiter;
    sock_->arm(req_, opts_, std::forward<Prep>(prep));
  }

  io_request req_;
  socket* sock_;
  io_options opts_;
};

class accept_awaiter : public plain_awaiter {
 public:
  accept_awaiter(socket& s, acceptor& a, io_options o) noexcept
      : plain_awaiter(s, std::move(o)), acceptor_(&a) {}
  accept_awaiter(const accept_awaiter&) = delete;
  ~accept_awaiter();
  bool await_ready();
  socket await_resume();

 private:
  acceptor* acceptor_;
};

class connect_awaiter : public plain_awaiter {
 public:
  connect_awaiter(socket& s, const endpoint& ep, io_options o) noexcept
      : plain_awaiter(s, std::move(o)), ep_(ep) {}
  bool await_ready() {
    arm([this](io_uring_sqe* sqe, int fd) { io_uring_prep_connect(sqe, fd, ep_.data(), ep_.size()); });
    return false;
  }
  void await_resume() const { result_or_throw("ringsock: connect"); }

 private:
  endpoint ep_;  // the kernel may read it after submission
};

class receive_awaiter : public plain_awaiter {
 public:
  receive_awaiter(socket& s, std::span<std::byte> buf, io_options o) noexcept
      : plain_awaiter(s, std::move(o)), buf_(buf) {}
  bool await_ready() {
    arm([this](io_uring_sqe* sqe, int fd) {
      io_uring_prep_recv(sqe, fd, buf_.data(), buf_.size(), 0);
    });
    return false;
  }
  std::size_t await_resume() const {
    return static_cast<std::size_t>(result_or_throw("ringsock: receive"));
  }

 private:
  std::span<std::byte> buf_;
};

class send_awaiter : public plain_awaiter {
 public:
  send_awaiter(socket& s, std::span<const std::byte> buf, io_options o) noexcept
      : plain_awaiter(s, std::move(o)), buf_(buf) {}
  bool await_ready() {
    arm([this](io_uring_sqe* sqe, int fd) {
      io_uring_prep_send(sqe, fd, buf_.data(), buf_.size(), MSG_NOSIGNAL);
    });
    return false;
  }
  std::size_t await_resume() const {
    return static_cast<std::size_t>(result_or_throw("ringsock: send"));
  }

 private:
  std::span<const std::byte> buf_;
};

// Sends in rounds until all is out: each short send arms the next chunk from the completion,
// without resuming the coroutine; a closed socket (its core's fd is -1) stops it: the number may
// already be reused.
bool send_all_again(io_request* r) noexcept;
void prep_send_rest(io_uring_sqe* sqe, int fd, io_request& r) noexcept;

class send_all_awaiter : public plain_awaiter {
 public:
  send_all_awaiter(socket& s, std::span<const std::byte> buf, io_options o) noexcept
      : plain_awaiter(s, std::move(o)) {
    // The request's buffer is mutable-typed; send only reads it.
    req_.buf_ = {const_cast<std::byte*>(buf.data()), buf.size()};
  }
  bool await_ready();
  std::size_t await_resume() const {
    return static_cast<std::size_t>(result_or_throw("ringsock: send_all"));
  }
  // What went out before an error (as_result reports it with the error).
  std::size_t value_on_error() const noexcept { return req_.done_bytes_; }
};

class send_to_awaiter : public plain_awaiter {
 public:
  send_to_awaiter(socket& s, std::span<const std::byte> buf, const endpoint& to,
                  io_options o) noexcept;
  bool await_ready();
  std::size_t await_resume() const {
    return static_cast<std::size_t>(result_or_throw("ringsock: send_to"));
  }

 private:
  endpoint to_;
  iovec iov_;
  msghdr msg_{};
};

class receive_from_awaiter : public plain_awaiter {
 public:
  receive_from_awaiter(socket& s, std::span<std::byte> buf, endpoint& from,
                       io_options o) noexcept;
  bool await_ready();
  std::size_t await_resume();

 private:
  endpoint* from_;
  iovec iov_;
  msghdr msg_{};
};

// The args form of every operation: the state lives in the args object.
class args_awaiter {
 public:
  using start_fn = bool (socket::*)(socket_args&, const io_options&);
  args_awaiter(socket& s, socket_args& a, start_fn start, io_options o) noexcept
      : sock_(&s), args_(&a), start_(start), opts_(std::move(o)) {}
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h) noexcept;
  std::error_code await_resume() const noexcept;

 private:
  socket* sock_;
  socket_args* args_;
  start_fn start_;
  io_options opts_;
};

}  // namespace ringsock::detail

namespace ringsock {

inline detail::accept_awaiter socket::accept_async(io_options o) {
  return {*this, checked_acceptor("accept_async"), std::move(o)};
}
inline detail::args_awaiter socket::accept_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_accept, std::move(o)};
}
inline detail::connect_awaiter socket::connect_async(const endpoint& ep, io_options o) {
  checked("connect_async");
  return {*this, ep, std::move(o)};
}
inline detail::args_awaiter socket::connect_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_connect, std::move(o)};
}
inline detail::receive_awaiter socket::receive_async(std::span<std::byte> buf, io_options o) {
  checked("receive_async");
  if (buf.empty())
    throw std::invalid_argument("ringsock: receive_async: empty buffer (0 bytes means end of stream)");
  return {*this, buf, std::move(o)};
}
inline detail::args_awaiter socket::receive_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_receive, std::move(o)};
}
inline detail::send_awaiter socket::send_async(std::span<const std::byte> buf, io_options o) {
  checked("send_async");
  return {*this, buf, std::move(o)};
}
inline detail::args_awaiter socket::send_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_send, std::move(o)};
}
inline detail::send_all_awaiter socket::send_all_async(std::span<const std::byte> buf,
                                                       io_options o) {
  checked("send_all_async");
  return {*this, buf, std::move(o)};
}
inline detail::args_awaiter socket::send_all_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_send_all, std::move(o)};
}
inline detail::send_to_awaiter socket::send_to_async(std::span<const std::byte> buf,
                                                     const endpoint& to, io_options o) {
  checked("send_to_async");
  return {*this, buf, to, std::move(o)};
}
inline detail::args_awaiter socket::send_to_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_send_to, std::move(o)};
}
inline detail::receive_from_awaiter socket::receive_from_async(std::span<std::byte> buf,
                                                               endpoint& from, io_options o) {
  checked("receive_from_async");
  if (buf.empty()) throw std::invalid_argument("ringsock: receive_from_async: empty buffer");
  return {*this, buf, from, std::move(o)};
}
inline detail::args_awaiter socket::receive_from_async(socket_args& a, io_options o) {
  return {*this, a, &socket::start_receive_from, std::move(o)};
}

}  // namespace ringsock
