// The Begin/End pattern: each BeginX starts the same core operation as XAsync(e), with an
// AsyncResult holding its state; EndX waits for it (driving the loop on the owning thread) and
// returns the result or throws SocketException.
#include <cerrno>
#include <string>

#include "async_result.hpp"
#include "message_flags.hpp"
#include "wrap_endpoint.hpp"
#include "ringsock/compat/socket.hpp"

namespace ringsock::compat {

namespace {
void check_range(std::size_t size, int offset, int count, const char* count_name) {
  if (offset < 0 || static_cast<std::size_t>(offset) > size)
    throw ArgumentOutOfRangeException("offset", "The offset must lie within the buffer.");
  if (count < 0 || static_cast<std::size_t>(count) > size - static_cast<std::size_t>(offset))
    throw ArgumentOutOfRangeException(count_name, "The size must fit in the buffer after offset.");
}
}  // namespace

std::shared_ptr<IAsyncResult> Socket::start_apm(const std::shared_ptr<AsyncResult>& r, core_start fn) {
  r->self_ = r;
  r->owner_hold_ = weak_from_this().lock();
  bool done = false;
  try {
    done = fn(sock_, r->args_, {});
  } catch (...) {
    r->self_.reset();
    r->owner_hold_.reset();
    throw;
  }
  if (done) {
    r->complete(true);
    detail::access::defer(*ctx_, &AsyncResult::run_callback, r.get());  // never on the caller's stack
  } else {
    op_started();  // until complete() (or the abandon) reports it
    detail::access::set_completion(r->args_, &AsyncResult::on_core_complete, r.get());
    detail::access::set_abandon(r->args_, &AsyncResult::on_core_abandon);
  }
  return r;
}

std::shared_ptr<IAsyncResult> Socket::complete_apm_now(const std::shared_ptr<AsyncResult>& r,
                                                       SocketError error, int native) {
  r->self_ = r;
  r->owner_hold_ = weak_from_this().lock();
  r->error_ = error;
  r->native_ = native;
  r->sync_ = true;
  r->completed_.store(true, std::memory_order_release);
  r->AsyncWaitHandle().Set();
  detail::access::defer(*ctx_, &AsyncResult::run_callback, r.get());  // never on the caller's stack
  return r;
}

AsyncResult& Socket::wait_apm(const std::shared_ptr<IAsyncResult>& ar, SocketAsyncOperation op,
                         const char* name) {
  if (!ar) throw ArgumentNullException("asyncResult");
  auto* r = dynamic_cast<AsyncResult*>(ar.get());
  // Behaviour 14 of tests/COMPAT_BEHAVIOURS.md, the documented exceptions (.NET 10 itself is laxer here: its EndX
  // takes any result of the same type, again and again; the README lists the difference).
  if (!r || r->owner_ != this || r->op_ != op)
    throw ArgumentException(
        std::string("The IAsyncResult object was not returned from the corresponding "
                    "asynchronous method on this class (") + name + ").",
        "asyncResult");
  if (r->ended_.exchange(true))
    throw InvalidOperationException(std::string(name) +
                                    " can only be called once for each asynchronous operation.");
  r->AsyncWaitHandle().WaitOne();
  if (r->error_ != SocketError::Success) throw SocketException(r->error_, r->native_);
  return *r;
}

// ---- accept ----

std::shared_ptr<IAsyncResult> Socket::BeginAccept(AsyncCallback callback, std::any state) {
  return BeginAccept(nullptr, 0, std::move(callback), std::move(state));
}

std::shared_ptr<IAsyncResult> Socket::BeginAccept(int receiveSize, AsyncCallback callback,
                                                  std::any state) {
  return BeginAccept(nullptr, receiveSize, std::move(callback), std::move(state));
}

std::shared_ptr<IAsyncResult> Socket::BeginAccept(std::shared_ptr<Socket> acceptSocket,
                                                  int receiveSize, AsyncCallback callback,
                                                  std::any state) {
  check_disposed();
  if (!bound_)
    throw InvalidOperationException("You must call the Bind method before performing this operation.");
  if (!listening_)
    throw InvalidOperationException("You must call the Listen method before performing this operation.");
  if (receiveSize < 0)
    throw ArgumentOutOfRangeException("receiveSize", "The receive size must not be negative.");
  if (acceptSocket && (acceptSocket->bound_ || acceptSocket->connected_))
    throw InvalidOperationException("The acceptSocket must be neither bound nor connected.");
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::Accept, std::move(callback),
                                         std::move(state));
  r->accept_into_ = std::move(acceptSocket);
  if (receiveSize > 0) {
    r->accept_buffer_.resize(static_cast<std::size_t>(receiveSize));
    r->args_.set_buffer(r->accept_buffer_);
  }
  return start_apm(r, &detail::start_args<detail::accept_op>);
}

