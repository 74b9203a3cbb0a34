#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

namespace {

task<std::string> echo_round_trip(io_context& ctx, socket& listener, std::string msg) {
  ctx.spawn(test::echo_server(ctx, listener, 1));
  co_return co_await test::echo_client(ctx, listener.local_endpoint(), msg);
}

task<void> args_echo(io_context& ctx, socket& listener) {
  auto server = [](socket& l) -> task<void> {
    accept_args a;
    if (std::error_code ec = co_await l.accept_async(a)) co_return;
    socket s = std::move(a.accept_socket());
    std::array<std::byte, 64> buf;
    socket_args io;
    for (;;) {
      io.set_buffer(buf);
      std::error_code ec = co_await s.receive_async(io);
      if (ec || io.bytes_transferred() == 0) break;
      io.set_buffer({buf.data(), io.bytes_transferred()});
      ec = co_await s.send_all_async(io);
      if (ec) break;
    }
  };
  ctx.spawn(server(listener));
  socket c(ctx, address_family::ipv4);
  socket_args a;
  a.set_remote_endpoint(listener.local_endpoint());
  std::error_code ec = co_await c.connect_async(a);
  REQUIRE(!ec);
  std::string msg = "args form";
  a.set_buffer({const_cast<std::byte*>(test::bytes(msg).data()), msg.size()});
  ec = co_await c.send_async(a);
  CHECK(!ec);
  CHECK(a.bytes_transferred() == msg.size());
  CHECK(a.last_operation() == socket_operation::send);
  std::array<std::byte, 64> in{};
  a.set_buffer(in);
  ec = co_await c.receive_async(a);
  CHECK(!ec);
  CHECK(test::str({in.data(), a.bytes_transferred()}) == msg);
  c.shutdown(shutdown_how::send);
  ec = co_await c.receive_async(a);
  CHECK(!ec);
  CHECK(a.bytes_transferred() == 0);  // end of stream is a value
}

}  // namespace

