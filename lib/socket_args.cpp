// The args form: the operation's state lives in the socket_args, the outcome goes into its
// public fields, and the waiter is told through the args' completion function.
#include "ringsock/socket_args.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ringsock {

socket_args::socket_args() noexcept { req_.completion_ = &socket_args::on_complete; }

socket_args::~socket_args() {
  if (in_use_) {
    std::fprintf(stderr,
                 "ringsock: a socket_args was destroyed while an operation using it was pending; "
                 "the kernel still owns its memory\n");
    std::abort();
  }
}

void socket_args::set_buffer(std::span<std::byte> buf) {
  if (in_use_) throw args_in_use_error("socket_args::set_buffer");
  buffer_ = buf;
  segments_ = {};
}

void socket_args::set_message_flags(int flags) {
  if (in_use_) throw args_in_use_error("socket_args::set_message_flags");
  msg_flags_ = flags;
}

void socket_args::set_buffer_list(std::span<const iovec> segments) {
  if (in_use_) throw args_in_use_error("socket_args::set_buffer_list");
  segments_ = segments;
  buffer_ = {};
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

void socket_args::prepare(socket_operation op, const char* what) {
  if (in_use_) throw args_in_use_error(what);
  last_op_ = op;
  transferred_ = 0;
  borrowed_.reset();
  error_.clear();
  sync_ = false;
  req_.completion_ = &socket_args::on_complete;
  req_.waiter_ = this;
}

void socket_args::take_result() noexcept {
  std::visit([this](const auto& op) { store(op); }, op_);
}

// receive, send, send_to, receive_from: the byte count.
template <class Op>
void socket_args::store(const Op& op) noexcept {
  if (req_.res_ < 0)
    error_ = make_error_code_from_errno(-req_.res_);
  else
    transferred_ = op.value(req_);
}

void socket_args::store(const detail::connect_op&) noexcept {
  if (req_.res_ < 0) error_ = make_error_code_from_errno(-req_.res_);
}

void socket_args::store(const detail::receive_borrowed_op& op) noexcept {
  if (req_.res_ < 0) {
    error_ = make_error_code_from_errno(-req_.res_);
    return;
  }
  received_buffer b = op.value(req_);
  if (detail::access::draining(*req_.ctx_)) {
    // The context is going away: the args may outlive it, so they must hold none of its buffers.
    error_ = std::make_error_code(std::errc::operation_canceled);
    return;  // b gives the piece back here
  }
  borrowed_ = std::move(b);
  transferred_ = borrowed_.size();
}

// send_all and its gather form: the total sent, also after an error (what went out before it).
void socket_args::store_sent(std::size_t sent) noexcept {
  transferred_ = sent;
  if (req_.res_ < 0) error_ = make_error_code_from_errno(-req_.res_);
}

void socket_args::store(const detail::accept_op& op) noexcept {
  const int res = req_.res_;
  if (res < 0) {
    if (op.fd >= 0) ::close(op.fd);  // accepted, but its first receive failed
    error_ = make_error_code_from_errno(-res);
    return;
  }
  const int fd = op.value(req_);
  if (detail::access::draining(*req_.ctx_)) {
    ::close(fd);  // the context is going away: nobody will serve this connection
    error_ = std::make_error_code(std::errc::operation_canceled);
    return;
  }
  accept_socket_ = socket(*req_.ctx_, fd);
  detail::access::core(accept_socket_)->kind = op.kind;
  transferred_ = op.buf.empty() ? 0 : static_cast<std::size_t>(res);
  remote_from_peer_ = true;
}

void socket_args::on_complete(detail::io_request* r) noexcept {
  auto& a = *static_cast<socket_args*>(r->waiter_);
  a.take_result();
  a.in_use_ = false;
  if (detail::access::draining(*r->ctx_)) {
    if (a.on_abandon_) a.on_abandon_(a, a.target_);
    return;
  }
  a.completion_(a, a.target_);
}

void socket_args::resume(socket_args&, void* target) noexcept {
  std::coroutine_handle<>::from_address(target).resume();
}

namespace detail {

namespace {
template <class Op>
constexpr socket_operation kind_of() noexcept {
  if constexpr (std::is_same_v<Op, accept_op>) return socket_operation::accept;
  else if constexpr (std::is_same_v<Op, connect_op>) return socket_operation::connect;
  else if constexpr (std::is_same_v<Op, receive_op> || std::is_same_v<Op, receive_borrowed_op>)
    return socket_operation::receive;
  else if constexpr (std::is_same_v<Op, send_op> || std::is_same_v<Op, send_vec_op>)
    return socket_operation::send;
  else if constexpr (std::is_same_v<Op, send_all_op> || std::is_same_v<Op, send_all_vec_op>)
    return socket_operation::send_all;
  else if constexpr (std::is_same_v<Op, send_to_op>) return socket_operation::send_to;
  else return socket_operation::receive_from;
}

// An operation needing a destination that the args do not have yet.
void require_remote(const endpoint& ep, const char* name) {
  if (ep.family() == address_family::unspecified)
    throw std::invalid_argument(std::string("ringsock: ") + name +
                                ": args.remote_endpoint() is not set");
}
}  // namespace

// Starts `op` (already built from the args' fields) on the args' own request.
template <class Op>
bool start_args_with(socket& s, socket_args& a, Op op, const io_options& o) {
  socket_core* c = access::core(s);
  check_op(c, op);
  if constexpr (std::is_same_v<Op, connect_op> || std::is_same_v<Op, send_to_op>)
    require_remote(op.to, Op::name);
  a.prepare(kind_of<Op>(), Op::name);
  Op& live = a.op_.template emplace<Op>(std::move(op));
  if constexpr (std::is_same_v<Op, accept_op>) a.accept_socket_.close();
  if (start_op(*c, a.req_, live, o)) {
    a.take_result();
    a.sync_ = true;
    return true;
  }
  a.in_use_ = true;
  return false;
}

template <class Op>
bool start_args(socket& s, socket_args& a, const io_options& o) {
  if (a.in_use_) throw args_in_use_error(Op::name);  // before any other check of the args
  if constexpr (!std::is_same_v<Op, receive_op> && !std::is_same_v<Op, send_op> &&
                !std::is_same_v<Op, send_all_op>) {
    if (a.msg_flags_ != 0)
      throw std::invalid_argument(std::string("ringsock: ") + Op::name +
                                  ": message flags serve receive, send and send_all only");
  }
  // A buffer list: the scatter/gather form of the operation.
  if (!a.segments_.empty()) {
    if (a.msg_flags_ != 0)
      throw std::invalid_argument(std::string("ringsock: ") + Op::name +
                                  ": message flags need one buffer, not a list");
    if constexpr (std::is_same_v<Op, receive_op>)
      return start_args_with(s, a, receive_op{a.segments_}, o);
    else if constexpr (std::is_same_v<Op, send_op>)
      return start_args_with(s, a, send_vec_op{a.segments_}, o);
    else if constexpr (std::is_same_v<Op, send_all_op>)
      return start_args_with(s, a, send_all_vec_op{a.segments_}, o);
    else
      throw std::invalid_argument(std::string("ringsock: ") + Op::name +
                                  ": a buffer list serves receive, send and send_all only");
  }
  // The operands, from the args' fields.
  Op op = [&] {
    if constexpr (std::is_same_v<Op, accept_op>) return accept_op{a.buffer_, true};
    else if constexpr (std::is_same_v<Op, connect_op>) return connect_op{a.remote_};
    else if constexpr (std::is_same_v<Op, send_to_op>) return send_to_op{a.buffer_, a.remote_};
    else if constexpr (std::is_same_v<Op, receive_from_op>) return receive_from_op{a.buffer_, &a.remote_};
    else if constexpr (std::is_same_v<Op, receive_borrowed_op>) return receive_borrowed_op{};
    else return Op{a.buffer_};
  }();
  if constexpr (std::is_same_v<Op, receive_op> || std::is_same_v<Op, send_op> ||
                std::is_same_v<Op, send_all_op>)
    op.msg_flags = a.msg_flags_;
  return start_args_with(s, a, std::move(op), o);
}

bool start_readiness(socket& s, socket_args& a, const io_options& o) {
  return start_args_with(s, a, receive_op{{}, true}, o);
}

template bool start_args<accept_op>(socket&, socket_args&, const io_options&);
template bool start_args<connect_op>(socket&, socket_args&, const io_options&);
template bool start_args<receive_op>(socket&, socket_args&, const io_options&);
template bool start_args<receive_borrowed_op>(socket&, socket_args&, const io_options&);
template bool start_args<send_op>(socket&, socket_args&, const io_options&);
template bool start_args<send_all_op>(socket&, socket_args&, const io_options&);
template bool start_args<send_to_op>(socket&, socket_args&, const io_options&);
template bool start_args<receive_from_op>(socket&, socket_args&, const io_options&);

bool args_awaiter::await_ready() {
  if (start_(*sock_, *args_, opts_)) return true;
  // Only now: a start that threw for misuse must leave a pending operation's waiter untouched.
  // Nothing can complete before await_suspend() ran.
  access::set_completion(*args_, nullptr, nullptr);  // default: resume the coroutine
  access::set_abandon(*args_, nullptr);
  return false;
}
void args_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  access::set_completion_target(*args_, h.address());
}
std::error_code args_awaiter::await_resume() const noexcept { return args_->error(); }

}  // namespace detail
}  // namespace ringsock
