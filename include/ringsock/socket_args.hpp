// socket_args: a reusable, non-copyable operation context, the C++ shape of .NET's
// SocketAsyncEventArgs. It embeds the operation's state, so an args-form operation allocates
// nothing; it must stay alive (and must not move) while an operation using it is pending.
#pragma once

#include <any>
#include <cstddef>
#include <span>
#include <system_error>

#include "ringsock/detail/operation.hpp"
#include "ringsock/endpoint.hpp"
#include "ringsock/socket.hpp"

namespace ringsock {

enum class socket_operation : unsigned char {
  none,
  accept,
  connect,
  receive,
  send,
  send_all,
  send_to,
  receive_from,
};

class socket_args {
 public:
  // How the waiting side is told that a pending operation completed (set by the view that
  // started it: a coroutine awaiter resumes, the compat layer raises Completed).
  using completion_fn = void (*)(socket_args& args, void* target) noexcept;

  socket_args() noexcept;
  socket_args(const socket_args&) = delete;
  socket_args& operator=(const socket_args&) = delete;

  // The buffer of receive/send operations, and of accept's first receive. The caller owns the
  // memory. Throws args_in_use_error while an operation is pending.
  void set_buffer(std::span<std::byte> buf);
  std::span<std::byte> buffer() const noexcept { return buffer_; }
  // Bytes moved by the last operation (accept: bytes of the first receive).
  std::size_t bytes_transferred() const noexcept { return transferred_; }
  // accept: the new connection (move it out); empty after a failed accept.
  socket& accept_socket() noexcept { return accept_socket_; }
  // accept: the peer's address (read from the kernel on first use); connect/send_to: the
  // destination, set before the call; receive_from: the sender.
  const endpoint& remote_endpoint() const;
  void set_remote_endpoint(const endpoint& ep);
  // The outcome of the last operation: empty on success.
  std::error_code socket_error() const noexcept { return error_; }
  // Anything the caller wants to carry along; never touched by the library.
  std::any& user_token() noexcept { return token_; }
  const std::any& user_token() const noexcept { return token_; }
  // True when the last operation completed inline (no SQE, no syscall, no suspension).
  bool completed_synchronously() const noexcept { return sync_; }
  socket_operation last_operation() const noexcept { return last_op_; }
  // An operation using these args is pending.
  bool in_use() const noexcept { return in_use_; }

  // ---- internal: used by the start routines and the views ----
  void set_completion(completion_fn fn, void* target) noexcept {
    on_complete_ = fn;
    target_ = target;
  }
  void set_completion_target(void* target) noexcept { target_ = target; }
  // Called instead of the completion when the context is destroyed with the operation pending:
  // release what the view holds, resume and raise nothing.
  void set_abandon(completion_fn fn) noexcept { on_abandon_ = fn; }
  // Misuse check and reset for a new operation (throws args_in_use_error).
  detail::io_request& begin(socket_operation op, const char* what);
  // Inline completion: the result is in request().res_.
  void complete_inline() noexcept;
  detail::io_request& request() noexcept { return req_; }
  msghdr& message() noexcept { return msg_; }
  iovec& io_vector() noexcept { return iov_; }
  endpoint& remote() noexcept { return remote_; }

 private:
  friend class socket;  // the start routines mark the args in use once armed
  static void on_done(detail::io_request* r) noexcept;
  void take_result() noexcept;
  static void resume(socket_args& a, void* target) noexcept;

  detail::io_request req_;
  std::span<std::byte> buffer_{};
  std::size_t transferred_ = 0;
  socket accept_socket_;
  mutable endpoint remote_;
  mutable bool remote_from_peer_ = false;  // fetch the accepted peer's address lazily
  std::any token_;
  std::error_code error_;
  msghdr msg_{};
  iovec iov_{};
  completion_fn on_complete_ = &socket_args::resume;
  completion_fn on_abandon_ = nullptr;
  void* target_ = nullptr;
  socket_operation last_op_ = socket_operation::none;
  bool in_use_ = false;
  bool sync_ = false;
};

// The name the accept case goes by in the README.
using accept_args = socket_args;

}  // namespace ringsock
