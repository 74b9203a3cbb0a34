// The event-args pattern (XAsync(SocketAsyncEventArgs&)): each starts the same core operation as
// the coroutine args form, and its completion raises Completed (see tests/COMPAT_BEHAVIOURS.md).
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "message_flags.hpp"
#include "ringsock/compat/socket.hpp"
#include "ringsock/compat/socket_async_event_args.hpp"
#include "wrap_endpoint.hpp"

namespace ringsock::compat {


// The pointer overloads: a disposed socket is reported before a null e (behaviour 6 of tests/COMPAT_BEHAVIOURS.md).
SocketAsyncEventArgs& Socket::deref(SocketAsyncEventArgs* e) const {
  check_disposed();
  if (!e) throw ArgumentNullException("e");
  return *e;
}

namespace {
void check_reusable(const SocketAsyncEventArgs& e) {
  e.check_idle();
  if (e.disposed())
    throw ObjectDisposedException("System.Net.Sockets.SocketAsyncEventArgs",
                                  "The SocketAsyncEventArgs was disposed.");
}
}  // namespace

int Socket::fails_at_once(bool receive) const noexcept {
  if (connected_ || type_ != compat::SocketType::Stream) return 0;
  char peek;
  const int fd = sock_.native_handle();
  const ssize_t r = receive ? ::recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT)
                            : ::send(fd, nullptr, 0, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (r >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return errno;
}

bool Socket::start(SocketAsyncEventArgs& e, SocketAsyncOperation op, core_start fn) {
  // First: a refusal must leave e as it was.
  const bool receive = op == SocketAsyncOperation::Receive, send = op == SocketAsyncOperation::Send;
  int flags = 0;
  if (e.flags_ != compat::SocketFlags::None) {
    if (op == SocketAsyncOperation::SendTo || op == SocketAsyncOperation::ReceiveFrom)
      throw NotSupportedException("SendToAsync/ReceiveFromAsync with SocketFlags other than None are not supported here.");
    // Accept, connect, disconnect: .NET ignores the flags, and so does this.
    if (receive || send) flags = message_flags(e.flags_, receive);
    if (flags > 0 && e.BufferList())
      throw NotSupportedException("SocketFlags with a BufferList are not supported here.");
    if (flags < 0) {  // .NET 10 here: completes synchronously with OperationNotSupported
      e.connect_send_ = SocketAsyncEventArgs::connect_send::none;
      e.last_op_ = op;
      e.bytes_ = 0;
      e.error_ = SocketError::OperationNotSupported;
      e.flags_ = compat::SocketFlags::None;
      return false;
    }
  }
  // .NET makes the system call at once: on a stream socket this object does not know connected
  // (never connected, connected behind its back through the handle, or still connecting) the
  // kernel says what that call would meet; a hard error (TCP: ENOTCONN / EPIPE; Unix: EINVAL /
  // ENOTCONN) completes synchronously, as there.
  if (receive || send) {
    if (const int err = fails_at_once(receive)) {
      e.connect_send_ = SocketAsyncEventArgs::connect_send::none;
      e.last_op_ = op;
      e.bytes_ = 0;
      e.error_ = ToSocketError(err);
      return false;
    }
  }
  e.args_.set_message_flags(flags);
  // Only ConnectAsync (which set it just before) carries a send stage.
  if (op != SocketAsyncOperation::Connect) e.connect_send_ = SocketAsyncEventArgs::connect_send::none;
  e.last_op_ = op;
  e.bytes_ = 0;
  e.error_ = SocketError::Success;
  e.sender_ = this;
  e.sender_hold_ = weak_from_this().lock();
  e.in_use_ = true;
  bool done = false;
  try {
    done = fn(sock_, e.args_, {});
  } catch (...) {
    e.in_use_ = false;
    e.sender_hold_.reset();
    throw;
  }
  if (done) {
    take_results(e);
    e.in_use_ = false;
    e.sender_hold_.reset();
    return false;
  }
  op_started();
  // Only now, so that a start that threw cannot have touched a pending operation's state.
  detail::access::set_completion(e.args_, &SocketAsyncEventArgs::on_complete, &e);
  detail::access::set_abandon(e.args_, &SocketAsyncEventArgs::on_abandon);
  return true;
}

// The core result, into .NET's properties. Runs on the context's thread.
void Socket::take_results(SocketAsyncEventArgs& e) {
  ringsock::socket_args& a = e.args_;
  e.bytes_ = static_cast<int>(a.bytes_transferred());
  e.error_ = ToSocketError(a.error());
  e.flags_ = compat::SocketFlags::None;  // .NET 10 here: what the operation reported (none here)
  const bool ok = !a.error();
  switch (e.last_op_) {
    case SocketAsyncOperation::Accept:
      if (ok) e.accept_socket_ = take_accepted(a, std::move(e.accept_socket_));
      break;
    case SocketAsyncOperation::Connect:
      if (e.connect_send_ != SocketAsyncEventArgs::connect_send::none) {  // the send's result
        if (e.connect_send_ == SocketAsyncEventArgs::connect_send::aborted) {
          e.error_ = SocketError::OperationAborted;
          e.bytes_ = 0;
        }
        break;
      }
      after_connect(ok);
      if (ok) e.connect_socket_ = weak_from_this().lock();
      break;
    case SocketAsyncOperation::SendTo:
      after_send_to(ok);
      break;
    case SocketAsyncOperation::ReceiveFrom:
      if (ok) {
        if (e.remote_ && e.remote_.use_count() == 1)
          *e.remote_ = EndPoint(a.remote_endpoint());  // no allocation in a receive loop
        else
          e.remote_ = wrap(a.remote_endpoint());
      }
      break;
    default:
      break;
  }
}

// The connect of a ConnectAsync with a buffer succeeded: send the buffer. True when that send is
// pending (Completed is raised when it completes); false when it completed inline (the caller
// then reports it at once).
bool Socket::send_connect_buffer(SocketAsyncEventArgs& e) noexcept {
  e.connect_send_ = SocketAsyncEventArgs::connect_send::sending;
  if (!disposed_ && sock_.is_open()) {
    after_connect(true);
    e.connect_socket_ = weak_from_this().lock();
    try {
      return !detail::start_args<detail::send_all_op>(sock_, e.args_, {});
    } catch (...) {
    }
  }
  e.connect_send_ = SocketAsyncEventArgs::connect_send::aborted;  // nothing went out
  return false;
}

std::shared_ptr<Socket> Socket::take_accepted(ringsock::socket_args& a,
                                              std::shared_ptr<Socket> into) {
  ringsock::socket s = std::move(a.accept_socket());
  if (into) {  // the connection goes into the given object (its own unused fd is closed)
    into->sock_ = std::move(s);
    into->bound_ = into->connected_ = true;
    into->disconnected_ = false;
    into->disposed_ = false;
    return into;
  }
  return std::make_shared<Socket>(*ctx_, family_, type_, protocol_, std::move(s));
}

void SocketAsyncEventArgs::on_complete(ringsock::socket_args&, void* target) noexcept {
  auto& e = *static_cast<SocketAsyncEventArgs*>(target);
  Socket& sender = *e.sender_;
  if (e.connect_send_ == connect_send::due) {
    if (!e.args_.error() && sender.send_connect_buffer(e)) return;  // Completed after the send
    if (e.connect_send_ == connect_send::due) e.connect_send_ = connect_send::none;  // it failed
  }
  std::shared_ptr<Socket> hold = std::move(e.sender_hold_);
  sender.op_ended();
  sender.take_results(e);
  e.in_use_ = false;  // a handler may start the next operation on e at once
  e.Completed(sender, e);
}

void SocketAsyncEventArgs::on_abandon(ringsock::socket_args&, void* target) noexcept {
  auto& e = *static_cast<SocketAsyncEventArgs*>(target);
  e.in_use_ = false;
  e.connect_send_ = connect_send::none;
  e.error_ = compat::SocketError::OperationAborted;
  e.sender_->op_ended();
  e.sender_hold_.reset();
}

bool Socket::AcceptAsync(SocketAsyncEventArgs* e) { return AcceptAsync(deref(e)); }

bool Socket::AcceptAsync(SocketAsyncEventArgs& e) {
  // Behaviour 6 of tests/COMPAT_BEHAVIOURS.md: this order, all before anything is submitted.
  check_disposed();
  if (e.BufferList())
    throw ArgumentException("Multiple buffers cannot be used with this method.", "e");
  if (!bound_)
    throw InvalidOperationException("You must call the Bind method before performing this operation.");
  if (!listening_)
    throw InvalidOperationException("You must call the Listen method before performing this operation.");
  check_reusable(e);
  std::span<std::byte> first{};
  if (e.Buffer().data()) {
    const int reserve = reserved_address_space();
    if (e.Count() < reserve)
      throw ArgumentException("The buffer is too small: AcceptEx needs " + std::to_string(reserve) +
                                  " bytes at its end for the addresses.",
                              "Count");
    first = e.Buffer().subspan(static_cast<std::size_t>(e.Offset()),
                               static_cast<std::size_t>(e.Count() - reserve));
  }
  if (const auto& into = e.AcceptSocket(); into && into->disconnected_ && !into->reusable_)
    throw SocketException(SocketError::InvalidArgument);  // .NET 10 here: its descriptor is gone
  if (const auto& into = e.AcceptSocket(); into && (into->bound_ || into->connected_))
    throw InvalidOperationException("The AcceptSocket must be neither bound nor connected.");
  e.args_.set_buffer(first);
  return start(e, SocketAsyncOperation::Accept, &detail::start_args<detail::accept_op>);
}

bool Socket::ConnectAsync(SocketAsyncEventArgs* e) { return ConnectAsync(deref(e)); }

bool Socket::ConnectAsync(SocketAsyncEventArgs& e) {
  if (disconnected_ && !reusable_ && !disposed_) {
    // .NET 10 here: a socket disconnected without reuse reports IsConnected, completing at once.
    check_reusable(e);
    e.last_op_ = SocketAsyncOperation::Connect;
    e.bytes_ = 0;
    e.error_ = SocketError::IsConnected;
    return false;
  }
  check_disposed();
  if (e.BufferList())  // .NET: ConnectAsync_BufferList_Throws_Argument, before the endpoint
    throw ArgumentException("Multiple buffers cannot be used with this method.", "BufferList");
  if (!e.RemoteEndPoint()) throw ArgumentNullException("remoteEP");
  if (listening_) throw InvalidOperationException("The socket is listening; it cannot connect.");
  if (e.RemoteEndPoint()->AddressFamily() != family_)  // .NET: ConnectAsync_AddressFamily_Throws_NotSupported
    throw NotSupportedException("The AddressFamily of the RemoteEndPoint is not valid for this socket.");
  check_reusable(e);
  e.args_.set_remote_endpoint(e.RemoteEndPoint()->native());
  // .NET sends the buffer once connected (ConnectEx's send buffer); BytesTransferred counts it.
  e.args_.set_buffer(e.window());
  e.connect_send_ = e.Count() > 0 ? SocketAsyncEventArgs::connect_send::due
                                  : SocketAsyncEventArgs::connect_send::none;
  return start(e, SocketAsyncOperation::Connect, &detail::start_args<detail::connect_op>);
}

void Socket::check_window(const SocketAsyncEventArgs& e, const char* what) const {
  if (e.BufferList())
    throw NotSupportedException(std::string(what) + ": BufferList is not supported here; use SetBuffer.");
}

bool Socket::ReceiveAsync(SocketAsyncEventArgs* e) { return ReceiveAsync(deref(e)); }

bool Socket::ReceiveAsync(SocketAsyncEventArgs& e) {
  check_disposed();
  check_reusable(e);
  const bool list = e.BufferList() != nullptr;
  if (list)
    e.args_.set_buffer_list(e.iov_);
  else
    e.args_.set_buffer(e.window());
  if (list ? e.list_bytes() == 0 : e.Count() == 0) {
    // .NET's zero-byte receive: completes (0 bytes) once data is there, taking none of it.
    if (type_ != compat::SocketType::Stream)
      throw NotSupportedException("ReceiveAsync: zero-byte receives need a stream socket.");
    return start(e, SocketAsyncOperation::Receive, &detail::start_readiness);
  }
  return start(e, SocketAsyncOperation::Receive, &detail::start_args<detail::receive_op>);
}

bool Socket::SendAsync(SocketAsyncEventArgs* e) { return SendAsync(deref(e)); }

bool Socket::SendAsync(SocketAsyncEventArgs& e) {
  check_disposed();
  check_reusable(e);
  if (e.BufferList())
    e.args_.set_buffer_list(e.iov_);
  else
    e.args_.set_buffer(e.window());
  // .NET completes a stream send when every byte went out.
  return start(e, SocketAsyncOperation::Send,
               type_ == compat::SocketType::Stream ? &detail::start_args<detail::send_all_op>
                                                   : &detail::start_args<detail::send_op>);
}

bool Socket::DisconnectAsync(SocketAsyncEventArgs* e) { return DisconnectAsync(deref(e)); }

bool Socket::DisconnectAsync(SocketAsyncEventArgs& e) {
  check_disposed();
  check_reusable(e);
  // shutdown(2) and close(2) do not wait, so this completes synchronously, as on .NET 10 here;
  // unconnected, .NET 10 here throws (after recording the operation).
  e.last_op_ = SocketAsyncOperation::Disconnect;
  if (!connected_) throw SocketException(SocketError::NotConnected, ENOTCONN);
  e.bytes_ = 0;
  e.error_ = SocketError::Success;
  disconnect_now(e.DisconnectReuseSocket());
  return false;
}

bool Socket::ReceiveFromAsync(SocketAsyncEventArgs* e) { return ReceiveFromAsync(deref(e)); }

bool Socket::ReceiveFromAsync(SocketAsyncEventArgs& e) {
  check_disposed();
  if (!e.RemoteEndPoint()) throw ArgumentNullException("RemoteEndPoint");
  if (e.RemoteEndPoint()->AddressFamily() != family_)  // .NET: ReceiveFromAsync_AddressFamily_Throws_Argument
    throw ArgumentException("The AddressFamily of the RemoteEndPoint does not match the socket's.",
                            "RemoteEndPoint");
  check_reusable(e);
  check_window(e, "ReceiveFromAsync");
  if (e.Count() == 0)
    throw NotSupportedException("ReceiveFromAsync: zero-byte receives are not supported.");
  e.args_.set_buffer(e.window());
  return start(e, SocketAsyncOperation::ReceiveFrom, &detail::start_args<detail::receive_from_op>);
}

bool Socket::SendToAsync(SocketAsyncEventArgs* e) { return SendToAsync(deref(e)); }

bool Socket::SendToAsync(SocketAsyncEventArgs& e) {
  check_disposed();
  if (!e.RemoteEndPoint()) throw ArgumentNullException("RemoteEndPoint");
  check_reusable(e);
  check_window(e, "SendToAsync");
  e.args_.set_buffer(e.window());
  e.args_.set_remote_endpoint(e.RemoteEndPoint()->native());
  return start(e, SocketAsyncOperation::SendTo, &detail::start_args<detail::send_to_op>);
}

}  // namespace ringsock::compat
