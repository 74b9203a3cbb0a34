#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "load_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

namespace {

task<void> connect_after(io_context& ctx, endpoint ep, std::chrono::milliseconds d) {
  co_await sleep_for(ctx, d);
  socket s = co_await socket::connect_async(ctx, ep);
  co_await sleep_for(ctx, 50ms);  // keep it open while the server looks at it
}

task<void> inline_vs_suspended(io_context& ctx, socket& listener) {
  endpoint ep = listener.local_endpoint();
  accept_args args;

  // Nobody connected yet: the accept suspends and completes when a client arrives.
  auto s0 = ctx.stats();
  ctx.spawn(connect_after(ctx, ep, 20ms));
  std::error_code ec = co_await listener.accept_async(args);
  REQUIRE(!ec);
  CHECK_FALSE(args.completed_synchronously());
  CHECK(args.accept_socket().is_open());
  CHECK(args.remote_endpoint().family() == address_family::ipv4);
  CHECK(ctx.stats().inline_completions == s0.inline_completions);
  auto s_susp = ctx.stats();
  CHECK(s_susp.sqes_submitted > s0.sqes_submitted);  // the multishot accept was armed
  socket first = std::move(args.accept_socket());

  // Three clients connect while nobody accepts: the armed multishot queues them.
  int c[3];
  for (int& fd : c) fd = test::blocking_connect(ep);
  co_await sleep_for(ctx, 20ms);
  CHECK(listener.accept_queue_size() == 3);

  auto s1 = ctx.stats();
  socket got[3];
  for (socket& g : got) {
    ec = co_await listener.accept_async(args);
    REQUIRE(!ec);
    CHECK(args.completed_synchronously());
    g = std::move(args.accept_socket());
    CHECK(g.is_open());
  }
  auto s2 = ctx.stats();
  MESSAGE("suspended accept (with the client's connect and timers): sqes +"
          << s_susp.sqes_submitted - s0.sqes_submitted << ", enters +"
          << s_susp.enter_calls - s0.enter_calls << ", cqes +" << s_susp.cqes - s0.cqes
          << ", inline +" << s_susp.inline_completions - s0.inline_completions
          << "; three inline accepts: sqes +" << s2.sqes_submitted - s1.sqes_submitted
          << ", enters +" << s2.enter_calls - s1.enter_calls << ", cqes +" << s2.cqes - s1.cqes
          << ", inline +" << s2.inline_completions - s1.inline_completions);
  CHECK(s2.inline_completions - s1.inline_completions == 3);
  CHECK(s2.sqes_submitted == s1.sqes_submitted);  // no SQE
  CHECK(s2.enter_calls == s1.enter_calls);        // no syscall into the ring, no suspension
  CHECK(listener.accept_queue_size() == 0);
  for (int fd : c) ::close(fd);

  // The plain form takes from the queue inline too.
  int d = test::blocking_connect(ep);
  co_await sleep_for(ctx, 20ms);
  auto s3 = ctx.stats();
  socket p = co_await listener.accept_async();
  CHECK(p.is_open());
  CHECK(ctx.stats().inline_completions - s3.inline_completions == 1);
  ::close(d);
}

task<void> close_listener_while_pending(io_context& ctx, socket& listener, int& cancelled) {
  auto waiter = [](socket& l, int& cancelled) -> task<void> {
    accept_args args;
    std::error_code ec = co_await l.accept_async(args);
    if (ec == std::errc::operation_canceled) ++cancelled;
  };
  auto plain_waiter = [](socket& l, int& cancelled) -> task<void> {
    try {
      co_await l.accept_async();
    } catch (const socket_error& e) {
      if (e.code() == std::errc::operation_canceled) ++cancelled;
    }
  };
  ctx.spawn(waiter(listener, cancelled));
  ctx.spawn(waiter(listener, cancelled));
  ctx.spawn(plain_waiter(listener, cancelled));
  co_await sleep_for(ctx, 10ms);
  listener.close();
  CHECK(cancelled == 0);  // completions come on a following loop turn, not inside close()
  co_await sleep_for(ctx, 10ms);
}

task<void> first_receive(io_context& ctx, socket& listener, endpoint ep) {
  auto client = [](io_context& ctx, endpoint ep) -> task<void> {
    socket s = co_await socket::connect_async(ctx, ep);
    co_await sleep_for(ctx, 10ms);
    co_await s.send_all_async(test::bytes("hello, first block"));
    co_await sleep_for(ctx, 50ms);
  };
  ctx.spawn(client(ctx, ep));
  std::array<std::byte, 256> buf{};
  accept_args args;
  args.set_buffer(buf);
  std::error_code ec = co_await listener.accept_async(args);
  REQUIRE(!ec);
  CHECK(args.bytes_transferred() == 18);
  CHECK(test::str({buf.data(), args.bytes_transferred()}) == "hello, first block");
  CHECK(args.accept_socket().is_open());
  CHECK(args.last_operation() == socket_operation::accept);
}

task<void> bounded_queue(io_context& ctx, socket& listener, endpoint ep, int clients) {
  std::vector<int> fds;
  accept_args args;
  // Arm the listener with a first accept.
  ctx.spawn(connect_after(ctx, ep, 1ms));
  co_await listener.accept_async(args);
  // Wave 1: more clients than the capacity (4). The multishot may hand over a whole kernel
  // batch before its cancel is seen, so the queue holds at least the capacity ...
  for (int i = 0; i < clients; ++i) fds.push_back(test::blocking_connect(ep));
  co_await sleep_for(ctx, 30ms);
  const std::size_t held = listener.accept_queue_size();
  CHECK(held >= 4);
  // ... and then stops: wave 2 stays in the kernel's backlog while the queue is over half full.
  for (int i = 0; i < clients; ++i) fds.push_back(test::blocking_connect(ep));
  co_await sleep_for(ctx, 30ms);
  CHECK(listener.accept_queue_size() == held);
  // Draining re-arms it; every connection of both waves is accepted.
  for (int i = 0; i < 2 * clients; ++i) {
    std::error_code ec = co_await listener.accept_async(args, 2s);
    REQUIRE(!ec);
  }
  CHECK(listener.accept_queue_size() == 0);
  for (int fd : fds) ::close(fd);
}

task<void> emfile_recovers(io_context&, socket& listener, endpoint ep, std::vector<int>& fill,
                           int& reported) {
  // The descriptor table is full: the armed accept fails with EMFILE, the listener backs off.
  int c1 = test::blocking_connect(ep);  // made before the table was filled below
  fill.clear();
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    fill.push_back(fd);
  }
  accept_args args;
  std::error_code ec = co_await listener.accept_async(args, 1s);
  if (ec == std::errc::too_many_files_open) ++reported;
  CHECK(ec == std::errc::too_many_files_open);
  CHECK_FALSE(is_fatal(ec));
  // Free descriptors: the back-off timer re-arms the accept, the waiting connection arrives.
  for (int fd : fill) ::close(fd);
  fill.clear();
  ec = co_await listener.accept_async(args, 2s);
  CHECK(!ec);
  CHECK(args.accept_socket().is_open());
  ::close(c1);
}