std::shared_ptr<Socket> Socket::EndAccept(const std::shared_ptr<IAsyncResult>& asyncResult) {
  return wait_apm(asyncResult, SocketAsyncOperation::Accept, "EndAccept").accepted_;
}

std::shared_ptr<Socket> Socket::EndAccept(std::vector<std::byte>& buffer, int& bytesTransferred,
                                          const std::shared_ptr<IAsyncResult>& asyncResult) {
  AsyncResult& r = wait_apm(asyncResult, SocketAsyncOperation::Accept, "EndAccept");
  bytesTransferred = r.bytes_;
  buffer.assign(r.accept_buffer_.begin(), r.accept_buffer_.begin() + r.bytes_);
  return r.accepted_;
}

// ---- connect ----

std::shared_ptr<IAsyncResult> Socket::BeginConnect(const EndPoint& remoteEP, AsyncCallback callback,
                                                   std::any state) {
  check_disposed();
  if (listening_) throw InvalidOperationException("The socket is listening; it cannot connect.");
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::Connect, std::move(callback),
                                         std::move(state));
  r->args_.set_remote_endpoint(remoteEP.native());
  return start_apm(r, &detail::start_args<detail::connect_op>);
}

void Socket::EndConnect(const std::shared_ptr<IAsyncResult>& asyncResult) {
  wait_apm(asyncResult, SocketAsyncOperation::Connect, "EndConnect");
}

// ---- receive / send ----

std::shared_ptr<IAsyncResult> Socket::BeginReceive(std::span<std::byte> buffer, int offset, int size,
                                                   SocketFlags socketFlags, AsyncCallback callback,
                                                   std::any state) {
  check_disposed();
  if (!buffer.data()) throw ArgumentNullException("buffer");  // .NET: before the range checks
  check_range(buffer.size(), offset, size, "size");
  const int flags = message_flags(socketFlags, true);
  if (size == 0 && type_ != compat::SocketType::Stream)
    throw NotSupportedException("BeginReceive: zero-byte receives need a stream socket.");
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::Receive, std::move(callback),
                                         std::move(state));
  if (flags < 0) return complete_apm_now(r, SocketError::OperationNotSupported, EOPNOTSUPP);
  if (const int err = fails_at_once(true)) return complete_apm_now(r, ToSocketError(err), err);
  r->args_.set_buffer(buffer.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(size)));
  r->args_.set_message_flags(flags);
  // A zero-byte receive completes (0 bytes) once data is there, taking none of it.
  return start_apm(r, size == 0 ? &detail::start_readiness : &detail::start_args<detail::receive_op>);
}

int Socket::EndReceive(const std::shared_ptr<IAsyncResult>& asyncResult) {
  return wait_apm(asyncResult, SocketAsyncOperation::Receive, "EndReceive").bytes_;
}

