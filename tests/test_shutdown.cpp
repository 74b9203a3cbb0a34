// Graceful shutdown (io_context::shutdown_gracefully): stop accepting, let in-flight connections
// finish within the grace period, cancel the rest, drain every CQE.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "load_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

namespace {

task<void> stop_after(io_context& ctx, std::chrono::milliseconds d) {
  co_await sleep_for(ctx, d);
  ctx.stop();
}

// Reads until end of stream or error; true when the server closed the connection cleanly.
bool ends_with_eof(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::array<char, 64> buf;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r == 0) return true;
    if (r < 0) return false;
  }
}

}  // namespace

TEST_SUITE("shutdown") {
  TEST_CASE("under load: running echoes finish, idle connections are cancelled, nothing remains") {
    constexpr int idle_count = 5;
    const std::size_t fds_before = test::open_fds();
    test::server_log log;
    test::load_result load;
    std::vector<int> idle;
    shutdown_report rep;
    std::size_t pending_after = 0;
    std::atomic<bool> stop_clients{false};
    {
      io_context ctx;
      socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      const endpoint ep = listener.local_endpoint();
      ctx.spawn(test::logged_accept_loop(ctx, listener, log));
      // Connections that never send: their sessions wait in a receive until they are cancelled.
      for (int i = 0; i < idle_count; ++i) idle.push_back(test::blocking_connect(ep));
      test::load_shape shape;
      shape.connections = 100000;  // until told to stop
      std::thread clients([&] { load = test::run_clients(ep, shape, &stop_clients); });

      ctx.spawn(stop_after(ctx, 300ms));
      ctx.run();  // serves the load until stop()
      const std::size_t accepted_at_stop = log.accepted;
      stop_clients.store(true);  // each client finishes its connection, then stops
      rep = ctx.shutdown_gracefully(1s);
      pending_after = ctx.pending_operations();
      clients.join();
      CHECK(accepted_at_stop >= idle_count);
      CHECK(log.accepted == accepted_at_stop);  // nothing was accepted after the stop
    }
    for (int fd : idle) {
      CHECK(ends_with_eof(fd));  // its cancelled session closed the connection
      ::close(fd);
    }
    CHECK_FALSE(rep.finished_in_time);        // the idle sessions would never end by themselves
    CHECK(rep.tasks_at_deadline == idle_count);
    CHECK(rep.ops_at_deadline == idle_count);  // one pending receive each
    CHECK(rep.tasks_left == 0);
    CHECK(rep.took >= 1s);
    CHECK(rep.took < 3s);
    CHECK(pending_after == 0);
    CHECK(log.accept_end == std::errc::operation_canceled);
    CHECK(log.live_sessions() == 0);
    CHECK(log.session_errors_of(std::errc::operation_canceled) == idle_count);
    // The load: nothing came back wrong, and no connection that was being served was cut.
    CHECK(load.corrupt == 0);
    CHECK(load.affected_after_echo == 0);
    CHECK(load.completed > 0);
    CHECK(load.completed + load.affected + load.refused == load.connections);
    CHECK(test::open_fds() == fds_before);
    MESSAGE("load: " << load.connections << " connections, " << load.completed << " completed ("
                     << load.messages << " echoes), " << load.affected << " reset in the backlog, "
                     << load.refused << " refused; shutdown took " << rep.took.count() << " ms");
  }

  TEST_CASE_FIXTURE(test::listening, "with nothing in flight it finishes at once") {
    test::server_log log;
    ctx.spawn(test::logged_accept_loop(ctx, listener, log));
    ctx.spawn(stop_after(ctx, 10ms));
    ctx.run();
    shutdown_report rep = ctx.shutdown_gracefully(5s);
    CHECK(rep.finished_in_time);
    CHECK(rep.tasks_at_deadline == 0);
    CHECK(rep.took < 1s);
    CHECK(log.accept_end == std::errc::operation_canceled);
    CHECK(ctx.pending_operations() == 0);
    // The listener no longer accepts: a connect is refused, a new accept ends at once.
    const endpoint ep = listener.local_endpoint();
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(::connect(fd, ep.data(), ep.size()) != 0);
    CHECK(errno == ECONNREFUSED);
    ::close(fd);
    accept_args args;
    std::error_code ec = ctx.block_on(
        [](socket& l, accept_args& a) -> task<std::error_code> { co_return co_await l.accept_async(a); }(
            listener, args));
    CHECK(ec == std::errc::operation_canceled);
  }

  TEST_CASE("a task that ignores cancellation is reported and dies with the context") {
    const std::size_t fds_before = test::open_fds();
    int peer = -1;
    int rounds = 0;
    {
      io_context ctx;
      socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      peer = test::blocking_connect(listener.local_endpoint());
      socket s = ctx.block_on(test::accept_one(listener));
      ctx.spawn([](socket s, int& rounds) -> task<void> {
        std::array<std::byte, 16> buf;
        for (;;) {
          ++rounds;
          try {
            co_await s.receive_async(buf);
          } catch (const socket_error&) {
          }
        }
      }(std::move(s), rounds));
      ctx.spawn(stop_after(ctx, 5ms));
      ctx.run();
      shutdown_report rep = ctx.shutdown_gracefully(50ms);
      CHECK_FALSE(rep.finished_in_time);
      CHECK(rep.tasks_at_deadline == 1);
      CHECK(rep.tasks_left == 1);
      CHECK(rounds > 1);  // it was cancelled, and started again
      CHECK(rep.took < 1s);
    }  // the frame is destroyed here, its socket closed
    ::close(peer);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("from inside the loop it is a logic_error") {
    io_context ctx;
    CHECK_THROWS_AS(ctx.block_on([](io_context& ctx) -> task<void> {
      ctx.shutdown_gracefully(1s);
      co_return;
    }(ctx)),
                    std::logic_error);
  }
}

}  // namespace rstest
