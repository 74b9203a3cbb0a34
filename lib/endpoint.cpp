#include "ringsock/endpoint.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

namespace ringsock {

namespace {

[[noreturn]] void malformed(std::string_view text, const char* why) {
  throw std::invalid_argument("ringsock::endpoint::parse: malformed endpoint '" +
                              std::string(text) + "' (" + why +
                              "); expected 'a.b.c.d:port', '[v6]:port' or 'unix:/path'");
}

std::uint16_t parse_port(std::string_view whole, std::string_view p) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v > 65535)
    malformed(whole, "port must be a number from 0 to 65535");
  return static_cast<std::uint16_t>(v);
}

}  // namespace

endpoint::endpoint() noexcept : len_(0) { storage_.ss_family = AF_UNSPEC; }

endpoint endpoint::ipv4(std::string_view address, std::uint16_t port) {
  endpoint e;
  auto* sa = reinterpret_cast<sockaddr_in*>(&e.storage_);
  std::memset(sa, 0, sizeof *sa);
  std::string a(address);
  if (::inet_pton(AF_INET, a.c_str(), &sa->sin_addr) != 1)
    throw std::invalid_argument("ringsock::endpoint::ipv4: '" + a + "' is not an IPv4 address");
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  e.len_ = sizeof(sockaddr_in);
  return e;
}

endpoint endpoint::ipv6(std::string_view address, std::uint16_t port) {
  endpoint e;
  auto* sa = reinterpret_cast<sockaddr_in6*>(&e.storage_);
  std::memset(sa, 0, sizeof *sa);
  std::string a(address);
  if (::inet_pton(AF_INET6, a.c_str(), &sa->sin6_addr) != 1)
    throw std::invalid_argument("ringsock::endpoint::ipv6: '" + a + "' is not an IPv6 address");
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(port);
  e.len_ = sizeof(sockaddr_in6);
  return e;
}

endpoint endpoint::unix_path(std::string_view path) {
  endpoint e;
  auto* sa = reinterpret_cast<sockaddr_un*>(&e.storage_);
  std::memset(sa, 0, sizeof *sa);
  if (path.empty() || path.size() >= sizeof(sa->sun_path))
    throw std::invalid_argument("ringsock::endpoint::unix_path: path must have 1 to " +
                                std::to_string(sizeof(sa->sun_path) - 1) + " characters");
  sa->sun_family = AF_UNIX;
  std::memcpy(sa->sun_path, path.data(), path.size());
  if (path[0] == '@') sa->sun_path[0] = '\0';  // abstract namespace: length-delimited, no NUL
  e.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                  (path[0] == '@' ? 0 : 1));
  return e;
}

endpoint endpoint::loopback(address_family family, std::uint16_t port) {
  if (family == address_family::ipv6) return ipv6("::1", port);
  if (family == address_family::ipv4) return ipv4("127.0.0.1", port);
  throw std::invalid_argument("ringsock::endpoint::loopback: family must be ipv4 or ipv6");
}

endpoint endpoint::any(address_family family, std::uint16_t port) {
  if (family == address_family::ipv6) return ipv6("::", port);
  if (family == address_family::ipv4) return ipv4("0.0.0.0", port);
  throw std::invalid_argument("ringsock::endpoint::any: family must be ipv4 or ipv6");
}

endpoint endpoint::from_native(const sockaddr* sa, socklen_t len) noexcept {
  endpoint e;
  if (len > capacity()) len = capacity();
  std::memcpy(&e.storage_, sa, len);
  e.len_ = len;
  return e;
}

endpoint endpoint::parse(std::string_view text) {
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) malformed(text, "empty Unix socket path");
    return unix_path(path);
  }
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) malformed(text, "missing ']'");
    if (close + 1 >= text.size() || text[close + 1] != ':') malformed(text, "missing ':port'");
    std::uint16_t port = parse_port(text, text.substr(close + 2));
    std::string addr(text.substr(1, close - 1));
    endpoint e;
    auto* sa = reinterpret_cast<sockaddr_in6*>(&e.storage_);
    std::memset(sa, 0, sizeof *sa);
    if (::inet_pton(AF_INET6, addr.c_str(), &sa->sin6_addr) != 1)
      malformed(text, "not an IPv6 address");
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    e.len_ = sizeof(sockaddr_in6);
    return e;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) malformed(text, "missing ':port'");
  if (text.substr(0, colon).find(':') != std::string_view::npos)
    malformed(text, "IPv6 addresses go in brackets");
  std::uint16_t port = parse_port(text, text.substr(colon + 1));
  std::string addr(text.substr(0, colon));
  endpoint e;
  auto* sa = reinterpret_cast<sockaddr_in*>(&e.storage_);
  std::memset(sa, 0, sizeof *sa);
  if (::inet_pton(AF_INET, addr.c_str(), &sa->sin_addr) != 1)
    malformed(text, "not an IPv4 address");
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  e.len_ = sizeof(sockaddr_in);
  return e;
}

std::uint16_t endpoint::port() const noexcept {
  if (storage_.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (storage_.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (storage_.ss_family) {
    case AF_INET: {
      auto* sa = reinterpret_cast<const sockaddr_in*>(&storage_);
      ::inet_ntop(AF_INET, &sa->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(port());
    }
    case AF_INET6: {
      auto* sa = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &sa->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    case AF_UNIX: {
      auto* sa = reinterpret_cast<const sockaddr_un*>(&storage_);
      std::size_t n = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return "unix:";  // unnamed (an accepted or unbound socket)
      if (sa->sun_path[0] == '\0') return "unix:@" + std::string(sa->sun_path + 1, n - 1);
      return "unix:" + std::string(sa->sun_path, ::strnlen(sa->sun_path, n));
    }
    default:
      return "unspecified";
  }
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace ringsock