// The server half of the accept storm, run in a child process whose descriptor limit leaves room
// for `room` connections: serves until `expect` connections came and went, then reports.
struct storm_report {
  std::size_t accepted = 0, emfile = 0;
};

task<void> storm_server(io_context& ctx, socket& listener, std::size_t expect, storm_report& rep) {
  test::server_log log;
  ctx.spawn(test::logged_accept_loop(ctx, listener, log));
  while (log.accepted < expect || log.live_sessions() > 0) co_await sleep_for(ctx, 1ms);
  rep.accepted = log.accepted;
  rep.emfile = log.accept_errors_of(std::errc::too_many_files_open);
  listener.close();
}

[[noreturn]] void storm_child(int report_fd, std::size_t room, std::size_t expect) {
  int rc = 1;
  try {
    io_context ctx;
    socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4), 1024);
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = test::open_fds() - 1 + room;  // open_fds() counts its own directory fd
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(2);
    const int port = listener.local_endpoint().port();
    if (::write(report_fd, &port, sizeof port) != sizeof port) ::_exit(3);
    storm_report rep;
    ctx.block_on(storm_server(ctx, listener, expect, rep));
    ctx.run();
    rc = ::write(report_fd, &rep, sizeof rep) == sizeof rep ? 0 : 4;
  } catch (...) {
    rc = 5;
  }
  ::_exit(rc);
}

}  // namespace

