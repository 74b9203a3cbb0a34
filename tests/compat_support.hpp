// Helpers of the compat suites: drive the loop with a bound, listeners, raw peers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "ringsock/compat.hpp"
#include "support.hpp"

namespace ctest {

using namespace ringsock::compat;

// Runs the context's loop until pred() holds or `limit` passes; returns pred().
bool drive(ringsock::io_context& ctx, const std::function<bool()>& pred,
           std::chrono::milliseconds limit = std::chrono::seconds(5));
// Lets the loop turn for a while (queued connections arrive, completions are reaped).
inline void settle(ringsock::io_context& ctx, std::chrono::milliseconds d = std::chrono::milliseconds(20)) {
  drive(ctx, [] { return false; }, d);
}

std::shared_ptr<Socket> listener(ringsock::io_context& ctx, bool v6 = false);
int port_of(const std::shared_ptr<Socket>& s);
ringsock::endpoint endpoint_of(const std::shared_ptr<Socket>& s);

// The repeated setup of the compat suites: a listener, a blocking client connected to it (the
// caller closes it), and the server side of that connection, accepted with Begin/EndAccept.
struct accepted_pair {
  std::shared_ptr<Socket> listener;
  int client;
  std::shared_ptr<Socket> server;
};
accepted_pair accept_pair(ringsock::io_context& ctx);

}  // namespace ctest