TEST_SUITE("socket") {
  TEST_CASE_FIXTURE(test::listening, "echo round trip over IPv4") {
    CHECK(ctx.block_on(echo_round_trip(ctx, l, "hello over ipv4")) == "hello over ipv4");
  }

  TEST_CASE("echo round trip over IPv6") {
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::parse("[::1]:0"));
    CHECK(l.local_endpoint().family() == address_family::ipv6);
    CHECK(ctx.block_on(echo_round_trip(ctx, l, "hello over ipv6")) == "hello over ipv6");
  }

  TEST_CASE("echo round trip over a Unix-domain socket") {
    io_context ctx;
    std::string path = test::temp_socket_path("echo");
    ::unlink(path.c_str());
    socket l = socket::listen(ctx, endpoint::parse("unix:" + path));
    CHECK(l.local_endpoint().to_string() == "unix:" + path);
    CHECK(ctx.block_on(echo_round_trip(ctx, l, "hello over unix")) == "hello over unix");
    ::unlink(path.c_str());
  }

  TEST_CASE_FIXTURE(test::listening, "a large echo goes through short sends and arrives whole") {
    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    CHECK(ctx.block_on(echo_round_trip(ctx, l, big)) == big);
  }

  TEST_CASE_FIXTURE(test::listening, "the args form of connect, send, receive and send_all") {
    ctx.block_on(args_echo(ctx, l));
  }

  TEST_CASE("connect to a closed port: connection_refused in args form, socket_error in plain") {
    io_context ctx;
    endpoint closed_port;
    {
      socket tmp = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      closed_port = tmp.local_endpoint();
    }
    auto run = [](io_context& ctx, endpoint ep) -> task<void> {
      socket s(ctx, address_family::ipv4);
      socket_args a;
      a.set_remote_endpoint(ep);
      std::error_code ec = co_await s.connect_async(a);
      CHECK(ec == std::errc::connection_refused);
      CHECK(a.error() == std::errc::connection_refused);
      bool threw = false;
      try {
        co_await socket::connect_async(ctx, ep);
      } catch (const socket_error& e) {
        threw = e.code() == std::errc::connection_refused;
      }
      CHECK(threw);
    };
    ctx.block_on(run(ctx, closed_port));
  }

  TEST_CASE("UDP datagrams: send_to and receive_from in both forms") {
    io_context ctx;
    auto run = [](io_context& ctx) -> task<void> {
      socket a(ctx, address_family::ipv4, socket_type::datagram);
      socket b(ctx, address_family::ipv4, socket_type::datagram);
      a.bind(endpoint::loopback(address_family::ipv4));
      b.bind(endpoint::loopback(address_family::ipv4));
      std::size_t n = co_await a.send_to_async(test::bytes("ping"), b.local_endpoint());
      CHECK(n == 4);
      std::array<std::byte, 32> buf{};
      endpoint from;
      n = co_await b.receive_from_async(buf, from);
      CHECK(test::str({buf.data(), n}) == "ping");
      CHECK(from == a.local_endpoint());

      socket_args args;
      std::string pong = "pong";
      args.set_buffer({reinterpret_cast<std::byte*>(pong.data()), pong.size()});
      args.set_remote_endpoint(from);
      CHECK(!co_await b.send_to_async(args));
      CHECK(args.bytes_transferred() == 4);
      socket_args in;
      in.set_buffer(buf);
      CHECK(!co_await a.receive_from_async(in));
      CHECK(test::str({buf.data(), in.bytes_transferred()}) == "pong");
      CHECK(in.remote_endpoint() == b.local_endpoint());
    };
    ctx.block_on(run(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "a socket closed outside the loop releases its descriptor at once") {
    test::socket_pair p = ctx.block_on(test::connected_pair(ctx, l));
    socket c = std::move(p.client);  // used by the ring: its close goes through the ring
    std::size_t before = test::open_fds();
    c.close();
    CHECK(test::open_fds() == before - 1);
  }

  TEST_CASE_FIXTURE(test::listening, "no descriptor of the ring, listener or connections crosses an exec") {
    auto [s, c] = ctx.block_on(test::connected_pair(ctx, l));
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);  // dup2 clears CLOEXEC on the copy: stdout is meant to be inherited
      ::execl("/bin/ls", "ls", "-l", "/proc/self/fd", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    std::string listing;
    char buf[256];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) listing.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    // Whatever else the parent inherited itself, nothing of ringsock's may appear in the child:
    // not the ring, not the wake-up eventfd, not a socket.
    CAPTURE(listing);
    CHECK(listing.find("io_uring") == std::string::npos);
    CHECK(listing.find("eventfd") == std::string::npos);
    CHECK(listing.find("socket:") == std::string::npos);
    CHECK(listing.find("/proc/") != std::string::npos);  // the listing itself worked
  }

  TEST_CASE_FIXTURE(test::listening, "options and endpoints of a connected pair") {
    auto run = [](io_context& ctx, socket& l) -> task<void> {
      auto [s, c] = co_await test::connected_pair(ctx, l);
      c.set_no_delay(true);
      CHECK(c.no_delay());
      c.set_keep_alive(true);
      CHECK(c.keep_alive());
      c.set_receive_buffer_size(1 << 16);
      CHECK(c.receive_buffer_size() >= (1 << 16));
      c.set_send_buffer_size(1 << 16);
      CHECK(c.send_buffer_size() >= (1 << 16));
      CHECK(s.remote_endpoint() == c.local_endpoint());
      CHECK(c.remote_endpoint() == l.local_endpoint());
      CHECK((::fcntl(s.native_handle(), F_GETFD) & FD_CLOEXEC) != 0);
      CHECK((::fcntl(c.native_handle(), F_GETFD) & FD_CLOEXEC) != 0);
      CHECK((::fcntl(l.native_handle(), F_GETFD) & FD_CLOEXEC) != 0);
    };
    ctx.block_on(run(ctx, l));
  }

  TEST_CASE_FIXTURE(test::listening, "a client reset mid-stream ends only its session; the server keeps serving") {
    auto run = [](io_context& ctx, socket& l) -> task<void> {
      std::error_code seen;
      auto session = [](socket s, std::error_code& seen) -> task<void> {
        std::array<std::byte, 4096> buf;
        socket_args rx;
        for (;;) {
          rx.set_buffer(buf);
          std::error_code ec = co_await s.receive_async(rx);
          if (ec) {
            seen = ec;
            co_return;
          }
          if (rx.bytes_transferred() == 0) co_return;
        }
      };
      int rude = test::blocking_connect(l.local_endpoint());
      socket s1 = co_await l.accept_async();
      ctx.spawn(session(std::move(s1), seen));
      std::string part(1000, 'r');
      ::send(rude, part.data(), part.size(), 0);
      co_await sleep_for(ctx, 10ms);
      linger lg{1, 0};
      ::setsockopt(rude, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::send(rude, part.data(), part.size(), 0);
      ::close(rude);  // RST with data in flight
      co_await sleep_for(ctx, 20ms);
      CHECK(seen == std::errc::connection_reset);
      // Another client still gets its echo through the same listener.
      ctx.spawn(test::echo_server(ctx, l, 1));
      std::string back = co_await test::echo_client(ctx, l.local_endpoint(), "still here");
      CHECK(back == "still here");
    };
    ctx.block_on(run(ctx, l));
  }

  TEST_CASE("a plain-form session a reset ends (socket_error escapes the task) costs only itself") {
    io_context ctx;  // the default exception handler: no handler set
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    auto run = [](io_context& ctx, socket& l) -> task<void> {
      int rude = test::blocking_connect(l.local_endpoint());
      ctx.spawn(test::echo_session(co_await l.accept_async()));  // catches nothing
      std::string part(1000, 'r');
      ::send(rude, part.data(), part.size(), 0);
      co_await sleep_for(ctx, 10ms);
      linger lg{1, 0};
      ::setsockopt(rude, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::close(rude);  // RST while the session waits in a receive
      co_await sleep_for(ctx, 20ms);
      CHECK(ctx.stats().tasks_ended_by_io_error == 1);
      ctx.spawn(test::echo_server(ctx, l, 1));
      std::string back = co_await test::echo_client(ctx, l.local_endpoint(), "still here");
      CHECK(back == "still here");
    };
    ctx.block_on(run(ctx, l));
    CHECK(ctx.stats().tasks_ended_by_io_error == 1);
  }

  TEST_CASE_FIXTURE(test::listening, "a send to a peer that is gone fails with EPIPE or ECONNRESET, never SIGPIPE") {
    auto run = [](io_context& ctx, socket& l) -> task<void> {
      auto [s, c] = co_await test::connected_pair(ctx, l);
      s.close();
      co_await sleep_for(ctx, 10ms);
      std::string chunk(65536, 'x');
      std::error_code last;
      socket_args a;
      a.set_buffer({reinterpret_cast<std::byte*>(chunk.data()), chunk.size()});
      for (int i = 0; i < 100 && !last; ++i) last = co_await c.send_async(a);
      CHECK((last == std::errc::broken_pipe || last == std::errc::connection_reset));
    };
    ctx.block_on(run(ctx, l));
  }
}

}  // namespace rstest
