// compat as .NET's own functional tests (dotnet/runtime, System.Net.Sockets/tests/FunctionalTests)
// expect: each case names the .NET test it follows; where it says "(.NET 10 here)" the expected
// values were read from real .NET 10 on Linux on this machine.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "compat_support.hpp"
#include "support.hpp"

namespace ctest {

namespace {

// A listening socket outside the ring (the test reads what the compat client sent).
struct raw_listener {
  int fd = -1;
  int port = 0;
  raw_listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~raw_listener() { ::close(fd); }
  // Accepts one connection and reads what arrives within a second.
  std::string accept_and_read(std::size_t want) const {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(c >= 0);
    std::string got;
    char buf[64];
    while (got.size() < want) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 1000) != 1) break;
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(c);
    return got;
  }
};

// Runs f and returns the exact type of what it threw ("" when nothing), and its ParamName.
template <class F>
std::pair<std::string, std::string> thrown(F&& f) {
  try {
    f();
  } catch (const ArgumentException& e) {
    return {typeid(e).name(), e.ParamName()};
  } catch (const std::exception& e) {
    return {typeid(e).name(), ""};
  }
  return {"", ""};
}
template <class E>
std::string type_name() {
  return typeid(E).name();
}

std::shared_ptr<Socket> tcp(ringsock::io_context& ctx, AddressFamily f = AddressFamily::InterNetwork) {
  return std::make_shared<Socket>(ctx, f, SocketType::Stream, ProtocolType::Tcp);
}
std::shared_ptr<Socket> udp(ringsock::io_context& ctx, AddressFamily f = AddressFamily::InterNetwork) {
  return std::make_shared<Socket>(ctx, f, SocketType::Dgram, ProtocolType::Udp);
}

}  // namespace

