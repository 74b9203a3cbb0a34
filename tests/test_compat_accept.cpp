// tests/COMPAT_BEHAVIOURS.md, behaviours 1-7: Socket.AcceptAsync(SocketAsyncEventArgs).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>

#include "compat_support.hpp"

namespace ctest {

namespace {
struct counter {
  int completed = 0;
  Socket* sender = nullptr;
};
}  // namespace

TEST_SUITE("compat accept") {
  TEST_CASE("1: AcceptAsync returns true when pending and raises Completed once, later") {
    for (bool v6 : {false, true}) {
      CAPTURE(v6);
      ringsock::io_context ctx;
      auto l = listener(ctx, v6);
      SocketAsyncEventArgs e;
      counter c;
      e.Completed += [&c](Socket& sender, SocketAsyncEventArgs&) {
        ++c.completed;
        c.sender = &sender;
      };
      REQUIRE(l->AcceptAsync(e));
      CHECK(c.completed == 0);  // never inside the starting call
      int fd = test::blocking_connect(endpoint_of(l));
      REQUIRE(drive(ctx, [&] { return c.completed > 0; }));
      settle(ctx, std::chrono::milliseconds(10));
      CHECK(c.completed == 1);
      CHECK(c.sender == l.get());
      CHECK(e.SocketError() == SocketError::Success);
      CHECK(e.LastOperation() == SocketAsyncOperation::Accept);
      REQUIRE(e.AcceptSocket());
      CHECK(e.AcceptSocket()->Connected());
      CHECK(e.AcceptSocket()->AddressFamily() == l->AddressFamily());
      CHECK(e.AcceptSocket()->SocketType() == SocketType::Stream);
      CHECK(e.AcceptSocket()->ProtocolType() == ProtocolType::Tcp);
      ::close(fd);
    }
  }

  TEST_CASE("2: AcceptAsync returns false when a connection was queued; Completed not raised") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e;
    int completed = 0;
    e.Completed += [&completed](Socket&, SocketAsyncEventArgs&) { ++completed; };
    // Arm the listener with a first (pending) accept.
    REQUIRE(l->AcceptAsync(e));
    int c0 = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return completed == 1; }));
    // Two clients arrive while nobody accepts: they are queued.
    int c1 = test::blocking_connect(endpoint_of(l));
    int c2 = test::blocking_connect(endpoint_of(l));
    settle(ctx);
    for (int i = 0; i < 2; ++i) {
      e.AcceptSocket(nullptr);
      CHECK_FALSE(l->AcceptAsync(e));  // synchronous: e holds the result on return
      CHECK(e.SocketError() == SocketError::Success);
      REQUIRE(e.AcceptSocket());
      CHECK(e.AcceptSocket()->Connected());
    }
    settle(ctx);
    CHECK(completed == 1);  // the synchronous ones raised nothing
    ::close(c0), ::close(c1), ::close(c2);
  }

  TEST_CASE("2: concurrent accepts complete in FIFO order") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e1, e2;
    int done = 0;
    auto h = [&done](Socket&, SocketAsyncEventArgs&) { ++done; };
    e1.Completed += h;
    e2.Completed += h;
    REQUIRE(l->AcceptAsync(e1));
    REQUIRE(l->AcceptAsync(e2));
    settle(ctx, std::chrono::milliseconds(5));
    int a = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return done == 1; }));
    int b = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return done == 2; }));
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(a, reinterpret_cast<sockaddr*>(&sa), &len);
    CHECK(std::dynamic_pointer_cast<IPEndPoint>(e1.AcceptSocket()->RemoteEndPoint())->Port() ==
          ntohs(sa.sin_port));
    ::getsockname(b, reinterpret_cast<sockaddr*>(&sa), &len);
    CHECK(std::dynamic_pointer_cast<IPEndPoint>(e2.AcceptSocket()->RemoteEndPoint())->Port() ==
          ntohs(sa.sin_port));
    ::close(a), ::close(b);
  }

  TEST_CASE("3: a given AcceptSocket receives the connection; a bound one is refused") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto into = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                         ProtocolType::Tcp);
    SocketAsyncEventArgs e;
    e.AcceptSocket(into);
    bool done = false;
    e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
    bool pending = l->AcceptAsync(e);
    int fd = test::blocking_connect(endpoint_of(l));
    if (pending) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.AcceptSocket() == into);  // the same instance comes back, connected
    CHECK(into->Connected());
    CHECK(into->RemoteEndPoint() != nullptr);

    auto bound = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                          ProtocolType::Tcp);
    bound->Bind(IPEndPoint(IPAddress::Loopback, 0));
    SocketAsyncEventArgs e2;
    e2.AcceptSocket(bound);
    CHECK_THROWS_AS(l->AcceptAsync(e2), InvalidOperationException);
    e2.AcceptSocket(into);  // connected now
    CHECK_THROWS_AS(l->AcceptAsync(e2), InvalidOperationException);
    ::close(fd);
  }

  TEST_CASE("4: UserToken round-trips untouched and is empty by default") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e;
    CHECK_FALSE(e.UserToken().has_value());
    auto token = std::make_shared<std::string>("mine");
    e.UserToken(token);
    std::shared_ptr<std::string> seen;
    e.Completed += [&seen](Socket&, SocketAsyncEventArgs& a) {
      seen = std::any_cast<std::shared_ptr<std::string>>(a.UserToken());
    };
    REQUIRE(l->AcceptAsync(e));
    int fd = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return seen != nullptr; }));
    CHECK(seen == token);
    ::close(fd);
  }

  TEST_CASE("5: with a buffer the first block lands at Offset; 64 / 88 bytes are reserved") {
    for (bool v6 : {false, true}) {
      CAPTURE(v6);
      const int reserve = v6 ? 88 : 64;
      ringsock::io_context ctx;
      auto l = listener(ctx, v6);
      std::array<std::byte, 1024> buf{};
      SocketAsyncEventArgs e;
      e.SetBuffer(buf, 10, 200);
      bool done = false;
      e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
      REQUIRE(l->AcceptAsync(e));
      int fd = test::blocking_connect(endpoint_of(l));
      settle(ctx, std::chrono::milliseconds(10));
      CHECK_FALSE(done);  // it waits for the first block of data
      std::string msg(500, 'q');
      REQUIRE(::send(fd, msg.data(), msg.size(), 0) == 500);
      REQUIRE(drive(ctx, [&] { return done; }));
      CHECK(e.SocketError() == SocketError::Success);
      CHECK(e.BytesTransferred() > 0);
      CHECK(e.BytesTransferred() <= 200 - reserve);
      CHECK(e.BytesTransferred() < e.Count());
      CHECK(buf[10] == std::byte{'q'});
      CHECK(buf[9] == std::byte{0});  // nothing before the window
      ::close(fd);

      SocketAsyncEventArgs small;
      small.SetBuffer(buf, 0, reserve - 1);
      try {
        l->AcceptAsync(small);
        FAIL("no exception");
      } catch (const ArgumentException& ex) {
        CHECK(ex.ParamName() == "Count");
      }
      CHECK_FALSE(small.in_use());
    }
  }

  TEST_CASE("6: misuse is reported in the order of behaviour 6, before anything is submitted") {
    ringsock::io_context ctx;
    std::array<std::byte, 16> tiny{};
    // Disposed socket: ObjectDisposedException, even with a null e.
    auto gone = listener(ctx);
    gone->Dispose();
    CHECK_THROWS_AS(gone->AcceptAsync(static_cast<SocketAsyncEventArgs*>(nullptr)),
                    ObjectDisposedException);
    // Null e.
    auto l = listener(ctx);
    try {
      l->AcceptAsync(static_cast<SocketAsyncEventArgs*>(nullptr));
      FAIL("no exception");
    } catch (const ArgumentNullException& ex) {
      CHECK(ex.ParamName() == "e");
    }
    // BufferList set (checked before "not bound").
    auto unbound = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                            ProtocolType::Tcp);
    SocketAsyncEventArgs e;
    e.BufferList({std::span<std::byte>(tiny)});
    try {
      unbound->AcceptAsync(e);
      FAIL("no exception");
    } catch (const ArgumentException& ex) {
      CHECK(ex.ParamName() == "e");
    }
    e.BufferList(nullptr);
    // Not bound, then not listening.
    CHECK_THROWS_WITH_AS(unbound->AcceptAsync(e), doctest::Contains("Bind"), InvalidOperationException);
    unbound->Bind(IPEndPoint(IPAddress::Loopback, 0));
    CHECK_THROWS_WITH_AS(unbound->AcceptAsync(e), doctest::Contains("Listen"), InvalidOperationException);
    // e in use (checked before "e disposed" and the buffer size).
    auto sqes = ctx.stats().sqes_submitted;
    REQUIRE(l->AcceptAsync(e));
    e.Dispose();
    CHECK_THROWS_WITH_AS(l->AcceptAsync(e), doctest::Contains("already in progress"),
                         InvalidOperationException);
    // The pending accept still completes (Dispose is deferred) and raises Completed.
    bool done = false;
    e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
    int fd = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::Success);
    // e disposed.
    CHECK_THROWS_AS(l->AcceptAsync(e), ObjectDisposedException);
    // Buffer too small, on fresh args: and the args stay reusable after every failure.
    SocketAsyncEventArgs f;
    f.SetBuffer(tiny, 0, 16);
    CHECK_THROWS_AS(l->AcceptAsync(f), ArgumentException);
    f.SetBuffer(std::span<std::byte>{}, 0, 0);
    int fd2 = test::blocking_connect(endpoint_of(l));
    settle(ctx);
    bool pending = l->AcceptAsync(f);
    if (pending) REQUIRE(drive(ctx, [&] { return !f.in_use(); }));
    CHECK(f.AcceptSocket() != nullptr);
    CHECK(ctx.stats().sqes_submitted >= sqes);
    ::close(fd), ::close(fd2);
  }

  TEST_CASE("7: closing the listener completes pending accepts once with OperationAborted") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e1, e2;
    int aborted = 0, other = 0;
    auto h = [&](Socket&, SocketAsyncEventArgs& a) {
      (a.SocketError() == SocketError::OperationAborted ? aborted : other)++;
    };
    e1.Completed += h;
    e2.Completed += h;
    REQUIRE(l->AcceptAsync(e1));
    REQUIRE(l->AcceptAsync(e2));
    settle(ctx, std::chrono::milliseconds(5));
    l->Close();
    CHECK(aborted == 0);  // on a following loop turn, not inside Close()
    settle(ctx);
    CHECK(aborted == 2);
    CHECK(other == 0);
    CHECK_THROWS_AS(l->AcceptAsync(e1), ObjectDisposedException);
  }

  TEST_CASE("7: connections accepted but never claimed are closed with the listener") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e;
    bool done = false;
    e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
    REQUIRE(l->AcceptAsync(e));
    int first = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return done; }));
    int queued = test::blocking_connect(endpoint_of(l));
    settle(ctx);
    l->Close();
    settle(ctx);
    char c;
    CHECK(::recv(queued, &c, 1, 0) == 0);  // the server side was closed
    ::close(first), ::close(queued);
  }
}

}  // namespace ctest