std::shared_ptr<IAsyncResult> Socket::BeginSend(std::span<const std::byte> buffer, int offset,
                                                int size, SocketFlags socketFlags, AsyncCallback callback,
                                                std::any state) {
  check_disposed();
  if (!buffer.data()) throw ArgumentNullException("buffer");  // .NET: before the range checks
  check_range(buffer.size(), offset, size, "size");
  const int flags = message_flags(socketFlags, false);
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::Send, std::move(callback),
                                         std::move(state));
  // The core's args take a mutable span; a send only reads it.
  if (flags < 0) return complete_apm_now(r, SocketError::OperationNotSupported, EOPNOTSUPP);
  if (const int err = fails_at_once(false)) return complete_apm_now(r, ToSocketError(err), err);
  r->args_.set_buffer({const_cast<std::byte*>(buffer.data()) + offset, static_cast<std::size_t>(size)});
  r->args_.set_message_flags(flags);
  return start_apm(r, type_ == compat::SocketType::Stream ? &detail::start_args<detail::send_all_op>
                                                       : &detail::start_args<detail::send_op>);
}

int Socket::EndSend(const std::shared_ptr<IAsyncResult>& asyncResult) {
  return wait_apm(asyncResult, SocketAsyncOperation::Send, "EndSend").bytes_;
}

// ---- receive / send of a list ----

namespace {
// The result of a BeginReceive/BeginSend of a list: flags None only, the list as iovecs.
std::shared_ptr<AsyncResult> list_result(Socket& s, SocketAsyncOperation op,
                                         const std::vector<std::span<std::byte>>* buffers,
                                         SocketFlags flags, AsyncCallback callback, std::any state,
                                         const char* what) {
  if (flags != SocketFlags::None)
    throw NotSupportedException(std::string(what) + ": SocketFlags with a list of buffers are not supported here.");
  if (!buffers) throw ArgumentNullException("buffers");
  if (buffers->empty()) throw ArgumentException("The parameter buffers must contain one or more elements.", "buffers");
  auto r = std::make_shared<AsyncResult>(s, op, std::move(callback), std::move(state));
  r->segments_.reserve(buffers->size());
  for (const auto& b : *buffers) r->segments_.push_back({b.data(), b.size()});
  r->args_.set_buffer_list(r->segments_);
  return r;
}
}  // namespace

std::shared_ptr<IAsyncResult> Socket::BeginReceive(const std::vector<std::span<std::byte>>* buffers,
                                                   SocketFlags socketFlags, AsyncCallback callback,
                                                   std::any state) {
  check_disposed();
  auto r = list_result(*this, SocketAsyncOperation::Receive, buffers, socketFlags, std::move(callback),
                       std::move(state), "BeginReceive");
  std::size_t total = 0;
  for (const iovec& v : r->segments_) total += v.iov_len;
  if (total == 0 && type_ != compat::SocketType::Stream)
    throw NotSupportedException("BeginReceive: zero-byte receives need a stream socket.");
  if (const int err = fails_at_once(true)) return complete_apm_now(r, ToSocketError(err), err);
  // total 0: a zero-byte receive, as BeginReceive with size 0
  return start_apm(r, total == 0 ? &detail::start_readiness : &detail::start_args<detail::receive_op>);
}

std::shared_ptr<IAsyncResult> Socket::BeginSend(const std::vector<std::span<std::byte>>* buffers,
                                                SocketFlags socketFlags, AsyncCallback callback,
                                                std::any state) {
  check_disposed();
  auto r = list_result(*this, SocketAsyncOperation::Send, buffers, socketFlags, std::move(callback),
                       std::move(state), "BeginSend");
  if (const int err = fails_at_once(false)) return complete_apm_now(r, ToSocketError(err), err);
  return start_apm(r, type_ == compat::SocketType::Stream ? &detail::start_args<detail::send_all_op>
                                                       : &detail::start_args<detail::send_op>);
}

// ---- send to / receive from ----

