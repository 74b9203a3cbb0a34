// tests/COMPAT_BEHAVIOURS.md, behaviours 8-11 (SocketAsyncEventArgs) and the event-args pattern of connect,
// receive, send, disconnect, receive-from and send-to.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <string>
#include <thread>

#include "compat_support.hpp"

namespace ctest {

namespace {

// A connected pair: `server` through AcceptAsync, `client` through ConnectAsync.
struct pair {
  std::shared_ptr<Socket> server, client;
};

pair connect_pair(ringsock::io_context& ctx, const std::shared_ptr<Socket>& l) {
  pair p;
  p.client = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                      ProtocolType::Tcp);
  SocketAsyncEventArgs a, c;
  bool accepted = false, connected = false;
  a.Completed += [&](Socket&, SocketAsyncEventArgs&) { accepted = true; };
  c.Completed += [&](Socket&, SocketAsyncEventArgs&) { connected = true; };
  c.RemoteEndPoint(*l->LocalEndPoint());
  if (!l->AcceptAsync(a)) accepted = true;
  if (!p.client->ConnectAsync(c)) connected = true;
  REQUIRE(drive(ctx, [&] { return accepted && connected; }));
  REQUIRE(a.SocketError() == SocketError::Success);
  REQUIRE(c.SocketError() == SocketError::Success);
  CHECK(c.ConnectSocket() == p.client);
  CHECK(c.LastOperation() == SocketAsyncOperation::Connect);
  p.server = a.AcceptSocket();
  return p;
}

std::span<std::byte> as_span(std::string& s) {
  return {reinterpret_cast<std::byte*>(s.data()), s.size()};
}

}  // namespace

