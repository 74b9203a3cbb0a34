// tests/COMPAT_BEHAVIOURS.md, behaviours 12-16: BeginAccept / EndAccept and IAsyncResult, plus Begin/End of
// connect, receive, send and disconnect.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <string>
#include <thread>

#include "compat_support.hpp"

namespace ctest {

using namespace std::chrono_literals;

TEST_SUITE("compat begin/end") {
  TEST_CASE("12: BeginAccept's IAsyncResult carries the state; the callback runs once with it") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    std::shared_ptr<IAsyncResult> seen;
    int calls = 0;
    auto ar = l->BeginAccept(
        [&](std::shared_ptr<IAsyncResult> r) {
          ++calls;
          seen = r;
        },
        std::string("state"));
    CHECK(std::any_cast<std::string>(ar->AsyncState()) == "state");
    CHECK(calls == 0);
    int fd = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return calls > 0; }));
    settle(ctx, 10ms);
    CHECK(calls == 1);
    CHECK(seen == ar);
    auto s = l->EndAccept(ar);
    CHECK(s->Connected());
    ::close(fd);
  }

  TEST_CASE("12: BeginAccept throws for a disposed, unbound or non-listening socket") {
    ringsock::io_context ctx;
    auto s = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                      ProtocolType::Tcp);
    CHECK_THROWS_WITH_AS(s->BeginAccept(nullptr, {}), doctest::Contains("Bind"), InvalidOperationException);
    s->Bind(IPEndPoint(IPAddress::Loopback, 0));
    CHECK_THROWS_WITH_AS(s->BeginAccept(nullptr, {}), doctest::Contains("Listen"), InvalidOperationException);
    s->Dispose();
    CHECK_THROWS_AS(s->BeginAccept(nullptr, {}), ObjectDisposedException);
  }

  TEST_CASE("13: EndAccept before completion drives the loop on the owning thread") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto ar = l->BeginAccept(nullptr, {});
    ringsock::endpoint ep = endpoint_of(l);
    std::thread client([ep] {
      std::this_thread::sleep_for(30ms);
      int fd = test::blocking_connect(ep);
      std::this_thread::sleep_for(100ms);
      ::close(fd);
    });
    auto s = l->EndAccept(ar);  // blocks here, running the loop, until the connection is in
    CHECK(s->Connected());
    CHECK(ar->IsCompleted());
    client.join();
  }

  TEST_CASE("13: EndAccept from another thread waits for the loop's completion") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto ar = l->BeginAccept(nullptr, {});
    std::atomic<bool> ended{false};
    std::shared_ptr<Socket> got;
    std::thread other([&] {
      got = l->EndAccept(ar);
      ended = true;
    });
    int fd = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return ar->IsCompleted(); }));
    other.join();  // its EndAccept returns once the loop completed the accept
    CHECK(ended.load());
    REQUIRE(got);
    CHECK(got->Connected());
    ::close(fd);
  }

  TEST_CASE("14: EndAccept rejects null, foreign and already-ended results") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto l2 = listener(ctx);
    try {
      l->EndAccept(nullptr);
      FAIL("no exception");
    } catch (const ArgumentNullException& e) {
      CHECK(e.ParamName() == "asyncResult");
    }
    auto ar = l->BeginAccept(nullptr, {});
    auto other = l2->BeginAccept(nullptr, {});
    try {
      l->EndAccept(other);  // from another socket
      FAIL("no exception");
    } catch (const ArgumentException& e) {
      CHECK(e.ParamName() == "asyncResult");
    }
    int fd = test::blocking_connect(endpoint_of(l));
    auto s = l->EndAccept(ar);
    CHECK(s);
    CHECK_THROWS_AS(l->EndAccept(ar), InvalidOperationException);  // twice
    // From another operation of the same socket.
    std::array<std::byte, 8> buf{};
    auto rar = s->BeginReceive(buf, 0, 8, SocketFlags::None, nullptr, {});
    CHECK_THROWS_AS(s->EndSend(rar), ArgumentException);
    CHECK_THROWS_AS(l->EndAccept(rar), ArgumentException);
    ::close(fd);
    CHECK(s->EndReceive(rar) == 0);  // the peer closed: end of stream
    l2->Close();
    CHECK(drive(ctx, [&] { return other->IsCompleted(); }));
  }

  TEST_CASE("14: closing the listener makes a pending EndAccept throw OperationAborted") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto ar = l->BeginAccept(nullptr, {});
    settle(ctx, 5ms);
    l->Close();
    try {
      l->EndAccept(ar);
      FAIL("no exception");
    } catch (const SocketException& e) {
      CHECK(e.SocketErrorCode() == SocketError::OperationAborted);
      CHECK(e.ErrorCode() == ECANCELED);  // .NET on Linux: ErrorCode is the errno (125)
      CHECK(e.NativeErrorCode() == ECANCELED);
    }
  }

  TEST_CASE("15: IsCompleted, CompletedSynchronously and the wait handle") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    int calls = 0;
    auto cb = [&calls](std::shared_ptr<IAsyncResult>) { ++calls; };
    auto ar = l->BeginAccept(cb, {});
    CHECK_FALSE(ar->IsCompleted());
    CHECK_FALSE(ar->AsyncWaitHandle().WaitOne(10));  // times out: nothing connected
    int fd = test::blocking_connect(endpoint_of(l));
    CHECK(ar->AsyncWaitHandle().WaitOne());
    CHECK(ar->IsCompleted());
    CHECK_FALSE(ar->CompletedSynchronously());
    CHECK(l->EndAccept(ar));
    // A queued connection: the result is there inline.
    int fd2 = test::blocking_connect(endpoint_of(l));
    settle(ctx);
    auto ar2 = l->BeginAccept(cb, {});
    CHECK(ar2->IsCompleted());
    CHECK(ar2->CompletedSynchronously());
    int before = calls;
    CHECK(calls == before);  // the callback is not run on the caller's stack ...
    settle(ctx, 5ms);
    CHECK(calls == before + 1);  // ... but on a following loop turn
    CHECK(l->EndAccept(ar2));
    ::close(fd), ::close(fd2);
  }

  TEST_CASE("16: BeginAccept(receiveSize) and EndAccept(buffer, bytesTransferred, ar)") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto ar = l->BeginAccept(256, nullptr, {});
    int fd = test::blocking_connect(endpoint_of(l));
    std::string hello = "first bytes";
    ::send(fd, hello.data(), hello.size(), 0);
    std::vector<std::byte> buffer;
    int n = -1;
    auto s = l->EndAccept(buffer, n, ar);
    REQUIRE(s);
    CHECK(n == static_cast<int>(hello.size()));
    CHECK(test::str(buffer) == hello);
    // With a given accept socket.
    auto into = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                         ProtocolType::Tcp);
    auto ar2 = l->BeginAccept(into, 0, nullptr, {});
    int fd2 = test::blocking_connect(endpoint_of(l));
    CHECK(l->EndAccept(ar2) == into);
    CHECK(into->Connected());
    ::close(fd), ::close(fd2);
  }

  TEST_CASE("a context destroyed with compat operations pending releases them, calling nobody") {
    struct counted {
      int* alive;
      explicit counted(int* a) : alive(a) { ++*alive; }
      counted(const counted& o) : alive(o.alive) { ++*alive; }
      ~counted() { --*alive; }
    };
    int alive = 0, calls = 0;
    SocketAsyncEventArgs e;  // outlives the context, as it must
    std::weak_ptr<Socket> weak;
    {
      ringsock::io_context ctx;
      auto l = listener(ctx);
      weak = l;
      auto held = std::make_shared<counted>(&alive);
      l->BeginAccept([held, &calls](std::shared_ptr<IAsyncResult>) { ++calls; }, held);
      e.Completed += [&calls](Socket&, SocketAsyncEventArgs&) { ++calls; };
      REQUIRE(l->AcceptAsync(e));
      held.reset();
      CHECK(alive == 1);  // the pending operation keeps its callback and state
    }  // `l` is released here; the pending operations hold the socket until the context dies
    CHECK(alive == 0);
    CHECK(calls == 0);
    CHECK(weak.expired());
    CHECK_FALSE(e.in_use());
    CHECK(e.SocketError() == SocketError::OperationAborted);
  }

  TEST_CASE("connect, send, receive and disconnect in the Begin/End style") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    auto accept_ar = l->BeginAccept(nullptr, {});
    auto c = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                      ProtocolType::Tcp);
    auto car = c->BeginConnect(*l->LocalEndPoint(), nullptr, {});
    c->EndConnect(car);
    CHECK(c->Connected());
    auto s = l->EndAccept(accept_ar);
    std::string msg = "begin/end";
    auto sar = c->BeginSend(std::as_bytes(std::span(msg)), 0, static_cast<int>(msg.size()),
                            SocketFlags::None, nullptr, {});
    CHECK(c->EndSend(sar) == static_cast<int>(msg.size()));
    std::array<std::byte, 32> buf{};
    auto rar = s->BeginReceive(buf, 2, 20, SocketFlags::None, nullptr, {});
    int n = s->EndReceive(rar);
    CHECK(test::str({buf.data() + 2, static_cast<std::size_t>(n)}) == msg);
    CHECK_THROWS_AS(s->BeginReceive(buf, 30, 5, SocketFlags::None, nullptr, {}),
                    ArgumentOutOfRangeException);
    auto dar = c->BeginDisconnect(false, nullptr, {});
    CHECK(dar->CompletedSynchronously());
    c->EndDisconnect(dar);
    CHECK_FALSE(c->Connected());
    // A refused connect surfaces from EndConnect as a SocketException.
    const int closed_port = port_of(l);
    l->Close();
    settle(ctx);
    auto c2 = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                       ProtocolType::Tcp);
    auto ar = c2->BeginConnect(IPEndPoint(IPAddress::Loopback, closed_port), nullptr, {});
    try {
      c2->EndConnect(ar);
      FAIL("no exception");
    } catch (const SocketException& e) {
      CHECK(e.SocketErrorCode() == SocketError::ConnectionRefused);
    }
  }
}

}  // namespace ctest
