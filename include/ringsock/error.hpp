// Error model (README, "Errors, cancellation, ownership"):
//  - I/O outcomes: a std::error_code in the args form, ringsock::socket_error in the plain form;
//  - misuse: a ringsock::misuse_error (std::logic_error family) thrown at the call, before anything
//    is submitted; an empty receive buffer is std::invalid_argument.
#pragma once

#include <stdexcept>
#include <system_error>

namespace ringsock {

// An I/O operation failed; code() holds the errno in std::system_category().
class socket_error : public std::system_error {
 public:
  socket_error(int err, const char* what);
  socket_error(std::error_code ec, const char* what);
};

// The io_uring instance could not be created; what() names the cause and the remedy.
class ring_setup_error : public std::system_error {
 public:
  explicit ring_setup_error(int err);
};

// Base of every misuse report: the call was wrong, nothing was submitted.
class misuse_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// The socket was closed (or moved from) before the call.
class socket_closed_error : public misuse_error {
 public:
  explicit socket_closed_error(const char* op);
};

// accept on a socket that is not listening (listen() was not called through ringsock).
class not_listening_error : public misuse_error {
 public:
  explicit not_listening_error(const char* op);
};

// The args object is already used by a pending operation.
class args_in_use_error : public misuse_error {
 public:
  explicit args_in_use_error(const char* op);
};

// A bounded queue is full (io_context::post when the loop does not keep up); nothing was queued.
class queue_full_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An errno as a std::error_code (system category, so it compares equal to std::errc values).
inline std::error_code make_error_code_from_errno(int err) noexcept {
  return {err, std::system_category()};
}

// True when an accept loop must stop: the listener was closed, cancelled or is broken.
// Not fatal: resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) and errors of one connection
// (ECONNABORTED, ECONNRESET, ETIMEDOUT, EPROTO, EPERM and the pending network errors accept(2)
// says to retry on). The listener uses the same classification.
bool is_fatal(std::error_code ec) noexcept;

namespace detail {
bool is_resource_errno(int err) noexcept;
bool is_connection_errno(int err) noexcept;
}  // namespace detail

}  // namespace ringsock