TEST_SUITE("compat event args") {
  TEST_CASE("connect, send and receive: pending, Completed exactly once, results in e") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    CHECK(p.client->Connected());
    CHECK(p.server->Connected());

    std::array<std::byte, 64> in{};
    SocketAsyncEventArgs r;
    r.SetBuffer(in, 4, 32);
    int receives = 0;
    r.Completed += [&receives](Socket& s, SocketAsyncEventArgs& e) {
      CHECK(e.LastOperation() == SocketAsyncOperation::Receive);
      CHECK(s.Connected());
      ++receives;
    };
    REQUIRE(p.server->ReceiveAsync(r));  // nothing there yet: pending
    CHECK(receives == 0);

    std::string msg = "hello compat";
    SocketAsyncEventArgs s;
    s.SetBuffer(as_span(msg), 0, static_cast<int>(msg.size()));
    int sends = 0;
    s.Completed += [&sends](Socket&, SocketAsyncEventArgs&) { ++sends; };
    bool send_pending = p.client->SendAsync(s);
    REQUIRE(drive(ctx, [&] { return receives == 1 && (sends == 1 || !send_pending); }));
    settle(ctx, std::chrono::milliseconds(10));
    CHECK(receives == 1);
    CHECK(sends == (send_pending ? 1 : 0));
    CHECK(s.BytesTransferred() == static_cast<int>(msg.size()));
    CHECK(r.BytesTransferred() == static_cast<int>(msg.size()));
    CHECK(test::str({in.data() + 4, msg.size()}) == msg);
    CHECK(r.SocketError() == SocketError::Success);

    // End of stream is 0 bytes and Success.
    p.client->Shutdown(SocketShutdown::Send);
    REQUIRE(p.server->ReceiveAsync(r));
    REQUIRE(drive(ctx, [&] { return receives == 2; }));
    CHECK(r.BytesTransferred() == 0);
    CHECK(r.SocketError() == SocketError::Success);
  }

  TEST_CASE("receive, send and connect check disposed sockets and args in use") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    std::array<std::byte, 8> buf{};
    SocketAsyncEventArgs r;
    r.SetBuffer(buf, 0, 8);
    REQUIRE(p.server->ReceiveAsync(r));
    CHECK_THROWS_AS(p.server->ReceiveAsync(r), InvalidOperationException);
    CHECK_THROWS_AS(p.client->SendAsync(r), InvalidOperationException);
    CHECK_THROWS_AS(p.server->ReceiveAsync(static_cast<SocketAsyncEventArgs*>(nullptr)),
                    ArgumentNullException);
    // Disposing the socket aborts the pending receive, once.
    int completions = 0;
    SocketError seen = SocketError::Success;
    r.Completed += [&](Socket&, SocketAsyncEventArgs& e) {
      ++completions;
      seen = e.SocketError();
    };
    p.server->Dispose();
    settle(ctx);
    CHECK(completions == 1);
    CHECK(seen == SocketError::OperationAborted);
    CHECK_THROWS_AS(p.server->ReceiveAsync(r), ObjectDisposedException);
    CHECK_THROWS_AS(p.server->SendAsync(r), ObjectDisposedException);
    SocketAsyncEventArgs c;
    CHECK_THROWS_AS(p.client->ConnectAsync(c), ArgumentNullException);  // no RemoteEndPoint
    r.Dispose();
    CHECK_THROWS_AS(p.client->ReceiveAsync(r), ObjectDisposedException);
  }

  TEST_CASE("connect to a closed port completes with ConnectionRefused") {
    ringsock::io_context ctx;
    ringsock::endpoint closed;
    {
      auto tmp = listener(ctx);
      closed = endpoint_of(tmp);
    }
    auto c = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                      ProtocolType::Tcp);
    SocketAsyncEventArgs e;
    e.RemoteEndPoint(IPEndPoint(closed));
    bool done = false;
    e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
    if (c->ConnectAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::ConnectionRefused);
    CHECK_FALSE(c->Connected());
  }

  TEST_CASE("disconnect completes synchronously; with reuse the socket can connect again") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    SocketAsyncEventArgs d;
    d.DisconnectReuseSocket(true);
    CHECK_FALSE(p.client->DisconnectAsync(d));
    CHECK(d.SocketError() == SocketError::Success);
    CHECK(d.LastOperation() == SocketAsyncOperation::Disconnect);
    CHECK_FALSE(p.client->Connected());
    std::array<std::byte, 4> buf{};
    SocketAsyncEventArgs r;
    r.SetBuffer(buf, 0, 4);
    bool eof = false;
    r.Completed += [&eof](Socket&, SocketAsyncEventArgs& e) { eof = e.BytesTransferred() == 0; };
    if (p.server->ReceiveAsync(r)) REQUIRE(drive(ctx, [&] { return eof; }));
    CHECK(eof);  // the peer saw the disconnect
    // Reconnecting is asynchronous only (.NET 10 here: a synchronous Connect after Disconnect
    // throws InvalidOperationException, see test_compat_dotnet.cpp).
    SocketAsyncEventArgs again;
    again.RemoteEndPoint(*l->LocalEndPoint());
    bool connected = false;
    again.Completed += [&connected](Socket&, SocketAsyncEventArgs&) { connected = true; };
    if (p.client->ConnectAsync(again)) REQUIRE(drive(ctx, [&] { return connected; }));
    CHECK(again.SocketError() == SocketError::Success);
    CHECK(p.client->Connected());
  }

  TEST_CASE("datagrams: SendToAsync and ReceiveFromAsync") {
    ringsock::io_context ctx;
    auto a = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Dgram, ProtocolType::Udp);
    auto b = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Dgram, ProtocolType::Udp);
    a->Bind(IPEndPoint(IPAddress::Loopback, 0));
    b->Bind(IPEndPoint(IPAddress::Loopback, 0));
    std::array<std::byte, 32> in{};
    SocketAsyncEventArgs r;
    r.SetBuffer(in, 0, 32);
    r.RemoteEndPoint(IPEndPoint(IPAddress::Any, 0));
    bool got = false;
    r.Completed += [&got](Socket&, SocketAsyncEventArgs&) { got = true; };
    REQUIRE(b->ReceiveFromAsync(r));
    std::string msg = "datagram";
    SocketAsyncEventArgs s;
    s.SetBuffer(as_span(msg), 0, static_cast<int>(msg.size()));
    s.RemoteEndPoint(*b->LocalEndPoint());
    bool sent = false;
    s.Completed += [&sent](Socket&, SocketAsyncEventArgs&) { sent = true; };
    if (!a->SendToAsync(s)) sent = true;
    REQUIRE(drive(ctx, [&] { return got && sent; }));
    CHECK(r.BytesTransferred() == 8);
    CHECK(test::str({in.data(), 8}) == "datagram");
    CHECK(*r.RemoteEndPoint() == *a->LocalEndPoint());
    CHECK(r.LastOperation() == SocketAsyncOperation::ReceiveFrom);
    CHECK(s.LastOperation() == SocketAsyncOperation::SendTo);
  }

  TEST_CASE("8: SetBuffer and BufferList during an operation throw; Dispose is deferred") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    std::array<std::byte, 8> buf{};
    SocketAsyncEventArgs r;
    r.SetBuffer(buf, 0, 8);
    int completions = 0;
    r.Completed += [&completions](Socket&, SocketAsyncEventArgs&) { ++completions; };
    REQUIRE(p.server->ReceiveAsync(r));
    CHECK_THROWS_AS(r.SetBuffer(buf, 0, 4), InvalidOperationException);
    CHECK_THROWS_AS(r.SetBuffer(0, 4), InvalidOperationException);
    CHECK_THROWS_AS(r.BufferList(nullptr), InvalidOperationException);
    CHECK(r.Count() == 8);  // unchanged
    r.Dispose();
    r.Dispose();  // twice is fine
    std::string x = "x";
    ::send(p.client->Handle(), x.data(), 1, 0);
    REQUIRE(drive(ctx, [&] { return completions == 1; }));
    CHECK(r.BytesTransferred() == 1);  // the operation completed and raised Completed
    CHECK_THROWS_AS(p.server->ReceiveAsync(r), ObjectDisposedException);
  }

  TEST_CASE("9: Completed is multicast; a handler removed with -= no longer runs") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    SocketAsyncEventArgs e;
    int a = 0, b = 0;
    e.Completed += [&a](Socket&, SocketAsyncEventArgs&) { ++a; };
    auto tb = (e.Completed += [&b](Socket&, SocketAsyncEventArgs&) { ++b; });
    REQUIRE(l->AcceptAsync(e));
    int fd1 = test::blocking_connect(endpoint_of(l));
    REQUIRE(drive(ctx, [&] { return a == 1; }));
    CHECK(b == 1);
    e.Completed -= tb;
    e.AcceptSocket(nullptr);
    bool pending = l->AcceptAsync(e);
    int fd2 = test::blocking_connect(endpoint_of(l));
    if (pending) REQUIRE(drive(ctx, [&] { return a == 2; }));
    CHECK(b == 1);
    ::close(fd1), ::close(fd2);
  }

  TEST_CASE("10: SetBuffer range checks name the parameter and leave the state unchanged") {
    std::array<std::byte, 16> buf{};
    SocketAsyncEventArgs e;
    e.SetBuffer(buf, 2, 4);
    auto param = [&](auto&& f) -> std::string {
      try {
        f();
      } catch (const ArgumentOutOfRangeException& ex) {
        return ex.ParamName();
      } catch (const ArgumentException& ex) {
        return "ArgumentException:" + ex.ParamName();
      }
      return "none";
    };
    CHECK(param([&] { e.SetBuffer(buf, -1, 1); }) == "offset");
    CHECK(param([&] { e.SetBuffer(buf, 17, 0); }) == "offset");
    CHECK(param([&] { e.SetBuffer(buf, INT_MAX, 1); }) == "offset");
    CHECK(param([&] { e.SetBuffer(buf, 0, -1); }) == "count");
    CHECK(param([&] { e.SetBuffer(buf, 8, 9); }) == "count");
    CHECK(param([&] { e.SetBuffer(buf, 1, INT_MAX); }) == "count");
    CHECK(param([&] { e.SetBuffer(12, 5); }) == "count");
    CHECK(e.Offset() == 2);
    CHECK(e.Count() == 4);
    // Buffer and BufferList exclude each other.
    CHECK(param([&] { e.BufferList({std::span<std::byte>(buf)}); }).starts_with("ArgumentException"));
    CHECK(e.BufferList() == nullptr);
    e.SetBuffer(std::span<std::byte>{}, 0, 0);
    e.BufferList({std::span<std::byte>(buf)});
    CHECK(param([&] { e.SetBuffer(buf, 0, 1); }).starts_with("ArgumentException"));
    CHECK(e.Buffer().data() == nullptr);
    REQUIRE(e.BufferList() != nullptr);
    CHECK(e.BufferList()->size() == 1);
  }

  TEST_CASE("11: one SocketAsyncEventArgs across 10,000 receives allocates nothing") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    std::array<std::byte, 64> in{};
    std::array<std::byte, 64> out{};
    SocketAsyncEventArgs r;
    r.SetBuffer(in, 0, 64);
    int done = 0;
    r.Completed += [&done](Socket&, SocketAsyncEventArgs&) { ++done; };
    auto round = [&] {
      ::send(p.client->Handle(), out.data(), out.size(), 0);
      int before = done;
      if (p.server->ReceiveAsync(r)) drive(ctx, [&] { return done > before; });
    };
    for (int i = 0; i < 100; ++i) round();  // warm-up
    std::size_t start = test::new_calls();
    int received = 0;
    for (int i = 0; i < 10'000; ++i) {
      int before = done;
      ::send(p.client->Handle(), out.data(), out.size(), 0);
      if (p.server->ReceiveAsync(r)) ctx.run_until([&] { return done > before; });
      received += r.BytesTransferred();
    }
    std::size_t news = test::new_calls() - start;
    MESSAGE("operator new calls in 10,000 ReceiveAsync: " << news);
    CHECK(news == 0);
    CHECK(received > 0);
  }

  TEST_CASE("11: the classic loop (Completed starts the next receive) runs 100,000 times") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    pair p = connect_pair(ctx, l);
    constexpr int total = 100'000;
    std::array<std::byte, 1> one{};
    SocketAsyncEventArgs r;
    r.SetBuffer(one, 0, 1);
    struct loop_state {
      int completions = 0;
      int bytes = 0;
      int sync = 0;
    } st;
    r.UserToken(&st);
    r.Completed += [](Socket& s, SocketAsyncEventArgs& e) {
      auto* st = std::any_cast<loop_state*>(e.UserToken());
      for (;;) {  // .NET's pattern: process, start the next, loop while it completed inline
        ++st->completions;
        st->bytes += e.BytesTransferred();
        if (e.BytesTransferred() == 0 || e.SocketError() != SocketError::Success) return;
        if (s.ReceiveAsync(e)) return;
        ++st->sync;
      }
    };
    std::thread writer([fd = p.client->Handle()] {
      std::string data(total, 'z');
      std::size_t off = 0;
      while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, 0);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      ::shutdown(fd, SHUT_WR);
    });
    REQUIRE(p.server->ReceiveAsync(r));
    drive(ctx, [&] { return st.bytes == total && st.completions > total; },
          std::chrono::seconds(60));
    writer.join();
    CHECK(st.bytes == total);             // nothing lost
    CHECK(st.completions == total + 1);   // one per byte, plus end of stream
  }
}

  TEST_CASE("ReceiveAsync/SendAsync on a stream socket that is not connected complete synchronously "
            "(NotConnected / Shutdown, as .NET's immediate call); one connected through Handle() works") {
    ringsock::io_context ctx;
    auto s = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
    std::array<std::byte, 8> buf{};
    SocketAsyncEventArgs r, w;
    r.SetBuffer(buf, 0, 8);
    w.SetBuffer(buf, 0, 8);
    CHECK_FALSE(s->ReceiveAsync(r));
    CHECK(r.SocketError() == SocketError::NotConnected);
    CHECK(r.LastOperation() == SocketAsyncOperation::Receive);
    CHECK_FALSE(s->SendAsync(w));
    CHECK(w.SocketError() == SocketError::Shutdown);
    // Connected behind the object's back: the kernel, not the flag, decides.
    auto l = listener(ctx);
    const ringsock::endpoint ep = endpoint_of(l);
    REQUIRE(::connect(s->Handle(), ep.data(), ep.size()) == 0);
    SocketAsyncEventArgs a;
    bool accepted = false;
    a.Completed += [&accepted](Socket&, SocketAsyncEventArgs&) { accepted = true; };
    if (!l->AcceptAsync(a)) accepted = true;
    REQUIRE(drive(ctx, [&] { return accepted; }));
    auto server = a.AcceptSocket();
    bool done = false;
    r.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
    CHECK(s->ReceiveAsync(r));  // nothing sent yet: pending
    SocketAsyncEventArgs out;
    std::array<std::byte, 3> hi{std::byte{'h'}, std::byte{'i'}, std::byte{'!'}};
    out.SetBuffer(hi, 0, 3);
    bool sent = false;
    out.Completed += [&sent](Socket&, SocketAsyncEventArgs&) { sent = true; };
    if (!server->SendAsync(out)) sent = true;
    REQUIRE(drive(ctx, [&] { return done && sent; }));
    CHECK(r.SocketError() == SocketError::Success);
    CHECK(r.BytesTransferred() == 3);
    s->Dispose();
    server->Dispose();
    l->Dispose();
    settle(ctx);
  }

}  // namespace ctest
