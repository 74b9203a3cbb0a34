#include "ringsock/compat/exceptions.hpp"

#include <cerrno>
#include <cstring>

namespace ringsock::compat {

SocketError ToSocketError(std::error_code ec) noexcept {
  return ec ? ToSocketError(ec.value()) : SocketError::Success;
}

SocketError ToSocketError(int err) noexcept {
  switch (err) {
    case 0: return SocketError::Success;
    case ECANCELED: return SocketError::OperationAborted;
    case EINTR: return SocketError::Interrupted;
    case EACCES:
    case EPERM: return SocketError::AccessDenied;
    case EFAULT: return SocketError::Fault;
    case EINVAL: return SocketError::InvalidArgument;
    case EMFILE:
    case ENFILE: return SocketError::TooManyOpenSockets;
    case EAGAIN: return SocketError::WouldBlock;
    case EINPROGRESS: return SocketError::InProgress;
    case EALREADY: return SocketError::AlreadyInProgress;
    case EBADF:
    case ENOTSOCK: return SocketError::NotSocket;
    case EDESTADDRREQ: return SocketError::DestinationAddressRequired;
    case EMSGSIZE: return SocketError::MessageSize;
    case EPROTOTYPE: return SocketError::ProtocolType;
    case ENOPROTOOPT: return SocketError::ProtocolOption;
    case EPROTONOSUPPORT: return SocketError::ProtocolNotSupported;
    case ESOCKTNOSUPPORT: return SocketError::SocketNotSupported;
    case EOPNOTSUPP: return SocketError::OperationNotSupported;
    case EPFNOSUPPORT: return SocketError::ProtocolFamilyNotSupported;
    case EAFNOSUPPORT: return SocketError::AddressFamilyNotSupported;
    case EADDRINUSE: return SocketError::AddressAlreadyInUse;
    case EADDRNOTAVAIL: return SocketError::AddressNotAvailable;
    case ENETDOWN: return SocketError::NetworkDown;
    case ENETUNREACH: return SocketError::NetworkUnreachable;
    case ENETRESET: return SocketError::NetworkReset;
    case ECONNABORTED: return SocketError::ConnectionAborted;
    case ECONNRESET: return SocketError::ConnectionReset;
    case ENOBUFS:
    case ENOMEM: return SocketError::NoBufferSpaceAvailable;
    case EISCONN: return SocketError::IsConnected;
    case ENOTCONN: return SocketError::NotConnected;
    case EPIPE:
    case ESHUTDOWN: return SocketError::Shutdown;
    case ETIMEDOUT: return SocketError::TimedOut;
    case ECONNREFUSED: return SocketError::ConnectionRefused;
    case EHOSTDOWN: return SocketError::HostDown;
    case EHOSTUNREACH: return SocketError::HostUnreachable;
    default: return SocketError::SocketError;
  }
}

namespace {
// The errno .NET on Linux reports for a SocketError (SocketException's NativeErrorCode and
// ErrorCode): where several errnos map to one SocketError, the one .NET picks.
int errno_for(SocketError e) noexcept {
  switch (e) {
    case SocketError::Success: return 0;
    case SocketError::AccessDenied: return EACCES;
    case SocketError::TooManyOpenSockets: return ENFILE;  // .NET's pick (EMFILE maps here too)
    case SocketError::IOPending: return EINPROGRESS;
    case SocketError::Disconnecting: return ESHUTDOWN;
    case SocketError::ProcessLimit: return static_cast<int>(SocketError::ProcessLimit);  // no errno
    case SocketError::SocketError: return -131074;  // what .NET 10 reports here (no errno)
    case SocketError::NotSocket: return ENOTSOCK;
    case SocketError::NoBufferSpaceAvailable: return ENOBUFS;
    case SocketError::Shutdown: return EPIPE;
    default:
      for (int err = 1; err < 256; ++err)
        if (ToSocketError(err) == e) return err;
      return 0;  // no errno maps to it (SocketError::SocketError)
  }
}

// .NET's Message: the system's text for the errno.
std::string describe(SocketError e, int native) {
  if (native > 0) return std::strerror(native);
  if (e == SocketError::Success) return "Success";
  return "Unknown socket error";
}

int native_of(SocketError e, int native_errno) noexcept {
  return native_errno ? native_errno : errno_for(e);
}
}  // namespace

SocketException::SocketException(SocketError error, int native_errno)
    : std::system_error(native_of(error, native_errno), std::system_category(),
                        describe(error, native_of(error, native_errno))),
      error_(error),
      native_(native_of(error, native_errno)),
      message_(describe(error, native_)) {}

ObjectDisposedException::ObjectDisposedException(const std::string& object_name,
                                                 const std::string& message)
    : InvalidOperationException("Cannot access a disposed object. Object name: '" + object_name +
                                "'. " + message),
      name_(object_name) {}

ArgumentException::ArgumentException(const std::string& message, std::string param_name)
    : std::invalid_argument(param_name.empty() ? message
                                               : message + " (Parameter '" + param_name + "')"),
      param_(std::move(param_name)) {}

ArgumentNullException::ArgumentNullException(std::string param_name)
    : ArgumentException("Value cannot be null.", std::move(param_name)) {}

ArgumentOutOfRangeException::ArgumentOutOfRangeException(std::string param_name,
                                                         const std::string& message)
    : ArgumentException(message, std::move(param_name)) {}

}  // namespace ringsock::compat
