// A core endpoint as the .NET-shaped EndPoint it is (IPEndPoint for IP families).
#pragma once

#include <memory>

#include "ringsock/compat/ip_address.hpp"

namespace ringsock::compat {

inline std::shared_ptr<EndPoint> wrap(const ringsock::endpoint& ep) {
  if (ep.family() == address_family::ipv4 || ep.family() == address_family::ipv6)
    return std::make_shared<IPEndPoint>(ep);
  return std::make_shared<EndPoint>(ep);
}

}  // namespace ringsock::compat
