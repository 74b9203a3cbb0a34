// socket: an RAII, move-only socket of one io_context, and its awaitable operations.
//
// Every operation comes in three forms (README, "Errors, cancellation, ownership"):
//  - plain:      co_await s.receive_async(buf)            -> the value, or throws socket_error;
//  - as_result:  co_await as_result(s.receive_async(buf)) -> {error_code, value}, never throws;
//  - args:       co_await s.receive_async(args)           -> std::error_code (also args.error()),
//                never throws for I/O outcomes; the result is in the args object.
// Misuse (closed socket, not listening, args in use, empty receive buffer) throws at the call,
// before anything is submitted. End of stream is a value: 0 bytes. Each operation's contract
// block is beside it below.
//
// Buffers: the caller owns them and keeps them alive until the co_await returns; the kernel does
// not touch them after that, also on cancellation and timeout.
// Threads: a socket and its operations belong to the thread of its io_context.
// Cancellation: every operation takes io_options {timeout, stop}; a cancelled operation completes
// with std::errc::operation_canceled, a timed-out one with std::errc::timed_out. close() and the
// destructor cancel every pending operation of the socket (they complete once, with
// operation_canceled). Moving a socket keeps its pending operations: they go on, on the moved-to
// object. An operation never refers to the socket object itself (see detail/socket_core.hpp).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <coroutine>
#include <cstddef>
#include <span>
#include <system_error>
#include <utility>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/socket_core.hpp"
#include "ringsock/endpoint.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/io_options.hpp"
#include "ringsock/task.hpp"

namespace ringsock {

enum class socket_type : int { stream = SOCK_STREAM, datagram = SOCK_DGRAM };
enum class protocol : int { default_protocol = 0, tcp = IPPROTO_TCP, udp = IPPROTO_UDP };
enum class shutdown_how : int { receive = SHUT_RD, send = SHUT_WR, both = SHUT_RDWR };

class socket;
class socket_args;

namespace detail {
template <class Op>
class op_awaiter;
class accept_awaiter;
class args_awaiter;
struct connect_op;
struct receive_op;
struct receive_borrowed_op;
struct send_op;
struct send_all_op;
struct send_to_op;
struct receive_from_op;
}  // namespace detail

class socket {
 public:
  static constexpr std::size_t default_accept_queue = 64;
  static constexpr std::size_t max_accept_queue = std::size_t{1} << 24;

