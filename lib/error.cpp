#include "ringsock/error.hpp"

#include <cerrno>
#include <string>

namespace ringsock {

socket_error::socket_error(int err, const char* what)
    : std::system_error(err, std::system_category(), what) {}

socket_error::socket_error(std::error_code ec, const char* what) : std::system_error(ec, what) {}

namespace {
std::string describe_setup_error(int err) {
  std::string s = "ringsock: io_uring_queue_init failed: ";
  switch (err) {
    case EPERM:
      return s + "io_uring is not permitted in this process (the kernel.io_uring_disabled sysctl, "
                 "a seccomp filter or a container policy blocks it); set kernel.io_uring_disabled=0 "
                 "or allow io_uring_setup in the sandbox";
    case ENOSYS:
      return s + "this kernel has no io_uring (needs Linux 5.19 or newer, built with "
                 "CONFIG_IO_URING)";
    case ENOMEM:
      return s + "not enough locked memory for the rings; raise RLIMIT_MEMLOCK (ulimit -l) or ask "
                 "for fewer entries";
    case EMFILE:
    case ENFILE:
      return s + "no file descriptor left for the ring; raise RLIMIT_NOFILE or close descriptors";
    case EINVAL:
      return s + "the kernel refused the ring parameters (entries too large?)";
    default:
      return s + "unexpected error";
  }
}

std::string misuse(const char* op, const char* what) {
  return std::string("ringsock: ") + op + ": " + what;
}
}  // namespace

ring_setup_error::ring_setup_error(int err)
    : std::system_error(err, std::system_category(), describe_setup_error(err)) {}

socket_closed_error::socket_closed_error(const char* op)
    : misuse_error(misuse(op, "the socket is closed")) {}

not_listening_error::not_listening_error(const char* op)
    : misuse_error(misuse(op, "the socket is not listening (call listen() first)")) {}

args_in_use_error::args_in_use_error(const char* op)
    : misuse_error(misuse(op, "the args object is already used by a pending operation")) {}

namespace detail {
bool is_resource_errno(int err) noexcept {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// A connection that failed before (or while) we took it; the listener is fine. accept(2) passes
// pending network errors of the new connection and asks callers to retry as for EAGAIN.
bool is_connection_errno(int err) noexcept {
  switch (err) {
    case ECONNABORTED:
    case ECONNRESET:
    case ETIMEDOUT:
    case EPROTO:
    case EPERM:  // a firewall rule refused one connection
    case EAGAIN:
    case EINTR:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}
}  // namespace detail

bool is_fatal(std::error_code ec) noexcept {
  if (!ec) return false;
  if (ec.category() != std::system_category() && ec.category() != std::generic_category())
    return true;
  return !detail::is_resource_errno(ec.value()) && !detail::is_connection_errno(ec.value());
}

}  // namespace ringsock