TEST_SUITE("accept") {
  TEST_CASE_FIXTURE(test::listening, "accept completes inline when connections are queued and suspends otherwise") {
    ctx.block_on(inline_vs_suspended(ctx, listener));
  }

  TEST_CASE_FIXTURE(test::listening, "closing a listener completes every pending accept once with operation_canceled") {
    endpoint ep = listener.local_endpoint();
    int cancelled = 0;
    ctx.block_on(close_listener_while_pending(ctx, listener, cancelled));
    CHECK(cancelled == 3);
    // The port refuses connections at once.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(::connect(fd, ep.data(), ep.size()) != 0);
    CHECK(errno == ECONNREFUSED);
    ::close(fd);
    CHECK_THROWS_AS((void)listener.accept_async(), socket_closed_error);
  }

  TEST_CASE("closing a listener closes the connections it queued but nobody claimed") {
    std::size_t fds_before = test::open_fds();
    {
      io_context ctx;
      socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      endpoint ep = listener.local_endpoint();
      int clients[5];
      ctx.block_on([](io_context& ctx, socket& l, endpoint ep, int* clients) -> task<void> {
        ctx.spawn(connect_after(ctx, ep, 1ms));
        co_await l.accept_async();  // arms the multishot
        for (int i = 0; i < 5; ++i) clients[i] = test::blocking_connect(ep);
        co_await sleep_for(ctx, 20ms);
        CHECK(l.accept_queue_size() == 5);
        l.close();
        co_await sleep_for(ctx, 20ms);
        // The peers see end of stream: their connection was closed by the server.
        for (int i = 0; i < 5; ++i) {
          char c;
          CHECK(::recv(clients[i], &c, 1, 0) == 0);
          ::close(clients[i]);
        }
      }(ctx, listener, ep, clients));
    }
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE_FIXTURE(test::listening, "accept with a buffer receives the first block of the connection") {
    ctx.block_on(first_receive(ctx, listener, listener.local_endpoint()));
  }

  TEST_CASE_FIXTURE(test::listening, "the ready queue is bounded; the backlog holds the rest until it drains") {
    listener.set_accept_queue_capacity(4);
    ctx.block_on(bounded_queue(ctx, listener, listener.local_endpoint(), 20));
  }

  TEST_CASE_FIXTURE(test::listening, "EMFILE is reported to args-form accepts and the listener recovers by itself") {
    endpoint ep = listener.local_endpoint();
    rlimit old{};
    ::getrlimit(RLIMIT_NOFILE, &old);
    rlimit low = old;
    low.rlim_cur = std::min<rlim_t>(old.rlim_cur, test::open_fds() + 64);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> fill;
    int reported = 0;
    ctx.block_on(emfile_recovers(ctx, listener, ep, fill, reported));
    for (int fd : fill) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
    CHECK(reported == 1);
  }

  TEST_CASE_FIXTURE(test::listening, "an accept with a buffer and a timeout completes with its first block, not the timeout") {
    const endpoint ep = listener.local_endpoint();
    ctx.block_on([](socket& l, endpoint ep) -> task<void> {
      std::array<std::byte, 64> buf{};
      accept_args args;
      args.set_buffer(buf);
      for (int round = 0; round < 2; ++round) {  // queued before the accept, then after it
        int c = -1;
        if (round == 0) {
          c = test::blocking_connect(ep);
          REQUIRE(::send(c, "first", 5, 0) == 5);
        }
        const auto t0 = std::chrono::steady_clock::now();
        std::thread late;
        if (round == 1)
          late = std::thread([&c, ep] {
            std::this_thread::sleep_for(20ms);
            c = test::blocking_connect(ep);
            ::send(c, "first", 5, 0);
          });
        std::error_code ec = co_await l.accept_async(args, 3s);
        const auto took = std::chrono::steady_clock::now() - t0;
        if (late.joinable()) late.join();
        CHECK(!ec);
        CHECK(args.bytes_transferred() == 5);
        CHECK(took < 1s);  // the timer was dropped when the block came
        args.accept_socket().close();
        ::close(c);
      }
    }(listener, ep));
  }

  TEST_CASE_FIXTURE(test::listening, "a client that vanishes during an accept with a buffer costs only its own connection") {
    endpoint ep = listener.local_endpoint();
    std::size_t before = test::open_fds();
    ctx.block_on([](io_context& ctx, socket& l, endpoint ep) -> task<void> {
      std::array<std::byte, 256> buf{};
      accept_args args;
      args.set_buffer(buf);
      // It connects, then resets before sending its first block.
      int gone = test::blocking_connect(ep);
      linger lg{1, 0};
      ::setsockopt(gone, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::close(gone);
      std::error_code ec = co_await l.accept_async(args, 2s);
      CHECK(ec == std::errc::connection_reset);
      CHECK_FALSE(is_fatal(ec));
      CHECK_FALSE(args.accept_socket().is_open());  // its descriptor was closed for us
      // The next client is served normally.
      int ok = test::blocking_connect(ep);
      REQUIRE(::send(ok, "hi", 2, 0) == 2);
      ec = co_await l.accept_async(args, 2s);
      CHECK(!ec);
      CHECK(args.bytes_transferred() == 2);
      args.accept_socket().close();
      ::close(ok);
      co_await sleep_for(ctx, 10ms);
    }(ctx, listener, ep));
    CHECK(test::open_fds() == before);
  }

  TEST_CASE_FIXTURE(test::listening, "no descriptor leaks across 5,000 connect/accept/close cycles") {
    auto cycles = [](io_context& ctx, socket& l) -> task<void> {
      for (int i = 0; i < 5000; ++i) {
        auto [server, client] = co_await test::connected_pair(ctx, l);
        server.close();
        client.close();
      }
    };
    ctx.block_on([](io_context& ctx) -> task<void> { co_await sleep_for(ctx, 1ms); }(ctx));
    std::size_t before = test::open_fds();
    ctx.block_on(cycles(ctx, listener));
    CHECK(test::open_fds() == before);
  }

  TEST_CASE("an accept storm under a lowered RLIMIT_NOFILE (child process): real EMFILE, all served") {
    constexpr std::size_t room = 12, storm = 80;
    int pipefd[2];
    REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(pipefd[0]);
      storm_child(pipefd[1], room, storm);
    }
    ::close(pipefd[1]);
    auto read_full = [&](void* p, std::size_t n) {  // retried on EINTR like every blocking call
      ssize_t r;
      do r = ::read(pipefd[0], p, n);
      while (r < 0 && errno == EINTR);
      return r == static_cast<ssize_t>(n);
    };
    int port = 0;
    REQUIRE(read_full(&port, sizeof port));
    endpoint ep = endpoint::parse("127.0.0.1:" + std::to_string(port));
    // The storm: every client connects at once (the kernel's backlog takes them), far more than
    // the server has descriptors for. Then each, in order, is echoed and leaves.
    std::vector<int> clients;
    for (std::size_t i = 0; i < storm; ++i) {
      int fd = test::blocking_connect(ep);
      REQUIRE(fd >= 0);
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      clients.push_back(fd);
    }
    std::size_t echoed = 0;
    for (int fd : clients) {
      char out[64], in[64];
      std::snprintf(out, sizeof out, "client %d says hello", fd);
      const std::size_t n = std::strlen(out);
      std::size_t got = 0;
      if (::send(fd, out, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n)) {
        while (got < n) {
          ssize_t r = ::recv(fd, in + got, n - got, 0);
          if (r < 0 && errno == EINTR) continue;  // a blocking call may be interrupted: retry
          if (r <= 0) break;
          got += static_cast<std::size_t>(r);
        }
      }
      echoed += got == n && std::memcmp(in, out, n) == 0;
      ::close(fd);
    }
    storm_report rep;
    const bool reported = read_full(&rep, sizeof rep);
    ::close(pipefd[0]);
    int status = 0;
    pid_t w;
    do w = ::waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    REQUIRE(w == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    REQUIRE(reported);
    CHECK(echoed == storm);           // every client of the storm was served
    CHECK(rep.accepted == storm);
    CHECK(rep.emfile >= 1);           // the limit was really hit, and the server recovered
    MESSAGE("storm of " << storm << " clients, room for " << room << ": " << rep.emfile
                        << " EMFILE reports");
  }
}

}  // namespace rstest
