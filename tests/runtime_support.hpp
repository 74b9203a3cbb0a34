// The multi-threaded server and blocking clients of the runtime and hand-off suites.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>

#include "ringsock/ringsock.hpp"

namespace rstest {

constexpr unsigned max_threads = 4;

// What the server side saw, per thread.
struct tally {
  std::array<std::atomic<int>, max_threads> connections{};
  std::array<std::atomic<long>, max_threads> bytes{};
  std::atomic<int> listening{0};
};

// One connection: echoes (borrowed receives) until end of stream or an error, counting its
// connection and bytes on the thread it runs on.
ringsock::task<void> echo_counted(ringsock::socket s, tally& t);
// A thread's server: rt.listen on IPv4 loopback (port 0, shared), then accepts until the
// listener stops, spawning echo_counted for each connection.
ringsock::task<void> serve_all(ringsock::runtime& rt, ringsock::io_context& ctx, tally& t);

// A blocking client: sends `n` bytes in pieces and reads them back. Returns n when every byte
// came back as sent, -1 when the connection failed or ended early (or a byte differed), -2 when
// the server went silent for 5 s (a connection nobody serves).
long echo_blocking(int fd, std::size_t n);
// `conns` blocking clients on ep at once (connected first, then one thread each), each echoing
// `size` bytes: the bytes that came back as sent, summed.
long echo_clients(const ringsock::endpoint& ep, int conns, std::size_t size);
// A blocking connect that may fail (the server may be shutting down): the fd, or -1.
int try_connect(const ringsock::endpoint& ep);
// Waits up to 5 s for v >= want.
bool wait_for(const std::atomic<int>& v, int want);

}  // namespace rstest
