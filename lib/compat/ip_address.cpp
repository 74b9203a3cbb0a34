#include "ringsock/compat/ip_address.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "ringsock/compat/exceptions.hpp"

namespace ringsock::compat {

namespace {
std::array<std::uint8_t, 16> v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return {a, b, c, d};
}
std::array<std::uint8_t, 16> v6_last(std::uint8_t last) {
  std::array<std::uint8_t, 16> r{};
  r[15] = last;
  return r;
}
}  // namespace

const IPAddress IPAddress::Any{AddressFamily::InterNetwork, v4(0, 0, 0, 0)};
const IPAddress IPAddress::Loopback{AddressFamily::InterNetwork, v4(127, 0, 0, 1)};
const IPAddress IPAddress::IPv6Any{AddressFamily::InterNetworkV6, v6_last(0)};
const IPAddress IPAddress::IPv6Loopback{AddressFamily::InterNetworkV6, v6_last(1)};

IPAddress IPAddress::Parse(std::string_view text) {
  std::string s(text);
  std::array<std::uint8_t, 16> b{};
  if (::inet_pton(AF_INET, s.c_str(), b.data()) == 1) return {AddressFamily::InterNetwork, b};
  if (::inet_pton(AF_INET6, s.c_str(), b.data()) == 1) return {AddressFamily::InterNetworkV6, b};
  throw ArgumentException("An invalid IP address was specified: '" + s + "'.", "ipString");
}

std::string IPAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_ == AddressFamily::InterNetwork ? AF_INET : AF_INET6, bytes_.data(), buf,
              sizeof buf);
  return buf;
}

AddressFamily EndPoint::AddressFamily() const noexcept {
  switch (ep_.family()) {
    case address_family::ipv4: return AddressFamily::InterNetwork;
    case address_family::ipv6: return AddressFamily::InterNetworkV6;
    case address_family::unix_domain: return AddressFamily::Unix;
    default: return AddressFamily::Unspecified;
  }
}

IPEndPoint::IPEndPoint(const IPAddress& address, int port) {
  if (port < 0 || port > 65535)
    throw ArgumentOutOfRangeException("port", "The port must be between 0 and 65535.");
  auto p = static_cast<std::uint16_t>(port);
  ep_ = address.family_ == AddressFamily::InterNetwork ? endpoint::ipv4(address.ToString(), p)
                                                       : endpoint::ipv6(address.ToString(), p);
}

IPEndPoint::IPEndPoint(const ringsock::endpoint& ep) : EndPoint(ep) {
  if (ep.family() != address_family::ipv4 && ep.family() != address_family::ipv6)
    throw ArgumentException("The endpoint is not an IP endpoint.", "endPoint");
}

IPAddress IPEndPoint::Address() const {
  std::array<std::uint8_t, 16> b{};
  if (ep_.family() == address_family::ipv4) {
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in*>(ep_.data())->sin_addr, 4);
    return {AddressFamily::InterNetwork, b};
  }
  std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(ep_.data())->sin6_addr, 16);
  return {AddressFamily::InterNetworkV6, b};
}

UnixDomainSocketEndPoint::UnixDomainSocketEndPoint(std::string_view path) {
  if (path.empty()) throw ArgumentException("The path must not be empty.", "path");
  try {
    ep_ = endpoint::unix_path(path);
  } catch (const std::invalid_argument& e) {
    throw ArgumentOutOfRangeException("path", e.what());
  }
}

}  // namespace ringsock::compat