TEST_SUITE("compat as .NET's tests expect") {
  TEST_CASE("ConnectAsync_WithData_DataReceived (ConnectEap): the buffer is sent once connected") {
    ringsock::io_context ctx;
    raw_listener l;
    auto c = tcp(ctx);
    std::array<std::byte, 8> buffer{};
    for (int i = 0; i < 8; ++i) buffer[static_cast<std::size_t>(i)] = std::byte(i);
    SocketAsyncEventArgs e;
    e.RemoteEndPoint(IPEndPoint(IPAddress::Loopback, l.port));
    e.SetBuffer(buffer, 2, 4);  // a slice: offset management
    int completions = 0;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { ++completions; };
    const bool pending = c->ConnectAsync(e);
    CHECK(pending);  // .NET 10 here: pending=True
    if (pending) REQUIRE(drive(ctx, [&] { return completions > 0; }));
    CHECK(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 4);  // .NET 10 here: bytes=4
    CHECK(e.LastOperation() == SocketAsyncOperation::Connect);
    CHECK(c->Connected());
    CHECK(e.ConnectSocket() == c);
    const std::string got = l.accept_and_read(4);
    REQUIRE(got.size() == 4);
    CHECK(got == std::string("\x02\x03\x04\x05", 4));
    ctx.run_until([] { return false; }, std::chrono::milliseconds(20));
    CHECK(completions == 1);
    CHECK_FALSE(e.in_use());
  }

  TEST_CASE("ConnectAsync_WithData: connecting to a closed port reports the connect's error, "
            "sends nothing, raises Completed once") {
    ringsock::io_context ctx;
    int port = 0;
    {
      raw_listener gone;
      port = gone.port;
    }
    auto c = tcp(ctx);
    std::array<std::byte, 4> buffer{};
    SocketAsyncEventArgs e;
    e.RemoteEndPoint(IPEndPoint(IPAddress::Loopback, port));
    e.SetBuffer(buffer, 0, 4);
    int completions = 0;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { ++completions; };
    if (c->ConnectAsync(e)) REQUIRE(drive(ctx, [&] { return completions > 0; }));
    CHECK(e.SocketError() == SocketError::ConnectionRefused);
    CHECK(e.BytesTransferred() == 0);
    CHECK_FALSE(c->Connected());
    CHECK(completions == 1);
    // The same args, reused for a send on another connection: the buffer goes out once.
    raw_listener l;
    auto c2 = tcp(ctx);
    SocketAsyncEventArgs plain;
    plain.RemoteEndPoint(IPEndPoint(IPAddress::Loopback, l.port));
    bool connected = false;
    plain.Completed += [&](Socket&, SocketAsyncEventArgs&) { connected = true; };
    if (c2->ConnectAsync(plain)) REQUIRE(drive(ctx, [&] { return connected; }));
    REQUIRE(plain.SocketError() == SocketError::Success);
    buffer = {std::byte('a'), std::byte('b'), std::byte('c'), std::byte('d')};
    if (c2->SendAsync(e)) REQUIRE(drive(ctx, [&] { return completions == 2; }));
    CHECK(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 4);
    CHECK(e.LastOperation() == SocketAsyncOperation::Send);
    c2->Shutdown(SocketShutdown::Send);
    CHECK(l.accept_and_read(64) == "abcd");  // once, not twice
  }

  TEST_CASE("ConnectAsync with a buffer: disposed or its context destroyed while the buffer is "
            "still going out, it completes once (OperationAborted) or is abandoned, calling nobody") {
    for (int variant = 0; variant < 2; ++variant) {
      CAPTURE(variant);  // 0: Dispose during the send, 1: the context destroyed during it
      raw_listener l;     // never accepts: the 16 MiB send cannot finish
      std::vector<std::byte> big(16u << 20, std::byte{7});
      auto e = std::make_unique<SocketAsyncEventArgs>();
      int completions = 0;
      SocketError seen = SocketError::Success;
      e->Completed += [&](Socket&, SocketAsyncEventArgs& a) {
        ++completions;
        seen = a.SocketError();
      };
      {
        ringsock::io_context ctx;
        auto c = tcp(ctx);
        e->RemoteEndPoint(IPEndPoint(IPAddress::Loopback, l.port));
        e->SetBuffer(big, 0, static_cast<int>(big.size()));
        REQUIRE(c->ConnectAsync(*e));
        REQUIRE(drive(ctx, [&] { return c->Connected(); }));  // connected: the send is in flight
        ctx.run_until([] { return false; }, std::chrono::milliseconds(20));
        REQUIRE(e->in_use());
        CHECK(completions == 0);
        if (variant == 0) {
          c->Dispose();
          REQUIRE(drive(ctx, [&] { return completions > 0; }));
          CHECK(seen == SocketError::OperationAborted);
          CHECK_FALSE(e->in_use());
        }
      }  // variant 1: the context goes with the send pending
      CHECK(completions == (variant == 0 ? 1 : 0));
      CHECK_FALSE(e->in_use());
      if (variant == 1) CHECK(e->SocketError() == SocketError::OperationAborted);
      e.reset();  // would abort if the args were still in use
    }
  }

  TEST_CASE("ConnectAsync_BufferList_Throws_Argument, ConnectAsync_AddressFamily_Throws_NotSupported "
            "(ArgumentValidationTests)") {
    ringsock::io_context ctx;
    auto s = tcp(ctx);
    std::array<std::byte, 4> a{}, b{};
    SocketAsyncEventArgs list;  // no RemoteEndPoint: the BufferList check comes first
    list.BufferList({std::span<std::byte>(a), std::span<std::byte>(b)});
    auto [type, param] = thrown([&] { s->ConnectAsync(list); });
    CHECK(type == type_name<ArgumentException>());
    CHECK(param == "BufferList");
    SocketAsyncEventArgs v6;
    v6.RemoteEndPoint(IPEndPoint(IPAddress::IPv6Loopback, 1));
    CHECK(thrown([&] { s->ConnectAsync(v6); }).first == type_name<NotSupportedException>());
    CHECK_FALSE(list.in_use());
    CHECK_FALSE(v6.in_use());
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("ReceiveFromAsync_AddressFamily_Throws_Argument, ReceiveFromAsync_NullRemoteEndPoint_"
            "Throws_ArgumentNull, SendToAsync_NullRemoteEndPoint_Throws_ArgumentNull "
            "(ArgumentValidationTests)") {
    ringsock::io_context ctx;
    auto s = udp(ctx);
    std::array<std::byte, 8> buf{};
    SocketAsyncEventArgs e;
    e.SetBuffer(buf, 0, 8);
    CHECK(thrown([&] { s->ReceiveFromAsync(e); }).first == type_name<ArgumentNullException>());
    CHECK(thrown([&] { s->SendToAsync(e); }).first == type_name<ArgumentNullException>());
    e.RemoteEndPoint(IPEndPoint(IPAddress::IPv6Loopback, 1));
    auto [type, param] = thrown([&] { s->ReceiveFromAsync(e); });
    CHECK(type == type_name<ArgumentException>());
    CHECK(param == "RemoteEndPoint");
    CHECK_FALSE(e.in_use());
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("NotBound_Throws_InvalidOperationException, NullEndPoint_Throws_ArgumentNullException, "
            "AddressFamilyDoesNotMatch_Throws_ArgumentException (ReceiveFrom APM); .NET 10 here: "
            "the EAP form on an unbound socket waits, and Dispose ends it with OperationAborted") {
    ringsock::io_context ctx;
    auto s = udp(ctx);
    std::array<std::byte, 16> buf{};
    std::shared_ptr<EndPoint> ep = std::make_shared<IPEndPoint>(IPAddress::Loopback, 1);
    std::shared_ptr<EndPoint> none;
    std::shared_ptr<EndPoint> v6 = std::make_shared<IPEndPoint>(IPAddress::IPv6Loopback, 1);
    const auto begin = [&](std::span<std::byte> b, int off, int n, std::shared_ptr<EndPoint>& to) {
      return [&, b, off, n] { s->BeginReceiveFrom(b, off, n, SocketFlags::None, to, nullptr, {}); };
    };
    // The order .NET checks in: buffer, range, endpoint, family, bound.
    CHECK(thrown(begin({}, 0, 16, none)) == std::pair{type_name<ArgumentNullException>(), std::string("buffer")});
    CHECK(thrown(begin(buf, 17, 0, ep)) == std::pair{type_name<ArgumentOutOfRangeException>(), std::string("offset")});
    CHECK(thrown(begin(buf, 0, 17, ep)) == std::pair{type_name<ArgumentOutOfRangeException>(), std::string("size")});
    CHECK(thrown(begin(buf, 0, 16, none)) == std::pair{type_name<ArgumentNullException>(), std::string("remoteEP")});
    CHECK(thrown(begin(buf, 0, 16, v6)) == std::pair{type_name<ArgumentException>(), std::string("remoteEP")});
    CHECK(thrown(begin(buf, 0, 16, ep)).first == type_name<InvalidOperationException>());
    CHECK(ctx.pending_operations() == 0);

    SocketAsyncEventArgs e;
    e.SetBuffer(buf, 0, 16);
    e.RemoteEndPoint(ep);
    bool done = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
    CHECK(s->ReceiveFromAsync(e));  // pending, as in .NET
    CHECK_FALSE(drive(ctx, [&] { return done; }, std::chrono::milliseconds(200)));
    s->Dispose();
    REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::OperationAborted);
    CHECK(e.BytesTransferred() == 0);
  }

  TEST_CASE("SendToRecvFrom_Datagram_UDP (SendReceive APM, IPv4 and IPv6): BeginSendTo binds the "
            "socket, EndReceiveFrom gives the bytes and the sender; .NET 10 here: a datagram larger "
            "than the buffer gives its first bytes without an error") {
    for (AddressFamily f : {AddressFamily::InterNetwork, AddressFamily::InterNetworkV6}) {
      CAPTURE(static_cast<int>(f));
      ringsock::io_context ctx;
      const IPAddress& lo = f == AddressFamily::InterNetwork ? IPAddress::Loopback : IPAddress::IPv6Loopback;
      auto target = udp(ctx, f);
      target->Bind(IPEndPoint(lo, 0));
      auto s = udp(ctx, f);
      const std::array<std::byte, 10> out{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                          std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8},
                                          std::byte{9}, std::byte{10}};
      auto sar = s->BeginSendTo(out, 0, 3, SocketFlags::None, *target->LocalEndPoint(), nullptr, {});
      CHECK(s->EndSendTo(sar) == 3);
      auto local = std::dynamic_pointer_cast<IPEndPoint>(s->LocalEndPoint());
      REQUIRE(local != nullptr);
      CHECK(local->Port() != 0);

      std::array<std::byte, 16> in{};
      std::shared_ptr<EndPoint> from = std::make_shared<IPEndPoint>(
          f == AddressFamily::InterNetwork ? IPAddress::Any : IPAddress::IPv6Any, 0);
      bool called = false;
      auto rar = target->BeginReceiveFrom(in, 0, 16, SocketFlags::None, from,
                                          [&](const std::shared_ptr<IAsyncResult>&) { called = true; }, {});
      CHECK(target->EndReceiveFrom(rar, from) == 3);
      CHECK(std::memcmp(in.data(), out.data(), 3) == 0);
      auto sender = std::dynamic_pointer_cast<IPEndPoint>(from);
      REQUIRE(sender != nullptr);
      CHECK(sender->Port() == local->Port());
      CHECK(sender->Address() == lo);
      CHECK(drive(ctx, [&] { return called; }));

      // Truncation: the first 4 of 10 bytes, no exception.
      sar = s->BeginSendTo(out, 0, 10, SocketFlags::None, *target->LocalEndPoint(), nullptr, {});
      CHECK(s->EndSendTo(sar) == 10);
      rar = target->BeginReceiveFrom(in, 0, 4, SocketFlags::None, from, nullptr, {});
      CHECK(target->EndReceiveFrom(rar, from) == 4);
      CHECK(in[3] == std::byte{4});
      CHECK(ctx.pending_operations() == 0);
    }
  }

  TEST_CASE("SendTo APM argument validation (ArgumentValidationTests: BeginSendTo_NullBuffer_"
            "Throws_ArgumentNull, BeginSendTo_NullEndPoint_Throws_ArgumentNull, BeginSendTo_"
            "InvalidSize_Throws_ArgumentOutOfRange); .NET 10 here: an endpoint of the other family "
            "fails at EndSendTo with a SocketException") {
    ringsock::io_context ctx;
    auto s = udp(ctx);
    std::array<std::byte, 16> buf{};
    const std::shared_ptr<EndPoint> ep = std::make_shared<IPEndPoint>(IPAddress::Loopback, 9);
    CHECK(thrown([&] { s->BeginSendTo({}, 0, 16, SocketFlags::None, ep, nullptr, {}); }) ==
          std::pair{type_name<ArgumentNullException>(), std::string("buffer")});
    CHECK(thrown([&] { s->BeginSendTo(buf, 0, 16, SocketFlags::None, nullptr, nullptr, {}); }) ==
          std::pair{type_name<ArgumentNullException>(), std::string("remoteEP")});
    CHECK(thrown([&] { s->BeginSendTo(buf, 0, 17, SocketFlags::None, ep, nullptr, {}); }) ==
          std::pair{type_name<ArgumentOutOfRangeException>(), std::string("size")});
    CHECK(ctx.pending_operations() == 0);
    auto ar = s->BeginSendTo(buf, 0, 4, SocketFlags::None, IPEndPoint(IPAddress::IPv6Loopback, 9), nullptr, {});
    try {
      s->EndSendTo(ar);
      FAIL("no exception");
    } catch (const SocketException& x) {
      CHECK(x.SocketErrorCode() == SocketError::AddressFamilyNotSupported);
    }
  }

  TEST_CASE("SendRecv_Stream_TCP with buffer lists (SendReceive EAP, BufferList): a receive fills "
            "the segments in order, a 4 MiB send of three segments arrives whole and in order, and "
            "Dispose ends a pending list receive with OperationAborted") {
    ringsock::io_context ctx;
    auto [l, client, server] = accept_pair(ctx);
    // Receive: 10 bytes from the peer land across segments of 3, 0 and 16 bytes.
    REQUIRE(::send(client, "abcdefghij", 10, 0) == 10);
    std::array<std::byte, 3> a{};
    std::array<std::byte, 16> b{};
    SocketAsyncEventArgs e;
    e.BufferList({std::span<std::byte>(a), std::span<std::byte>(), std::span<std::byte>(b)});
    bool done = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
    if (server->ReceiveAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 10);
    CHECK(test::str(a) == "abc");
    CHECK(test::str(std::span(b).first(7)) == "defghij");

    // Send: 4 MiB in three segments, far beyond the socket buffer, read by a thread.
    std::vector<std::byte> big(4u << 20);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7 + i / 4096);
    const std::size_t cut1 = 1000, cut2 = 3u << 20;
    SocketAsyncEventArgs s;
    s.BufferList({std::span(big).subspan(0, cut1), std::span(big).subspan(cut1, cut2 - cut1),
                  std::span(big).subspan(cut2)});
    std::vector<std::byte> got;
    std::thread reader = test::read_on_thread(client, got, big.size());
    bool sent = false;
    s.Completed += [&](Socket&, SocketAsyncEventArgs&) { sent = true; };
    if (server->SendAsync(s)) CHECK(drive(ctx, [&] { return sent; }, std::chrono::seconds(10)));
    reader.join();
    CHECK(s.SocketError() == SocketError::Success);
    CHECK(s.BytesTransferred() == static_cast<int>(big.size()));
    CHECK(got == big);
    // A list receive pending when its socket is disposed: OperationAborted, the list untouched.
    done = false;
    a.fill(std::byte{'-'});
    REQUIRE(server->ReceiveAsync(e));
    server->Dispose();
    REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::OperationAborted);
    CHECK(e.BytesTransferred() == 0);
    CHECK(a[0] == std::byte{'-'});
    settle(ctx);  // drive()'s own bounding timer ends on a later turn
    CHECK(ctx.pending_operations() == 0);
    ::close(client);
  }

  TEST_CASE("BufferList receives keep their order with single-buffer receives, and the APM list "
            "forms (BeginReceive/BeginSend of IList<ArraySegment<byte>>) behave as the EAP ones") {
    ringsock::io_context ctx;
    auto [l, client, server] = accept_pair(ctx);
    std::array<std::byte, 2> a1{}, a2{};
    std::array<std::byte, 4> one{};
    SocketAsyncEventArgs first, second;
    first.BufferList({std::span<std::byte>(a1), std::span<std::byte>(a2)});
    second.SetBuffer(one, 0, 4);
    int completed = 0;
    first.Completed += [&](Socket&, SocketAsyncEventArgs&) { ++completed; };
    second.Completed += [&](Socket&, SocketAsyncEventArgs&) { ++completed; };
    REQUIRE(server->ReceiveAsync(first));  // nothing there yet: both wait, in this order
    REQUIRE(server->ReceiveAsync(second));
    REQUIRE(::send(client, "wxyz1234", 8, 0) == 8);
    REQUIRE(drive(ctx, [&] { return completed == 2; }));
    CHECK(first.BytesTransferred() == 4);
    CHECK(test::str(a1) + test::str(a2) == "wxyz");
    CHECK(second.BytesTransferred() == 4);
    CHECK(test::str(one) == "1234");

    // APM: null and empty lists are refused before anything is submitted.
    CHECK_THROWS_AS(server->BeginReceive(nullptr, SocketFlags::None, nullptr, {}), ArgumentNullException);
    const std::vector<std::span<std::byte>> none;
    CHECK_THROWS_AS(server->BeginSend(none, SocketFlags::None, nullptr, {}), ArgumentException);
    settle(ctx);  // drive()'s own bounding timer ends on a later turn
    CHECK(ctx.pending_operations() == 0);
    std::array<std::byte, 3> p{std::byte{'p'}, std::byte{'q'}, std::byte{'r'}};
    std::array<std::byte, 2> q{std::byte{'s'}, std::byte{'t'}};
    auto sar = server->BeginSend({std::span<std::byte>(p), std::span<std::byte>(q)}, SocketFlags::None,
                                 nullptr, {});
    CHECK(server->EndSend(sar) == 5);
    char back[8] = {};
    CHECK(::recv(client, back, sizeof back, 0) == 5);
    CHECK(std::string(back, 5) == "pqrst");
    REQUIRE(::send(client, "12345", 5, 0) == 5);
    std::array<std::byte, 1> r1{};
    std::array<std::byte, 8> r2{};
    auto rar = server->BeginReceive({std::span<std::byte>(r1), std::span<std::byte>(r2)},
                                    SocketFlags::None, nullptr, {});
    CHECK(server->EndReceive(rar) == 5);
    CHECK(test::str(r1) + test::str(std::span(r2).first(4)) == "12345");
    ::close(client);
  }

  TEST_CASE("A datagram socket sends a BufferList as one datagram and receives one into it") {
    ringsock::io_context ctx;
    auto target = udp(ctx);
    target->Bind(IPEndPoint(IPAddress::Loopback, 0));
    auto s = udp(ctx);
    s->Connect(*target->LocalEndPoint());
    std::array<std::byte, 3> p{std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
    std::array<std::byte, 2> q{std::byte{'d'}, std::byte{'e'}};
    SocketAsyncEventArgs e;
    e.BufferList({std::span<std::byte>(p), std::span<std::byte>(q)});
    bool sent = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { sent = true; };
    if (s->SendAsync(e)) REQUIRE(drive(ctx, [&] { return sent; }));
    CHECK(e.BytesTransferred() == 5);
    std::array<std::byte, 4> r1{};
    std::array<std::byte, 4> r2{};
    SocketAsyncEventArgs r;
    r.BufferList({std::span<std::byte>(r1), std::span<std::byte>(r2)});
    bool got = false;
    r.Completed += [&](Socket&, SocketAsyncEventArgs&) { got = true; };
    if (target->ReceiveAsync(r)) REQUIRE(drive(ctx, [&] { return got; }));
    CHECK(r.SocketError() == SocketError::Success);
    CHECK(r.BytesTransferred() == 5);
    CHECK(test::str(r1) + test::str(std::span(r2).first(1)) == "abcde");
    // SendTo/ReceiveFrom with a list are not there yet: refused, nothing submitted.
    r.RemoteEndPoint(IPEndPoint(IPAddress::Any, 0));
    CHECK_THROWS_AS(target->ReceiveFromAsync(r), NotSupportedException);
    settle(ctx);  // drive()'s own bounding timer ends on a later turn
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("SocketFlags.Peek and OutOfBand (SendReceive EAP and APM; .NET 10 here): a peek gives "
            "the bytes and leaves them for the next receive, OutOfBand reads the urgent byte, a flag "
            "Linux lacks completes synchronously with OperationNotSupported") {
    ringsock::io_context ctx;
    auto [l, client, server] = accept_pair(ctx);
    REQUIRE(::send(client, "hello", 5, 0) == 5);
    std::array<std::byte, 8> buf{};
    SocketAsyncEventArgs e;
    e.SetBuffer(buf, 0, 8);
    e.SocketFlags(SocketFlags::Peek);
    bool done = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
    if (server->ReceiveAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.BytesTransferred() == 5);
    CHECK(test::str(std::span(buf).first(5)) == "hello");
    CHECK(e.SocketFlags() == SocketFlags::None);  // .NET 10 here: what the receive reported
    // APM peek, then a plain receive: the same bytes each time.
    auto par = server->BeginReceive(buf, 0, 2, SocketFlags::Peek, nullptr, {});
    CHECK(server->EndReceive(par) == 2);
    CHECK(test::str(std::span(buf).first(2)) == "he");
    e.SocketFlags(SocketFlags::None);
    done = false;
    if (server->ReceiveAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.BytesTransferred() == 5);

    ::close(client);
    // OutOfBand on a connection none of whose receives has armed its multishot receive yet (an
    // armed one reads past the urgent mark, and Linux then drops the byte: see the README).
    auto [l2, client2, server2] = accept_pair(ctx);
    client = client2;
    server = server2;
    REQUIRE(::send(client, "x!", 2, MSG_OOB) == 2);  // '!' is urgent
    settle(ctx);
    auto oar = server->BeginReceive(buf, 0, 8, SocketFlags::OutOfBand, nullptr, {});
    CHECK(server->EndReceive(oar) == 1);
    CHECK(buf[0] == std::byte{'!'});
    auto rar = server->BeginReceive(buf, 0, 8, SocketFlags::None, nullptr, {});
    CHECK(server->EndReceive(rar) == 1);
    CHECK(buf[0] == std::byte{'x'});
    auto sar = server->BeginSend(std::span<const std::byte>(buf), 0, 1, SocketFlags::OutOfBand, nullptr, {});
    CHECK(server->EndSend(sar) == 1);
    pollfd pf{client, POLLPRI, 0};
    REQUIRE(::poll(&pf, 1, 2000) == 1);
    char c = 0;
    CHECK(::recv(client, &c, 1, MSG_OOB) == 1);
    CHECK(c == 'x');

    // A flag Linux has no mapping for: OperationNotSupported, synchronously (.NET 10 here).
    e.SocketFlags(SocketFlags::Partial);
    CHECK_FALSE(server->ReceiveAsync(e));
    CHECK(e.SocketError() == SocketError::OperationNotSupported);
    auto bad = server->BeginReceive(buf, 0, 8, SocketFlags::Partial, nullptr, {});
    CHECK(bad->CompletedSynchronously());
    try {
      server->EndReceive(bad);
      FAIL("no exception");
    } catch (const SocketException& x) {
      CHECK(x.SocketErrorCode() == SocketError::OperationNotSupported);
    }
    // Peek on a send: Linux ignores it, so does .NET 10 here.
    e.SocketFlags(SocketFlags::Peek);
    done = false;
    if (server->SendAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    CHECK(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 8);
    // Flags with a BufferList: not there yet.
    e.SocketFlags(SocketFlags::Peek);
    std::array<std::byte, 2> s1{}, s2{};
    e.SetBuffer(std::span<std::byte>(), 0, 0);
    e.BufferList({std::span<std::byte>(s1), std::span<std::byte>(s2)});
    CHECK(thrown([&] { server->ReceiveAsync(e); }).first == type_name<NotSupportedException>());
    CHECK_FALSE(e.in_use());
    CHECK(e.LastOperation() == SocketAsyncOperation::Send);  // the refused one left e as it was
    settle(ctx);  // drive()'s own bounding timer ends on a later turn
    CHECK(ctx.pending_operations() == 0);
    ::close(client);
  }

  TEST_CASE("DisconnectAsync and BeginDisconnect (.NET 10 here): connected, they complete "
            "synchronously and the peer reads the end; unconnected, they throw SocketException "
            "(NotConnected) and DisconnectAsync has recorded the operation") {
    ringsock::io_context ctx;
    for (bool reuse : {false, true}) {
      CAPTURE(reuse);
      auto [l, client, server] = accept_pair(ctx);
      SocketAsyncEventArgs e;
      e.DisconnectReuseSocket(reuse);
      bool raised = false;
      e.Completed += [&](Socket&, SocketAsyncEventArgs&) { raised = true; };
      CHECK_FALSE(server->DisconnectAsync(e));
      CHECK(e.SocketError() == SocketError::Success);
      CHECK(e.LastOperation() == SocketAsyncOperation::Disconnect);
      CHECK_FALSE(server->Connected());
      char c = 'x';
      pollfd pf{client, POLLIN, 0};
      REQUIRE(::poll(&pf, 1, 2000) == 1);
      CHECK(::recv(client, &c, 1, 0) == 0);  // the end of stream
      settle(ctx);
      CHECK_FALSE(raised);
      ::close(client);
    }
    auto [l, client, server] = accept_pair(ctx);
    auto ar = server->BeginDisconnect(false, nullptr, {});
    CHECK(ar->CompletedSynchronously());
    server->EndDisconnect(ar);
    ::close(client);
    auto fresh = tcp(ctx);
    SocketAsyncEventArgs e;
    try {
      fresh->DisconnectAsync(e);
      FAIL("no exception");
    } catch (const SocketException& x) {
      CHECK(x.SocketErrorCode() == SocketError::NotConnected);
    }
    CHECK(e.LastOperation() == SocketAsyncOperation::Disconnect);
    CHECK(e.SocketError() == SocketError::Success);
    CHECK_THROWS_AS(fresh->BeginDisconnect(false, nullptr, {}), SocketException);
    CHECK_THROWS_AS(fresh->Disconnect(false), SocketException);
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("SendTo_Datagram_UDP_ShouldImplicitlyBindLocalEndpoint (SendTo EAP): LocalEndPoint is "
            "the address the kernel chose") {
    ringsock::io_context ctx;
    auto target = udp(ctx);
    target->Bind(IPEndPoint(IPAddress::Loopback, 0));
    auto s = udp(ctx);
    CHECK(s->LocalEndPoint() == nullptr);  // .NET 10 here: before: null
    std::array<std::byte, 3> data{};
    SocketAsyncEventArgs e;
    e.SetBuffer(data, 0, 3);
    e.RemoteEndPoint(*target->LocalEndPoint());
    bool done = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
    if (s->SendToAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
    REQUIRE(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 3);
    auto local = std::dynamic_pointer_cast<IPEndPoint>(s->LocalEndPoint());
    REQUIRE(local != nullptr);  // .NET 10 here: after: 0.0.0.0:<port>
    CHECK(local->Port() != 0);
    CHECK(s->IsBound());
  }

  TEST_CASE("Dispose with a receive pending aborts the connection: the peer sees a reset (.NET 10 "
            "here, EAP and APM: op=OperationAborted peer=ConnectionReset; none pending: EOF)") {
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(variant);  // 0: ReceiveAsync pending, 1: BeginReceive pending, 2: nothing pending
      ringsock::io_context ctx;
      raw_listener l;
      auto c = tcp(ctx);
      c->Connect(IPEndPoint(IPAddress::Loopback, l.port));
      const int peer = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
      REQUIRE(peer >= 0);
      std::array<std::byte, 8> buf{};
      SocketAsyncEventArgs e;
      e.SetBuffer(buf, 0, 8);
      bool done = variant == 2;
      SocketError seen = SocketError::Success;
      e.Completed += [&](Socket&, SocketAsyncEventArgs& a) {
        seen = a.SocketError();
        done = true;
      };
      if (variant == 0) REQUIRE(c->ReceiveAsync(e));
      if (variant == 1)
        c->BeginReceive(buf, 0, 8, SocketFlags::None, [&](std::shared_ptr<IAsyncResult> ar) {
          try {
            c->EndReceive(ar);
          } catch (const SocketException& x) {
            seen = x.SocketErrorCode();
          }
          done = true;
        }, {});
      ctx.run_until([] { return false; }, std::chrono::milliseconds(10));
      c->Dispose();
      REQUIRE(drive(ctx, [&] { return done; }));
      if (variant != 2) CHECK(seen == SocketError::OperationAborted);
      char b[8];
      pollfd p{peer, POLLIN, 0};
      REQUIRE(::poll(&p, 1, 1000) == 1);
      const ssize_t n = ::recv(peer, b, sizeof b, 0);
      const int err = errno;
      if (variant == 2) {
        CHECK(n == 0);  // end of stream
      } else {
        CHECK(n < 0);
        CHECK(err == ECONNRESET);
      }
      ::close(peer);
    }
  }

  TEST_CASE("BeginSend_Buffer_NullBuffer_Throws_ArgumentNull, BeginReceive_Buffer_NullBuffer_"
            "Throws_ArgumentNull (ArgumentValidationTests; ParamName buffer, .NET 10 here)") {
    ringsock::io_context ctx;
    auto s = tcp(ctx);
    auto [t1, p1] = thrown([&] { s->BeginSend(std::span<const std::byte>{}, 0, 0, SocketFlags::None, nullptr, {}); });
    CHECK(t1 == type_name<ArgumentNullException>());
    CHECK(p1 == "buffer");
    auto [t2, p2] = thrown([&] { s->BeginReceive(std::span<std::byte>{}, 0, 0, SocketFlags::None, nullptr, {}); });
    CHECK(t2 == type_name<ArgumentNullException>());
    CHECK(p2 == "buffer");
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("Disconnect and reuse (.NET 10 here): without reuse a connect reports IsConnected and an "
            "accept into it throws InvalidArgument; a synchronous Connect after any Disconnect "
            "throws InvalidOperationException; with reuse ConnectAsync connects again") {
    ringsock::io_context ctx;
    auto l = listener(ctx);
    const IPEndPoint where(IPAddress::Loopback, port_of(l));
    auto connect_async = [&](const std::shared_ptr<Socket>& c) {
      SocketAsyncEventArgs e;
      e.RemoteEndPoint(where);
      bool done = false;
      e.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
      if (c->ConnectAsync(e)) REQUIRE(drive(ctx, [&] { return done; }));
      return e.SocketError();
    };
    auto accept_one = [&](std::shared_ptr<Socket> into) {
      SocketAsyncEventArgs a;
      a.AcceptSocket(std::move(into));
      bool done = false;
      a.Completed += [&](Socket&, SocketAsyncEventArgs&) { done = true; };
      if (l->AcceptAsync(a)) REQUIRE(drive(ctx, [&] { return done; }));
      REQUIRE(a.SocketError() == SocketError::Success);
      return a.AcceptSocket();
    };
    // Without reuse.
    auto c = tcp(ctx);
    REQUIRE(connect_async(c) == SocketError::Success);
    auto server = accept_one(nullptr);
    c->Disconnect(false);
    CHECK_THROWS_AS(c->Connect(where), InvalidOperationException);
    CHECK(connect_async(c) == SocketError::IsConnected);  // .NET 10 here: -> IsConnected
    CHECK_FALSE(c->Connected());
    // An accept into a socket disconnected without reuse.
    server->Disconnect(false);
    SocketAsyncEventArgs into;
    into.AcceptSocket(server);
    try {
      l->AcceptAsync(into);
      FAIL("no exception");
    } catch (const SocketException& x) {
      CHECK(x.SocketErrorCode() == SocketError::InvalidArgument);
    }
    CHECK_FALSE(into.in_use());
    // With reuse.
    auto r = tcp(ctx);
    REQUIRE(connect_async(r) == SocketError::Success);
    auto server2 = accept_one(nullptr);
    r->Disconnect(true);
    CHECK_THROWS_AS(r->Connect(where), InvalidOperationException);
    CHECK(connect_async(r) == SocketError::Success);
    CHECK(r->Connected());
    auto server3 = accept_one(nullptr);
    CHECK(server3->Connected());
  }

  TEST_CASE("SetBuffer edge rules (.NET 10 here): (offset, count) without a buffer changes "
            "nothing; (null, offset, count) clears; the Buffer/BufferList conflict has no ParamName") {
    SocketAsyncEventArgs e;
    e.SetBuffer(5, 5);  // .NET 10 here: ok, offset=0 count=0
    CHECK(e.Offset() == 0);
    CHECK(e.Count() == 0);
    CHECK(e.Buffer().data() == nullptr);
    std::array<std::byte, 8> buf{};
    e.SetBuffer(buf, 1, 2);
    e.SetBuffer(std::span<std::byte>{}, 5, 5);  // .NET 10 here: ok, cleared
    CHECK(e.Buffer().data() == nullptr);
    CHECK(e.Offset() == 0);
    CHECK(e.Count() == 0);
    e.BufferList({std::span<std::byte>(buf)});
    auto [type, param] = thrown([&] { e.SetBuffer(buf, 0, 4); });
    CHECK(type == type_name<ArgumentException>());
    CHECK(param.empty());  // .NET 10 here: ArgumentException param=
    e.BufferList(nullptr);
    e.SetBuffer(buf, 0, 4);
    auto [type2, param2] = thrown([&] { e.BufferList({std::span<std::byte>(buf)}); });
    CHECK(type2 == type_name<ArgumentException>());
    CHECK(param2.empty());
  }

  TEST_CASE("new SocketException(SocketError) carries the errno and the system's message, as on "
            "Linux (.NET 10 here)") {
    SocketException refused(SocketError::ConnectionRefused);
    CHECK(refused.ErrorCode() == ECONNREFUSED);  // .NET 10 here: ErrorCode=111 Native=111
    CHECK(refused.NativeErrorCode() == ECONNREFUSED);
    CHECK(refused.SocketErrorCode() == SocketError::ConnectionRefused);
    CHECK(std::string(refused.what()) == std::strerror(ECONNREFUSED));  // 'Connection refused'
    SocketException reset(SocketError::ConnectionReset);
    CHECK(reset.ErrorCode() == ECONNRESET);
    CHECK(std::string(reset.what()) == std::strerror(ECONNRESET));
    SocketException aborted(SocketError::OperationAborted);
    CHECK(aborted.ErrorCode() == ECANCELED);  // .NET 10 here: 125, 'Operation canceled'
    CHECK(SocketException(SocketError::TooManyOpenSockets).NativeErrorCode() == ENFILE);  // .NET's pick
    CHECK(SocketException(SocketError::AccessDenied).NativeErrorCode() == EACCES);
    CHECK(SocketException(SocketError::NoBufferSpaceAvailable).NativeErrorCode() == ENOBUFS);
    CHECK(SocketException(SocketError::Shutdown).NativeErrorCode() == EPIPE);
    CHECK(SocketException(SocketError::NotSocket).NativeErrorCode() == ENOTSOCK);
    CHECK(SocketException(SocketError::IOPending).NativeErrorCode() == EINPROGRESS);
    CHECK(SocketException(SocketError::Disconnecting).NativeErrorCode() == ESHUTDOWN);
    CHECK(SocketException(SocketError::ProcessLimit).NativeErrorCode() == 10067);
    SocketException unknown(SocketError::SocketError);
    CHECK(unknown.ErrorCode() == -131074);  // .NET 10 here, 'Unknown socket error'
    CHECK(std::string(unknown.what()) == "Unknown socket error");
    SocketException timed(SocketError::TimedOut);
    CHECK(timed.NativeErrorCode() == ETIMEDOUT);
    SocketException ok(SocketError::Success);
    CHECK(ok.ErrorCode() == 0);
    CHECK(std::string(ok.what()) == "Success");
    // An errno given explicitly is kept.
    SocketException given(SocketError::Shutdown, ESHUTDOWN);
    CHECK(given.NativeErrorCode() == ESHUTDOWN);
  }

  TEST_CASE("SendRecv_Stream_TCP_MultipleConcurrentReceives (SendReceive EAP and APM, IPv4 and "
            "IPv6): three pending 1-byte receives get 1, 2, 3 in the order they were started") {
    for (int variant = 0; variant < 4; ++variant) {
      CAPTURE(variant);  // bit 0: APM (else EAP); bit 1: IPv6
      const bool apm = variant & 1, v6 = variant & 2;
      ringsock::io_context ctx;
      auto l = listener(ctx, v6);
      const int client = test::blocking_connect(endpoint_of(l));
      std::shared_ptr<Socket> server = l->EndAccept(l->BeginAccept(nullptr, {}));
      std::array<std::array<std::byte, 1>, 3> bufs{};
      std::array<SocketAsyncEventArgs, 3> args;
      std::string order;
      for (int i = 0; i < 3; ++i) {
        if (apm) {
          server->BeginReceive(bufs[i], 0, 1, SocketFlags::None, [&, i](std::shared_ptr<IAsyncResult> ar) {
            if (server->EndReceive(ar) == 1) order += static_cast<char>(bufs[i][0]);
          }, {});
        } else {
          args[i].SetBuffer(bufs[i], 0, 1);
          args[i].Completed += [&](Socket&, SocketAsyncEventArgs& e) {
            if (e.BytesTransferred() == 1) order += static_cast<char>(e.Buffer()[0]);
          };
          REQUIRE(server->ReceiveAsync(args[i]));  // nothing there yet: pending
        }
      }
      settle(ctx, std::chrono::milliseconds(5));
      for (const char* c : {"1", "2", "3"}) REQUIRE(::send(client, c, 1, MSG_NOSIGNAL) == 1);
      REQUIRE(drive(ctx, [&] { return order.size() == 3; }));
      CHECK(order == "123");
      ::close(client);
    }
  }

  TEST_CASE("ReceiveAsync completes synchronously (returns false) when the bytes are already "
            "there; a zero-byte ReceiveAsync waits for data and takes none (ZeroByteReceive)") {
    ringsock::io_context ctx;
    auto [l, client, server] = accept_pair(ctx);
    // Zero-byte: pending until data arrives, then Success with 0 bytes.
    std::array<std::byte, 16> buf{};
    SocketAsyncEventArgs zero;
    zero.SetBuffer(buf, 0, 0);
    bool zero_done = false;
    zero.Completed += [&](Socket&, SocketAsyncEventArgs&) { zero_done = true; };
    REQUIRE(server->ReceiveAsync(zero));
    settle(ctx, std::chrono::milliseconds(5));
    CHECK_FALSE(zero_done);
    REQUIRE(::send(client, "ping", 4, MSG_NOSIGNAL) == 4);
    REQUIRE(drive(ctx, [&] { return zero_done; }));
    CHECK(zero.SocketError() == SocketError::Success);
    CHECK(zero.BytesTransferred() == 0);
    // The data is still there: the next receive completes synchronously with all of it.
    SocketAsyncEventArgs e;
    e.SetBuffer(buf, 0, 16);
    bool raised = false;
    e.Completed += [&](Socket&, SocketAsyncEventArgs&) { raised = true; };
    CHECK_FALSE(server->ReceiveAsync(e));
    CHECK(e.SocketError() == SocketError::Success);
    CHECK(e.BytesTransferred() == 4);
    CHECK(std::memcmp(buf.data(), "ping", 4) == 0);
    // A zero-byte receive with data already there completes synchronously too (APM: at once).
    REQUIRE(::send(client, "pong", 4, MSG_NOSIGNAL) == 4);
    settle(ctx);
    CHECK_FALSE(server->ReceiveAsync(zero));
    CHECK(zero.BytesTransferred() == 0);
    auto ar = server->BeginReceive(buf, 0, 0, SocketFlags::None, nullptr, {});
    CHECK(ar->CompletedSynchronously());
    CHECK(server->EndReceive(ar) == 0);
    CHECK_FALSE(server->ReceiveAsync(e));
    CHECK(e.BytesTransferred() == 4);
    CHECK(std::memcmp(buf.data(), "pong", 4) == 0);
    settle(ctx);
    CHECK_FALSE(raised);  // a synchronous completion raises no Completed
    ::close(client);
  }
}

}  // namespace ctest
