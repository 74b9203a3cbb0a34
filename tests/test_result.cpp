// as_result: every plain-form operation has a spelling that yields the value and the
// std::error_code together and never throws for an I/O outcome; misuse still throws at the call.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "support.hpp"

namespace result_test {

using namespace std::chrono_literals;
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous

namespace {
void reset_close(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}
}  // namespace

// as_result(op) is awaitable only as the prvalue of its co_await expression: a stored one,
// which would outlive the operation's temporary, does not compile.
template <class T>
concept awaitable_as_lvalue = requires(T& t) { t.operator co_await(); };
template <class T>
concept awaitable_as_rvalue = requires(T&& t) { static_cast<T&&>(t).operator co_await(); };
using wrapped = decltype(as_result(std::declval<decltype(std::declval<socket&>().receive_async(std::span<std::byte>{}))&>()));
static_assert(!awaitable_as_lvalue<wrapped>);
static_assert(awaitable_as_rvalue<wrapped>);
static_assert(!std::is_copy_constructible_v<wrapped>);

TEST_SUITE("as_result") {
  TEST_CASE_FIXTURE(test::listening, "receive and send_all: values on success, error codes (no exception) on a reset") {
    int c = test::blocking_connect(l.local_endpoint());
    REQUIRE(::send(c, "abc", 3, 0) == 3);
    const auto ended_before = ctx.stats().tasks_ended_by_io_error;
    ctx.block_on([](socket& l, int c) -> task<void> {
      auto [aec, s] = co_await as_result(l.accept_async());
      REQUIRE_FALSE(aec);
      REQUIRE(s.is_open());
      std::array<std::byte, 8> buf{};
      auto [ec, n] = co_await as_result(s.receive_async(buf));
      CHECK_FALSE(ec);
      CHECK(n == 3);
      auto sent = co_await as_result(s.send_all_async(test::bytes("xyz")));
      CHECK_FALSE(sent.ec);
      CHECK(sent.value == 3);
      reset_close(c);
      auto [rec, rn] = co_await as_result(s.receive_async(buf));
      CHECK(rec == std::errc::connection_reset);
      CHECK(rn == 0);
    }(l, c));
    CHECK(ctx.stats().tasks_ended_by_io_error == ended_before);
  }

  TEST_CASE_FIXTURE(test::listening, "timeouts and cancellation come back as timed_out / operation_canceled") {
    int c = test::blocking_connect(l.local_endpoint());
    ctx.block_on([](socket& l) -> task<void> {
      socket s = co_await l.accept_async();
      std::array<std::byte, 8> buf{};
      auto [ec, n] = co_await as_result(s.receive_async(buf, 20ms));
      CHECK(ec == std::errc::timed_out);
      CHECK(n == 0);
      std::stop_source stop;
      stop.request_stop();
      auto r = co_await as_result(s.receive_async(buf, stop.get_token()));
      CHECK(r.ec == std::errc::operation_canceled);
      auto a = co_await as_result(l.accept_async(10ms));
      CHECK(a.ec == std::errc::timed_out);
      CHECK_FALSE(a.value.is_open());
    }(l));
    ::close(c);
  }

  TEST_CASE("connect to a closed port: connection_refused as a value") {
    io_context ctx;
    endpoint ep;
    {
      socket tmp = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      ep = tmp.local_endpoint();
    }  // nobody listens there now
    ctx.block_on([](io_context& ctx, endpoint ep) -> task<void> {
      socket s(ctx, address_family::ipv4);
      std::error_code ec = co_await as_result(s.connect_async(ep));
      CHECK(ec == std::errc::connection_refused);
    }(ctx, ep));
  }

  TEST_CASE_FIXTURE(test::listening, "send_all to a peer that is gone: the error and the bytes that went out before it") {
    int c = test::blocking_connect(l.local_endpoint());
    ctx.block_on([](socket& l, int c) -> task<void> {
      socket s = co_await l.accept_async();
      reset_close(c);
      co_await sleep_for(s.context(), 10ms);
      std::vector<std::byte> big(4u << 20);
      auto r = co_await as_result(s.send_all_async(big));
      CHECK((r.ec == std::errc::connection_reset || r.ec == std::errc::broken_pipe));
      CHECK(r.value < big.size());
    }(l, c));
  }

  TEST_CASE("datagrams: send_to / receive_from") {
    io_context ctx;
    socket a(ctx, address_family::ipv4, socket_type::datagram);
    socket b(ctx, address_family::ipv4, socket_type::datagram);
    a.bind(endpoint::loopback(address_family::ipv4));
    b.bind(endpoint::loopback(address_family::ipv4));
    ctx.block_on([](socket& a, socket& b) -> task<void> {
      auto sent = co_await as_result(a.send_to_async(test::bytes("dgram"), b.local_endpoint()));
      CHECK_FALSE(sent.ec);
      CHECK(sent.value == 5);
      std::array<std::byte, 16> buf{};
      endpoint from;
      auto got = co_await as_result(b.receive_from_async(buf, from));
      CHECK_FALSE(got.ec);
      CHECK(got.value == 5);
      CHECK(from == a.local_endpoint());
    }(a, b));
  }

  TEST_CASE("misuse still throws at the call, before anything is submitted") {
    io_context ctx;
    socket s(ctx, address_family::ipv4);
    s.close();
    std::array<std::byte, 4> buf{};
    CHECK_THROWS_AS((void)as_result(s.receive_async(buf)), socket_closed_error);
    socket open(ctx, address_family::ipv4);
    CHECK_THROWS_AS((void)as_result(open.receive_async(std::span<std::byte>{})),
                    std::invalid_argument);
    CHECK(ctx.pending_operations() == 0);
  }
}

}  // namespace result_test
