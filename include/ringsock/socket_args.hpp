// socket_args: a reusable, non-copyable operation context, the C++ shape of .NET's
// SocketAsyncEventArgs. It embeds the operation's state, so an args-form operation allocates
// nothing; it must stay alive (and must not move) while an operation using it is pending.
#pragma once

#include <any>
#include <cstddef>
#include <span>
#include <system_error>
#include <variant>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/socket_ops.hpp"
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
  socket_args() noexcept;
  // Aborts with a message when an operation using these args is still pending: the kernel
  // still owns the memory of its request (let it complete, or close the socket and let the
  // cancellation complete, first).
  ~socket_args();
  socket_args(const socket_args&) = delete;
  socket_args& operator=(const socket_args&) = delete;

  // The buffer of receive/send operations, and of accept's first receive. The caller owns the
  // memory. Throws args_in_use_error while an operation is pending.
  void set_buffer(std::span<std::byte> buf);
  std::span<std::byte> buffer() const noexcept { return buffer_; }
  // Scatter/gather instead of one buffer, for receive, send and send_all (.NET's BufferList):
  // a receive fills the segments in order, a send sends them in order (a datagram socket as one
  // datagram). The caller owns the array and the memory it points to; both must outlive the
  // operation. Setting one clears the other; an empty span clears the list. Other operations
  // throw std::invalid_argument while a list is set. Throws args_in_use_error while an
  // operation is pending.
  void set_buffer_list(std::span<const iovec> segments);
  std::span<const iovec> buffer_list() const noexcept { return segments_; }
  // recv(2)/send(2) flags of the receives (MSG_PEEK: copies the bytes and leaves them queued; it
  // completes inline only when the queue fills its buffer; MSG_OOB: the out-of-band byte) or
  // sends (MSG_OOB, MSG_DONTROUTE) started with these args, with one buffer, until set again.
  // Other flags, or flags with a buffer list or another operation, throw std::invalid_argument
  // when the operation starts. Throws args_in_use_error while an operation is pending.
  void set_message_flags(int flags);
  int message_flags() const noexcept { return msg_flags_; }
  // Bytes moved by the last operation (accept: bytes of the first receive).
  std::size_t bytes_transferred() const noexcept { return transferred_; }
  // accept: the new connection (move it out); empty after a failed accept.
  socket& accept_socket() noexcept { return accept_socket_; }
  // receive_borrowed: the bytes lent from the buffer ring (move them out, or they go back to
  // the ring when the next operation starts or the args die); empty at the end of stream.
  received_buffer& borrowed() noexcept { return borrowed_; }
  // accept: the peer's address (read from the kernel on first use); connect/send_to: the
  // destination, set before the call; receive_from: the sender.
  const endpoint& remote_endpoint() const;
  void set_remote_endpoint(const endpoint& ep);
  // The outcome of the last operation: empty on success.
  std::error_code error() const noexcept { return error_; }
  // Anything the caller wants to carry along; never touched by the library.
  std::any& user_token() noexcept { return token_; }
  const std::any& user_token() const noexcept { return token_; }
  // True when the last operation completed inline (no SQE, no syscall, no suspension).
  bool completed_synchronously() const noexcept { return sync_; }
  socket_operation last_operation() const noexcept { return last_op_; }
  // An operation using these args is pending.
  bool in_use() const noexcept { return in_use_; }

 private:
  friend struct detail::access;
  template <class Op>
  friend bool detail::start_args(socket& s, socket_args& a, const io_options& o);
  template <class Op>
  friend bool detail::start_args_with(socket& s, socket_args& a, Op op, const io_options& o);
  using operation_state =
      std::variant<std::monostate, detail::accept_op, detail::connect_op, detail::receive_op,
                   detail::receive_borrowed_op, detail::send_op, detail::send_all_op, detail::send_to_op,
                   detail::receive_from_op, detail::send_vec_op, detail::send_all_vec_op>;

  // Misuse check and reset for a new operation (throws args_in_use_error).
  void prepare(socket_operation op, const char* what);
  // The request's outcome, into the public fields (one overload per operation).
  void take_result() noexcept;
  template <class Op>
  void store(const Op& op) noexcept;
  void store(const std::monostate&) noexcept {}
  void store(const detail::connect_op& op) noexcept;
  void store(const detail::send_all_op& op) noexcept { store_sent(op.sent); }
  void store(const detail::send_all_vec_op& op) noexcept { store_sent(op.sent); }
  void store_sent(std::size_t sent) noexcept;
  void store(const detail::accept_op& op) noexcept;
  void store(const detail::receive_borrowed_op& op) noexcept;
  static void on_complete(detail::io_request* r) noexcept;
  static void resume(socket_args& a, void* target) noexcept;
  using completion_fn = detail::access::args_completion_fn;

  detail::io_request req_;
  operation_state op_;
  std::span<std::byte> buffer_{};
  std::span<const iovec> segments_{};
  int msg_flags_ = 0;
  std::size_t transferred_ = 0;
  socket accept_socket_;
  received_buffer borrowed_;
  mutable endpoint remote_;
  mutable bool remote_from_peer_ = false;  // fetch the accepted peer's address lazily
  std::any token_;
  std::error_code error_;
  completion_fn completion_ = &socket_args::resume;
  completion_fn on_abandon_ = nullptr;
  void* target_ = nullptr;
  socket_operation last_op_ = socket_operation::none;
  bool in_use_ = false;
  bool sync_ = false;
};

inline void detail::access::set_completion(socket_args& a, args_completion_fn fn,
                                           void* target) noexcept {
  a.completion_ = fn ? fn : &socket_args::resume;
  a.target_ = target;
}
inline void detail::access::set_completion_target(socket_args& a, void* target) noexcept {
  a.target_ = target;
}
inline void detail::access::set_abandon(socket_args& a, args_completion_fn fn) noexcept {
  a.on_abandon_ = fn;
}

// The name the accept case goes by in the README.
using accept_args = socket_args;

}  // namespace ringsock