std::shared_ptr<IAsyncResult> Socket::BeginSendTo(std::span<const std::byte> buffer, int offset,
                                                  int size, SocketFlags socketFlags,
                                                  const std::shared_ptr<EndPoint>& remoteEP,
                                                  AsyncCallback callback, std::any state) {
  check_disposed();
  if (socketFlags != SocketFlags::None)
    throw NotSupportedException("BeginSendTo: SocketFlags other than None are not supported here.");
  if (!buffer.data()) throw ArgumentNullException("buffer");
  check_range(buffer.size(), offset, size, "size");
  if (!remoteEP) throw ArgumentNullException("remoteEP");
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::SendTo, std::move(callback),
                                         std::move(state));
  r->args_.set_buffer({const_cast<std::byte*>(buffer.data()) + offset, static_cast<std::size_t>(size)});
  r->args_.set_remote_endpoint(remoteEP->native());
  return start_apm(r, &detail::start_args<detail::send_to_op>);
}

std::shared_ptr<IAsyncResult> Socket::BeginSendTo(std::span<const std::byte> buffer, int offset,
                                                  int size, SocketFlags flags,
                                                  const EndPoint& remoteEP, AsyncCallback callback,
                                                  std::any state) {
  return BeginSendTo(buffer, offset, size, flags, std::make_shared<EndPoint>(remoteEP),
                     std::move(callback), std::move(state));
}

int Socket::EndSendTo(const std::shared_ptr<IAsyncResult>& asyncResult) {
  return wait_apm(asyncResult, SocketAsyncOperation::SendTo, "EndSendTo").bytes_;
}

std::shared_ptr<IAsyncResult> Socket::BeginReceiveFrom(std::span<std::byte> buffer, int offset,
                                                       int size, SocketFlags socketFlags,
                                                       std::shared_ptr<EndPoint>& remoteEP,
                                                       AsyncCallback callback, std::any state) {
  check_disposed();
  if (socketFlags != SocketFlags::None)
    throw NotSupportedException("BeginReceiveFrom: SocketFlags other than None are not supported here.");
  if (!buffer.data()) throw ArgumentNullException("buffer");
  check_range(buffer.size(), offset, size, "size");
  if (!remoteEP) throw ArgumentNullException("remoteEP");
  if (remoteEP->AddressFamily() != family_)
    throw ArgumentException("The supplied EndPoint is not valid for this Socket's AddressFamily.",
                            "remoteEP");
  if (!bound_)
    throw InvalidOperationException("You must call the Bind method before performing this operation.");
  if (size == 0) throw NotSupportedException("BeginReceiveFrom: zero-byte receives are not supported.");
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::ReceiveFrom,
                                         std::move(callback), std::move(state));
  r->args_.set_buffer(buffer.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(size)));
  return start_apm(r, &detail::start_args<detail::receive_from_op>);
}

int Socket::EndReceiveFrom(const std::shared_ptr<IAsyncResult>& asyncResult,
                           std::shared_ptr<EndPoint>& endPoint) {
  if (!endPoint) throw ArgumentNullException("endPoint");
  if (endPoint->AddressFamily() != family_)
    throw ArgumentException("The supplied EndPoint is not valid for this Socket's AddressFamily.",
                            "endPoint");
  AsyncResult& r = wait_apm(asyncResult, SocketAsyncOperation::ReceiveFrom, "EndReceiveFrom");
  endPoint = wrap(r.args_.remote_endpoint());
  return r.bytes_;
}

// ---- disconnect ----

std::shared_ptr<IAsyncResult> Socket::BeginDisconnect(bool reuseSocket, AsyncCallback callback,
                                                      std::any state) {
  check_disposed();
  if (!connected_) throw SocketException(SocketError::NotConnected, ENOTCONN);  // .NET 10 here
  auto r = std::make_shared<AsyncResult>(*this, SocketAsyncOperation::Disconnect,
                                         std::move(callback), std::move(state));
  // shutdown(2) and close(2) do not wait: it completes synchronously (as on .NET 10 here).
  disconnect_now(reuseSocket);
  return complete_apm_now(r, SocketError::Success, 0);
}

void Socket::EndDisconnect(const std::shared_ptr<IAsyncResult>& asyncResult) {
  wait_apm(asyncResult, SocketAsyncOperation::Disconnect, "EndDisconnect");
}

}  // namespace ringsock::compat
