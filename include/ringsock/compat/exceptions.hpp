// .NET's exception types, each deriving from the closest std:: exception (README.md, "Porting
// from .NET"). Every message names the misuse; every check runs before anything is submitted.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

#include "ringsock/compat/enums.hpp"

namespace ringsock::compat {

// .NET: System.Net.Sockets.SocketException
class SocketException : public std::system_error {
 public:
  // native_errno 0: the errno .NET on Linux pairs with `error` (ECONNREFUSED for
  // ConnectionRefused ...). what() is .NET's Message: the system's text for that errno.
  explicit SocketException(SocketError error, int native_errno = 0);
  // .NET: SocketException.ErrorCode (on Linux the errno, as NativeErrorCode).
  int ErrorCode() const noexcept { return native_; }
  // .NET: SocketException.SocketErrorCode
  compat::SocketError SocketErrorCode() const noexcept { return error_; }
  // .NET: SocketException.NativeErrorCode (the errno on Linux).
  int NativeErrorCode() const noexcept { return native_; }
  // .NET: SocketException.Message ("Connection refused").
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  compat::SocketError error_;
  int native_;
  std::string message_;
};

// .NET: System.InvalidOperationException
class InvalidOperationException : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// .NET: System.ObjectDisposedException (derives from InvalidOperationException there too).
class ObjectDisposedException : public InvalidOperationException {
 public:
  ObjectDisposedException(const std::string& object_name, const std::string& message);
  const std::string& ObjectName() const noexcept { return name_; }

 private:
  std::string name_;
};

// .NET: System.NotSupportedException
class NotSupportedException : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// .NET: System.ArgumentException
class ArgumentException : public std::invalid_argument {
 public:
  ArgumentException(const std::string& message, std::string param_name);
  const std::string& ParamName() const noexcept { return param_; }

 private:
  std::string param_;
};

// .NET: System.ArgumentNullException
class ArgumentNullException : public ArgumentException {
 public:
  explicit ArgumentNullException(std::string param_name);
};

// .NET: System.ArgumentOutOfRangeException
class ArgumentOutOfRangeException : public ArgumentException {
 public:
  ArgumentOutOfRangeException(std::string param_name, const std::string& message);
};

}  // namespace ringsock::compat
