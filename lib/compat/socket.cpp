#include "ringsock/compat/socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "ringsock/error.hpp"
#include "wrap_endpoint.hpp"

namespace ringsock::compat {

namespace {

address_family core_family(AddressFamily f) {
  switch (f) {
    case AddressFamily::InterNetwork: return address_family::ipv4;
    case AddressFamily::InterNetworkV6: return address_family::ipv6;
    case AddressFamily::Unix: return address_family::unix_domain;
    default: throw NotSupportedException("The address family is not supported by ringsock.");
  }
}

socket_type core_type(SocketType t) {
  if (t == SocketType::Stream) return socket_type::stream;
  if (t == SocketType::Dgram) return socket_type::datagram;
  throw NotSupportedException("The socket type is not supported by ringsock.");
}

[[noreturn]] void rethrow_as_socket_exception(const ringsock::socket_error& e) {
  throw SocketException(ToSocketError(e.code()), e.code().value());
}

}  // namespace

Socket::Socket(io_context& ctx, compat::AddressFamily family, compat::SocketType type,
               compat::ProtocolType protocol)
    : ctx_(&ctx), family_(family), type_(type), protocol_(protocol) {
  try {
    sock_ = ringsock::socket(ctx, core_family(family), core_type(type),
                             static_cast<ringsock::protocol>(static_cast<int>(protocol)));
  } catch (const ringsock::socket_error& e) {
    rethrow_as_socket_exception(e);
  }
}

Socket::Socket(io_context& ctx, compat::AddressFamily family, compat::SocketType type,
               compat::ProtocolType protocol, ringsock::socket&& connected)
    : ctx_(&ctx),
      sock_(std::move(connected)),
      family_(family),
      type_(type),
      protocol_(protocol),
      bound_(true),
      connected_(true) {}

Socket::~Socket() {
  if (unreported_ops_ != 0) {
    std::fprintf(stderr,
                 "ringsock::compat: a Socket was destroyed with %u operation(s) it started still "
                 "pending; their completions would reach freed memory. Create Sockets with "
                 "std::make_shared, or Dispose() and let the operations complete first.\n",
                 unreported_ops_);
    std::abort();
  }
}

void Socket::check_disposed() const {
  if (disposed_ || !sock_.is_open())
    throw ObjectDisposedException("System.Net.Sockets.Socket", "The socket was closed.");
}

bool Socket::NoDelay() const {
  check_disposed();
  return sock_.no_delay();
}

void Socket::NoDelay(bool on) {
  check_disposed();
  try {
    sock_.set_no_delay(on);
  } catch (const ringsock::socket_error& e) {
    rethrow_as_socket_exception(e);
  }
}

std::shared_ptr<EndPoint> Socket::LocalEndPoint() const {
  check_disposed();
  if (!bound_) return nullptr;
  return wrap(sock_.local_endpoint());
}

std::shared_ptr<EndPoint> Socket::RemoteEndPoint() const {
  check_disposed();
  if (!connected_) return nullptr;
  try {
    return wrap(sock_.remote_endpoint());
  } catch (const ringsock::socket_error&) {
    return nullptr;  // the peer is gone
  }
}

void Socket::Bind(const EndPoint& localEP) {
  check_disposed();
  try {
    sock_.bind(localEP.native());
  } catch (const ringsock::socket_error& e) {
    rethrow_as_socket_exception(e);
  }
  bound_ = true;
}

void Socket::Listen(int backlog) {
  check_disposed();
  try {
    sock_.listen(backlog);  // Linux binds an unbound socket to an ephemeral port here
  } catch (const ringsock::socket_error& e) {
    rethrow_as_socket_exception(e);
  }
  bound_ = listening_ = true;
}

void Socket::Connect(const EndPoint& remoteEP) {
  if (disconnected_ && !disposed_)  // .NET: a disconnected socket reconnects only asynchronously
    throw InvalidOperationException(
        "Once the socket has been disconnected, you can only reconnect again asynchronously, and "
        "only if Disconnect was called with reuseSocket set.");
  check_disposed();
  if (listening_) throw InvalidOperationException("The socket is listening; it cannot connect.");
  if (::connect(sock_.native_handle(), remoteEP.native().data(), remoteEP.native().size()) != 0) {
    int err = errno;
    throw SocketException(ToSocketError(err), err);
  }
  after_connect(true);
}

void Socket::after_connect(bool ok) {
  if (ok) {
    connected_ = bound_ = true;
    disconnected_ = false;
  }
}

void Socket::Shutdown(SocketShutdown how) {
  check_disposed();
  try {
    sock_.shutdown(static_cast<shutdown_how>(static_cast<int>(how)));
  } catch (const ringsock::socket_error& e) {
    rethrow_as_socket_exception(e);
  }
}

void Socket::disconnect_now(bool reuse) {
  if (connected_) ::shutdown(sock_.native_handle(), SHUT_RDWR);
  sock_.close();
  connected_ = bound_ = false;
  disconnected_ = true;
  reusable_ = reuse;
  if (reuse) sock_ = ringsock::socket(*ctx_, core_family(family_), core_type(type_));
}

void Socket::Disconnect(bool reuseSocket) {
  check_disposed();
  if (!connected_) throw SocketException(SocketError::NotConnected, ENOTCONN);
  disconnect_now(reuseSocket);
}

void Socket::Close() {
  // .NET aborts a connection disposed with an operation pending: the peer sees a reset, not an
  // end of stream (a zero linger makes close(2) send RST).
  if (unreported_ops_ > 0 && connected_ && type_ == compat::SocketType::Stream && sock_.is_open()) {
    const ::linger abort{1, 0};
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  disposed_ = true;
  connected_ = false;
  sock_.close();  // pending operations complete with OperationAborted on a later loop turn
}

int Socket::reserved_address_space() const noexcept {
  // AcceptEx keeps room for two addresses of (size + 16) bytes at the end of the window.
  switch (family_) {
    case compat::AddressFamily::InterNetworkV6: return 2 * (int(sizeof(sockaddr_in6)) + 16);
    case compat::AddressFamily::Unix: return 2 * (int(sizeof(sockaddr_un)) + 16);
    default: return 2 * (int(sizeof(sockaddr_in)) + 16);
  }
}

}  // namespace ringsock::compat
