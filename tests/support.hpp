// Shared helpers of the test suites: fd counting, an allocation counter, echo peers.
#pragma once

#include <atomic>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ringsock/ringsock.hpp"

namespace test {

// Descriptors open in this process (entries of /proc/self/fd).
std::size_t open_fds();

// Calls of the global operator new since the program started (the test binaries replace it).
std::size_t new_calls();
// Bytes asked of the global operator new since the program started.
std::size_t new_bytes();
// Calls of the global operator delete with a non-null pointer (same replacements).
std::size_t delete_calls();

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}
inline std::string str(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// The repeated setup of the core suites (TEST_CASE_FIXTURE(test::listening, ...)): a context
// and an IPv4 loopback listener on it, as `l` (also named `listener`).
struct listening {
  ringsock::io_context ctx;
  ringsock::socket l =
      ringsock::socket::listen(ctx, ringsock::endpoint::loopback(ringsock::address_family::ipv4));
  ringsock::socket& listener = l;
};

// A plain blocking connect (no ring): the kernel completes the handshake into the listener's
// backlog without anyone accepting.
int blocking_connect(const ringsock::endpoint& ep);
// Reads fd on a thread of its own into `got` until `want` bytes came, the peer closed, or 5 s
// passed without a byte; join the thread before looking at `got`.
std::thread read_on_thread(int fd, std::vector<std::byte>& got, std::size_t want);

// One accepted connection (plain form).
ringsock::task<ringsock::socket> accept_one(ringsock::socket& listener);
// A connected pair through `listener`: its accepted end and a client connected to it.
struct socket_pair {
  ringsock::socket server, client;
};
ringsock::task<socket_pair> connected_pair(ringsock::io_context& ctx, ringsock::socket& listener);

// Echoes every byte until end of stream, then closes.
ringsock::task<void> echo_session(ringsock::socket s);
// Accepts `count` connections and spawns an echo session for each.
ringsock::task<void> echo_server(ringsock::io_context& ctx, ringsock::socket& listener, int count);
// Connects, sends `msg`, half-closes, reads until end of stream; returns what came back.
ringsock::task<std::string> echo_client(ringsock::io_context& ctx, ringsock::endpoint ep,
                                        std::string msg);

// An accepted ringsock socket and the raw (blocking) descriptor of its peer, closed with it.
struct raw_pair {
  ringsock::socket server;
  int peer = -1;
  raw_pair() = default;
  raw_pair(raw_pair&& o) noexcept;
  raw_pair& operator=(raw_pair&&) = delete;
  ~raw_pair();
};
raw_pair make_pair(ringsock::io_context& ctx, ringsock::socket& listener);

// n bytes of a pattern with a long period (a byte out of place or lost shows).
std::string pattern(std::size_t n);

// A unique path for a Unix-domain socket in /tmp.
std::string temp_socket_path(const char* tag);

}  // namespace test
