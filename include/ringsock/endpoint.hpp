// endpoint: an IPv4, IPv6 or Unix-domain socket address (a sockaddr_storage and its length).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringsock {

enum class address_family : int {
  unspecified = AF_UNSPEC,
  ipv4 = AF_INET,
  ipv6 = AF_INET6,
  unix_domain = AF_UNIX,
};

class endpoint {
 public:
  // An empty endpoint (family unspecified).
  endpoint() noexcept;

  // "127.0.0.1:8080", "[::1]:80", "unix:/run/app.sock" or "unix:@abstract".
  // Throws std::invalid_argument naming the string and the expected forms when malformed.
  static endpoint parse(std::string_view text);
  // A numeric address; throws std::invalid_argument when `address` is not one.
  static endpoint ipv4(std::string_view address, std::uint16_t port);
  static endpoint ipv6(std::string_view address, std::uint16_t port);
  // A filesystem path, or an abstract name when it starts with '@'. Throws std::invalid_argument
  // when it does not fit in sun_path.
  static endpoint unix_path(std::string_view path);
  // 127.0.0.1 or ::1.
  static endpoint loopback(address_family family, std::uint16_t port = 0);
  // 0.0.0.0 or ::.
  static endpoint any(address_family family, std::uint16_t port = 0);
  // Copies a kernel-provided address.
  static endpoint from_native(const sockaddr* sa, socklen_t len) noexcept;

  address_family family() const noexcept { return static_cast<address_family>(storage_.ss_family); }
  // The port in host order; 0 for Unix-domain and empty endpoints.
  std::uint16_t port() const noexcept;
  // The inverse of parse(): "127.0.0.1:8080", "[::1]:80", "unix:/path", "unix:@name".
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }
  // After the kernel wrote an address into data(): record its length.
  void resize(socklen_t len) noexcept { len_ = len <= capacity() ? len : capacity(); }

  friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t len_;
};

}  // namespace ringsock
