// An echo server written with the public API that records every error it meets, and blocking
// client threads that check every echoed byte: the harness of the fault-injection, real-fault
// and graceful-shutdown tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <map>
#include <system_error>

#include "ringsock/ringsock.hpp"

namespace test {

// What the server saw. Only the context's thread writes it.
struct server_log {
  std::size_t accepted = 0;
  std::size_t sessions_ended = 0;
  std::map<int, std::size_t> accept_errors;   // errno -> count, errors the accept loop went on after
  std::error_code accept_end;                 // the error that ended the accept loop
  std::map<int, std::size_t> session_errors;  // errno -> count, errors that ended or hit a session
  std::size_t receive_retries = 0;            // transient receive errors the session retried
  std::size_t live_sessions() const noexcept { return accepted - sessions_ended; }
  std::size_t session_errors_of(std::errc e) const;
  std::size_t accept_errors_of(std::errc e) const;
};

// Accepts (args form) until the listener is closed or fails; each connection gets an echo
// session: receive (4 KiB), send_all, until end of stream. A receive that fails with a resource
// error (no_buffer_space, not_enough_memory) is retried; any other error ends the session.
ringsock::task<void> logged_accept_loop(ringsock::io_context& ctx, ringsock::socket& listener,
                                        server_log& log);

// The outcome of a client load, as the clients saw it.
struct load_result {
  std::size_t connections = 0;
  std::size_t completed = 0;  // every message came back, byte for byte
  std::size_t affected = 0;   // the connection failed or ended early (nothing wrong came back)
  std::size_t affected_after_echo = 0;  // ... of them, after at least one message came back
  std::size_t refused = 0;    // connect failed
  std::size_t corrupt = 0;    // a byte came back wrong: never acceptable
  std::size_t messages = 0;   // messages echoed correctly
  std::size_t bytes = 0;      // bytes echoed correctly
};

struct load_shape {
  int threads = 4;
  int connections = 16;    // per thread
  int messages = 16;       // per connection, each 1..max_message random bytes, ping-pong
  std::size_t max_message = 8192;
  unsigned seed = 1;
  int timeout_ms = 5000;   // SO_RCVTIMEO/SO_SNDTIMEO: a stuck echo fails instead of hanging
};

// Runs the clients on their own threads with blocking sockets (they share nothing with the
// server's ring) and returns when all are done. `stop_early`, when set by the caller, makes every
// client finish its current connection and stop.
load_result run_clients(const ringsock::endpoint& ep, const load_shape& shape,
                        const std::atomic<bool>* stop_early = nullptr);

// Runs the clients on another thread while `ctx`'s loop runs (whatever serves them must already
// be started); returns when they are done. The client thread wakes the loop through post().
load_result load_while_serving(ringsock::io_context& ctx, const ringsock::endpoint& ep,
                               const load_shape& shape);

// The logged echo server under a client load: accepts until the clients are done, then closes
// the listener and runs the loop until every session has ended.
load_result serve_while(ringsock::io_context& ctx, ringsock::socket& listener, server_log& log,
                        const load_shape& shape);

}  // namespace test
