// tls::errc as std::error_code, and the kernel TLS probe.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "ringsock/tls.hpp"

namespace ringsock::tls {

namespace {
class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ringsock.tls"; }
  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::handshake_failed: return "TLS handshake failed";
      case errc::certificate_rejected: return "the peer's TLS certificate was rejected";
      case errc::truncated: return "the TLS stream ended without close_notify (truncated)";
      case errc::record_too_large: return "a TLS record was larger than allowed";
      case errc::protocol_error: return "TLS protocol error";
    }
    return "unknown TLS error";
  }
};
}  // namespace

const std::error_category& error_category() noexcept {
  static const category_impl c;
  return c;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

bool kernel_tls_available() noexcept {
  static const bool available = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    // The ULP is looked up (and its module loaded) before the socket's state is checked: a
    // kernel without it says ENOENT, one with it ENOTCONN (the socket is not connected).
    const int r = ::setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls");
    const int err = errno;
    ::close(fd);
    return r == 0 || err == ENOTCONN;
  }();
  return available;
}

}  // namespace ringsock::tls