  // A closed socket.
  socket() noexcept = default;
  // Opens a socket (CLOEXEC). Throws socket_error.
  socket(io_context& ctx, address_family family, socket_type type = socket_type::stream,
         protocol proto = protocol::default_protocol);
  // Adopts an open descriptor (it should be CLOEXEC). Out of memory terminates.
  socket(io_context& ctx, int fd) noexcept;
  // The moved-from socket is closed; pending operations stay with the new object.
  socket(socket&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  socket& operator=(socket&& o) noexcept;
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  ~socket();

  // A listening socket bound to `ep` with SO_REUSEADDR set (port 0 picks a free port; read it
  // back with local_endpoint()). Throws socket_error.
  static socket listen(io_context& ctx, const endpoint& ep, int backlog = SOMAXCONN);
  // Opens a socket of ep's family and connects it. Throws socket_error (connection_refused ...).
  static task<socket> connect_async(io_context& ctx, endpoint ep, io_options o = {});

  void bind(const endpoint& ep);
  // listen and shutdown throw std::logic_error on a hand-off runtime's fed listener (its socket
  // is the accepting thread's: they would change it for every thread).
  void listen(int backlog = SOMAXCONN);
  endpoint local_endpoint() const;
  endpoint remote_endpoint() const;
  void shutdown(shutdown_how how);
  // Idempotent. Pending operations complete once with operation_canceled on a following loop
  // turn; a listener refuses new connections at once and closes the ones it had queued. The
  // descriptor number is released only after the kernel is done with it.
  void close() noexcept;

  // Options (throw socket_error).
  void set_no_delay(bool on);
  bool no_delay() const;
  void set_reuse_address(bool on);
  void set_reuse_port(bool on);
  void set_keep_alive(bool on);
  bool keep_alive() const;
  void set_receive_buffer_size(int bytes);
  int receive_buffer_size() const;
  void set_send_buffer_size(int bytes);
  int send_buffer_size() const;
  void set_option(int level, int name, int value);
  int get_option(int level, int name) const;
  // How many accepted connections may wait for accept_async (default 64, at most
  // max_accept_queue: more throws std::invalid_argument). Listeners only.
  void set_accept_queue_capacity(std::size_t n);
  // Connections accepted and waiting for an accept_async.
  std::size_t accept_queue_size() const noexcept;
  // Bytes a stream socket's multishot receive already took from the kernel and no receive has
  // taken yet: while it is > 0 (and no receive waits) a receive_async completes inline.
  std::size_t queued_bytes() const noexcept;
  // Bytes a receive could take now: queued_bytes() plus what the kernel holds (FIONREAD).
  // Throws socket_error (socket_closed_error when closed).
  std::size_t available() const;

  int native_handle() const noexcept { return core_ ? core_->fd : -1; }
  bool is_open() const noexcept { return core_ && core_->fd >= 0; }
  bool is_listening() const noexcept { return core_ && core_->listener; }
  // Throws socket_closed_error for a default-constructed socket, or one whose context is gone.
  io_context& context() const;

  // ---- awaitable operations ----
  //
  // Each has one contract block; the fields every block leaves out are the same for all:
  //   thread    the context's thread; completion resumes the awaiting coroutine there
  //   cancel    o.stop, o.timeout and close() end it once with operation_canceled / timed_out
  //   misuse    a closed socket throws socket_closed_error at the call (plain form) or at the
  //             co_await (args form), before anything is submitted; args in use throw
  //             args_in_use_error
  //   forms     plain (buffers as arguments): the value, or throws socket_error;
  //             as_result(plain) (result.hpp): io_result<T> / std::error_code, never throws;
  //             args (socket_args&): std::error_code (also args.error()), never throws for I/O
  //             outcomes, results in the args; misuse throws in every form

  // accept_async: the next connection of this listener.
  //   returns   plain: the connected socket; args: args.accept_socket() (and with
  //             args.set_buffer(), its first block of data, args.bytes_transferred() bytes)
  //   inline    no SQE, no system call, no suspension when a connection is already queued
  //   errors    plain: resource errors (EMFILE, ENFILE, ENOBUFS ...) are not reported: the
  //             listener backs off and the accept keeps waiting; args: reported (the listener
  //             still backs off by itself), is_fatal(ec) tells an accept loop to stop;
  //             operation_canceled once the listener is closed
  //   misuse    not_listening_error
  //   buffers   args: the buffer is the kernel's until the co_await returns
  detail::accept_awaiter accept_async(io_options o = {});
  detail::args_awaiter accept_async(socket_args& args, io_options o = {});

  // connect_async: connects to `ep` (args: to args.remote_endpoint()).
  //   returns   plain: void; args: the error_code only
  //   errors    connection_refused, network_unreachable, timed_out ...
  //   misuse    args: std::invalid_argument when args.remote_endpoint() is not set
  //   buffers   the endpoint is copied at the call
  detail::op_awaiter<detail::connect_op> connect_async(const endpoint& ep, io_options o = {});
  detail::args_awaiter connect_async(socket_args& args, io_options o = {});

  // receive_async: what has arrived, up to buf.size() (args: args.buffer()) bytes.
  //   returns   bytes received (args: args.bytes_transferred()); 0 = end of stream
  //   errors    connection_reset, not_connected, no_buffer_space ...
  //   misuse    std::invalid_argument for an empty buffer (0 bytes means end of stream)
  //   buffers   the caller's; the kernel writes into it until the co_await returns, never after
  detail::op_awaiter<detail::receive_op> receive_async(std::span<std::byte> buf, io_options o = {});
  detail::args_awaiter receive_async(socket_args& args, io_options o = {});

  // receive_borrowed_async: the next bytes received, lent from the context's buffer ring: no
  // copy, and no buffer of the caller's own (a server needs none per connection).
  //   returns   plain: a received_buffer holding the bytes of one arrival (at most
  //             params::receive_buffer_size), empty at the end of stream; args: args.borrowed(),
  //             and args.bytes_transferred() its size
  //   inline    no SQE, no system call, no suspension when bytes are queued
  //   errors    as receive_async
  //   order     shares the socket's FIFO with receive_async: started order is completion order
  //   misuse    std::invalid_argument at the co_await on a socket that is not a stream, or on a
  //             context without a buffer ring (features().buffer_ring false)
  //   buffers   the handle holds one of the ring's buffers (or part of it) until it is
  //             destroyed or reset(); release it on the context's thread, before the context
  detail::op_awaiter<detail::receive_borrowed_op> receive_borrowed_async(io_options o = {});
  detail::args_awaiter receive_borrowed_async(socket_args& args, io_options o = {});

  // send_async: one send of buf (args: args.buffer()); it may be short.
  //   returns   bytes sent (args: args.bytes_transferred())
  //   errors    broken_pipe (MSG_NOSIGNAL: never SIGPIPE), connection_reset ...
  //   buffers   read by the kernel until the co_await returns (also zero-copy: at least
  //             io_context::params::send_zc_threshold bytes, where features().send_zc)
  detail::op_awaiter<detail::send_op> send_async(std::span<const std::byte> buf, io_options o = {});
  detail::args_awaiter send_async(socket_args& args, io_options o = {});

  // send_all_async: sends until everything went out (one send per round, each short send arms
  // the rest without resuming the caller).
  //   returns   buf.size(); an empty buffer completes inline with 0
  //   errors    as send_async; the bytes that went out before the error: io_result::value of
  //             as_result, args.bytes_transferred() of the args form
  //   cancel    the timeout applies to each round; close() stops it before the next round
  //   buffers   read by the kernel until the co_await returns (zero-copy: as send_async)
  detail::op_awaiter<detail::send_all_op> send_all_async(std::span<const std::byte> buf,
                                                         io_options o = {});
  detail::args_awaiter send_all_async(socket_args& args, io_options o = {});

  // send_to_async: one datagram to `to` (args: args.buffer() to args.remote_endpoint()).
  //   returns   bytes sent
  //   errors    message_size (too large), network_unreachable, permission_denied ...
  //   misuse    args: std::invalid_argument when args.remote_endpoint() is not set
  //   buffers   read by the kernel until the co_await returns; `to` is copied at the call
  detail::op_awaiter<detail::send_to_op> send_to_async(std::span<const std::byte> buf,
                                                       const endpoint& to, io_options o = {});
  detail::args_awaiter send_to_async(socket_args& args, io_options o = {});

  // receive_from_async: one datagram and its sender.
  //   returns   bytes received (a datagram longer than the buffer is truncated to it); the
  //             sender in `from` (args: args.remote_endpoint())
  //   errors    connection_refused (an ICMP error of an earlier send) ...
  //   misuse    std::invalid_argument for an empty buffer
  //   buffers   the buffer and `from` are written until the co_await returns, never after
  detail::op_awaiter<detail::receive_from_op> receive_from_async(std::span<std::byte> buf,
                                                                 endpoint& from,
                                                                 io_options o = {});
  detail::args_awaiter receive_from_async(socket_args& args, io_options o = {});

 private:
  friend struct detail::access;
  void release() noexcept;  // lets go of the core (after close)

  detail::socket_core* core_ = nullptr;
};

inline detail::socket_core* detail::access::core(const socket& s) noexcept { return s.core_; }

}  // namespace ringsock

#include "ringsock/detail/socket_awaiters.hpp"
