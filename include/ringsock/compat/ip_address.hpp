// .NET's addresses: IPAddress, EndPoint, IPEndPoint, UnixDomainSocketEndPoint. They are values
// here (copy them freely); each converts to and from ringsock::endpoint.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ringsock/compat/enums.hpp"
#include "ringsock/endpoint.hpp"

namespace ringsock::compat {

// .NET: System.Net.IPAddress
class IPAddress {
 public:
  static const IPAddress Any;           // 0.0.0.0
  static const IPAddress Loopback;      // 127.0.0.1
  static const IPAddress IPv6Any;       // ::
  static const IPAddress IPv6Loopback;  // ::1

  // .NET: IPAddress.Parse(string); throws FormatException there, ArgumentException here.
  static IPAddress Parse(std::string_view text);
  // .NET: IPAddress.AddressFamily
  compat::AddressFamily AddressFamily() const noexcept { return family_; }
  std::string ToString() const;
  const std::array<std::uint8_t, 16>& bytes() const noexcept { return bytes_; }
  friend bool operator==(const IPAddress&, const IPAddress&) = default;

 private:
  IPAddress(compat::AddressFamily f, std::array<std::uint8_t, 16> b) noexcept
      : family_(f), bytes_(b) {}
  compat::AddressFamily family_;
  std::array<std::uint8_t, 16> bytes_;  // IPv4 uses the first 4
  friend class IPEndPoint;
};

// .NET: System.Net.EndPoint — the common base; holds the socket address itself.
class EndPoint {
 public:
  EndPoint() = default;
  virtual ~EndPoint() = default;  // polymorphic, as in .NET: dynamic_pointer_cast<IPEndPoint> works
  EndPoint(const EndPoint&) = default;
  EndPoint& operator=(const EndPoint&) = default;
  explicit EndPoint(const ringsock::endpoint& ep) : ep_(ep) {}
  compat::AddressFamily AddressFamily() const noexcept;
  std::string ToString() const { return ep_.to_string(); }
  const ringsock::endpoint& native() const noexcept { return ep_; }
  operator const ringsock::endpoint&() const noexcept { return ep_; }  // NOLINT: by design
  friend bool operator==(const EndPoint& a, const EndPoint& b) noexcept { return a.ep_ == b.ep_; }

 protected:
  ringsock::endpoint ep_;
};

// .NET: System.Net.IPEndPoint
class IPEndPoint : public EndPoint {
 public:
  IPEndPoint(const IPAddress& address, int port);
  explicit IPEndPoint(const ringsock::endpoint& ep);
  IPAddress Address() const;
  int Port() const noexcept { return ep_.port(); }
};

// .NET: System.Net.Sockets.UnixDomainSocketEndPoint
class UnixDomainSocketEndPoint : public EndPoint {
 public:
  explicit UnixDomainSocketEndPoint(std::string_view path);
};

}  // namespace ringsock::compat
