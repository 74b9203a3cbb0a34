// The completion adapters of socket's operations: op_awaiter (plain form: the value, or throws
// socket_error) and args_awaiter (args form: std::error_code). Both start the operation in
// await_ready() through start_op(): true means it completed inline, so the coroutine never
// suspends ("one operation, two views"). A completion cannot arrive before await_suspend() ran:
// the loop reaps CQEs only after the coroutine has suspended and returned to it.
#pragma once

#include <coroutine>
#include <cstddef>
#include <span>
#include <system_error>
#include <utility>

#include "ringsock/detail/socket_ops.hpp"
#include "ringsock/socket.hpp"

namespace ringsock::detail {

// The coroutine form's completion: resume the awaiting coroutine.
void resume_waiter(io_request* r) noexcept;

template <class Op>
class op_awaiter {
 public:
  // Checks at the call, so that misuse throws before anything is submitted.
  op_awaiter(socket& s, Op&& op, io_options o) : sock_(&s), op_(std::move(op)), opts_(std::move(o)) {
    check_op(access::core(s), op_);
  }
  op_awaiter(const op_awaiter&) = delete;
  op_awaiter& operator=(const op_awaiter&) = delete;

  bool await_ready() {
    socket_core* c = access::core(*sock_);
    if (!c) throw socket_closed_error(Op::name);  // moved from (or reset) since the call
    req_.completion_ = &resume_waiter;
    return start_op(*c, req_, op_, opts_);
  }
  void await_suspend(std::coroutine_handle<> h) noexcept { req_.waiter_ = h.address(); }
  decltype(auto) await_resume() const {
    if (req_.res_ < 0) throw socket_error(-req_.res_, Op::what);
    return op_.value(req_);
  }
  // The raw outcome once resumed: >= 0 the value, < 0 -errno (as_result reads it instead of
  // letting await_resume throw).
  int raw_result() const noexcept { return req_.res_; }
  // What went out before an error, where the operation counts it (send_all).
  auto value_on_error() const noexcept
    requires requires(const Op& op) { op.value_on_error(); }
  {
    return op_.value_on_error();
  }

 protected:
  io_request req_;
  socket* sock_;
  Op op_;
  io_options opts_;
};

// accept's value is a socket of the listener's context (not of sock_: the listener may be gone
// by the time it completes).
class accept_awaiter : public op_awaiter<accept_op> {
 public:
  using op_awaiter::op_awaiter;
  socket await_resume() const {
    const int fd = op_awaiter::await_resume();
    socket s(*req_.ctx_, fd);
    access::core(s)->kind = op_.kind;  // no SO_TYPE query at its first receive
    return s;
  }
};

// The args form of every operation: the state lives in the args object.
class args_awaiter {
 public:
  using start_fn = bool (*)(socket&, socket_args&, const io_options&);
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
  return {*this, detail::accept_op{}, std::move(o)};
}
inline detail::args_awaiter socket::accept_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::accept_op>, std::move(o)};
}
inline detail::op_awaiter<detail::connect_op> socket::connect_async(const endpoint& ep,
                                                                    io_options o) {
  return {*this, detail::connect_op{ep}, std::move(o)};
}
inline detail::args_awaiter socket::connect_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::connect_op>, std::move(o)};
}
inline detail::op_awaiter<detail::receive_op> socket::receive_async(std::span<std::byte> buf,
                                                                    io_options o) {
  return {*this, detail::receive_op{buf}, std::move(o)};
}
inline detail::args_awaiter socket::receive_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::receive_op>, std::move(o)};
}
inline detail::op_awaiter<detail::receive_borrowed_op> socket::receive_borrowed_async(io_options o) {
  return {*this, detail::receive_borrowed_op{}, std::move(o)};
}
inline detail::args_awaiter socket::receive_borrowed_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::receive_borrowed_op>, std::move(o)};
}
inline detail::op_awaiter<detail::send_op> socket::send_async(std::span<const std::byte> buf,
                                                              io_options o) {
  return {*this, detail::send_op{buf}, std::move(o)};
}
inline detail::args_awaiter socket::send_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::send_op>, std::move(o)};
}
inline detail::op_awaiter<detail::send_all_op> socket::send_all_async(
    std::span<const std::byte> buf, io_options o) {
  return {*this, detail::send_all_op{buf}, std::move(o)};
}
inline detail::args_awaiter socket::send_all_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::send_all_op>, std::move(o)};
}
inline detail::op_awaiter<detail::send_to_op> socket::send_to_async(
    std::span<const std::byte> buf, const endpoint& to, io_options o) {
  return {*this, detail::send_to_op{buf, to}, std::move(o)};
}
inline detail::args_awaiter socket::send_to_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::send_to_op>, std::move(o)};
}
inline detail::op_awaiter<detail::receive_from_op> socket::receive_from_async(
    std::span<std::byte> buf, endpoint& from, io_options o) {
  return {*this, detail::receive_from_op{buf, &from}, std::move(o)};
}
inline detail::args_awaiter socket::receive_from_async(socket_args& a, io_options o) {
  return {*this, a, &detail::start_args<detail::receive_from_op>, std::move(o)};
}

}  // namespace ringsock
