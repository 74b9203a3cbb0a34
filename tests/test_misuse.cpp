#include <doctest/doctest.h>

#include <array>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

TEST_SUITE("misuse") {
  TEST_CASE_FIXTURE(test::listening, "args already used by a pending operation: args_in_use_error, nothing submitted") {
    ctx.block_on([](io_context& ctx, socket& l) -> task<void> {
      accept_args args;
      ctx.spawn([](socket& l, accept_args& a) -> task<void> {
        co_await l.accept_async(a, 100ms);
      }(l, args));
      co_await sleep_for(ctx, 5ms);
      REQUIRE(args.in_use());
      auto before = ctx.stats().sqes_submitted;
      bool threw = false;
      try {
        co_await l.accept_async(args);
      } catch (const args_in_use_error& e) {
        threw = std::string(e.what()).find("already used") != std::string::npos;
      }
      CHECK(threw);
      std::array<std::byte, 8> buf;
      CHECK_THROWS_AS(args.set_buffer(buf), args_in_use_error);
      CHECK_THROWS_AS(args.set_remote_endpoint(l.local_endpoint()), misuse_error);
      co_await sleep_for(ctx, 1ms);
      CHECK(ctx.stats().sqes_submitted - before == 1);  // the sleep only
      co_await sleep_for(ctx, 150ms);
      CHECK_FALSE(args.in_use());
      CHECK(args.error() == std::errc::timed_out);
    }(ctx, l));
  }

  TEST_CASE("accept on a socket that is not listening: not_listening_error") {
    io_context ctx;
    socket s(ctx, address_family::ipv4);
    CHECK_THROWS_AS((void)s.accept_async(), not_listening_error);
    accept_args args;
    bool threw = false;
    ctx.block_on([](socket& s, accept_args& args, bool& threw) -> task<void> {
      try {
        co_await s.accept_async(args);
      } catch (const not_listening_error&) {
        threw = true;
      }
    }(s, args, threw));
    CHECK(threw);
    CHECK_FALSE(args.in_use());  // a failed check leaves the args reusable
  }

  TEST_CASE("operations on a closed socket: socket_closed_error") {
    io_context ctx;
    // One loop turn first: the context's own SQE (its wake-up read) goes out.
    ctx.block_on([](io_context& c) -> task<void> { co_await sleep_for(c, 0ms); }(ctx));
    const auto sqes_before = ctx.stats().sqes_submitted;
    socket s(ctx, address_family::ipv4);
    s.close();
    s.close();  // idempotent
    std::array<std::byte, 8> buf;
    CHECK_THROWS_AS((void)s.receive_async(buf), socket_closed_error);
    CHECK_THROWS_AS((void)s.send_async(buf), socket_closed_error);
    CHECK_THROWS_AS((void)s.send_all_async(buf), socket_closed_error);
    CHECK_THROWS_AS((void)s.connect_async(endpoint::loopback(address_family::ipv4, 1)),
                    socket_closed_error);
    CHECK_THROWS_AS((void)s.accept_async(), socket_closed_error);
    CHECK_THROWS_AS(s.bind(endpoint::loopback(address_family::ipv4)), socket_closed_error);
    CHECK_THROWS_AS((void)s.local_endpoint(), socket_closed_error);
    socket moved_from;
    CHECK_THROWS_AS((void)moved_from.receive_async(buf), socket_closed_error);
    socket_args a;
    a.set_buffer(buf);
    bool threw = false;
    ctx.block_on([](socket& s, socket_args& a, bool& threw) -> task<void> {
      try {
        co_await s.receive_async(a);
      } catch (const misuse_error&) {
        threw = true;
      }
    }(s, a, threw));
    CHECK(threw);
    CHECK(ctx.stats().sqes_submitted == sqes_before);
  }

  TEST_CASE("an empty receive buffer is std::invalid_argument: 0 bytes means end of stream") {
    io_context ctx;
    socket s(ctx, address_family::ipv4);
    CHECK_THROWS_AS((void)s.receive_async(std::span<std::byte>{}), std::invalid_argument);
    socket_args a;
    bool threw = false;
    ctx.block_on([](socket& s, socket_args& a, bool& threw) -> task<void> {
      try {
        co_await s.receive_async(a);
      } catch (const std::invalid_argument&) {
        threw = true;
      }
    }(s, a, threw));
    CHECK(threw);
    CHECK_FALSE(a.in_use());
  }

  TEST_CASE("connect in args form without a destination: std::invalid_argument") {
    io_context ctx;
    socket s(ctx, address_family::ipv4);
    socket_args a;
    bool threw = false;
    ctx.block_on([](socket& s, socket_args& a, bool& threw) -> task<void> {
      try {
        co_await s.connect_async(a);
      } catch (const std::invalid_argument&) {
        threw = true;
      }
    }(s, a, threw));
    CHECK(threw);
    CHECK_FALSE(a.in_use());
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE_FIXTURE(test::listening,
                    "an operation awaited after its socket was moved from throws socket_closed_error") {
    int threw = 0;
    ctx.block_on([](io_context& ctx, socket& l, int& threw) -> task<void> {
      auto accept = l.accept_async();
      socket moved = std::move(l);
      try {
        co_await accept;
      } catch (const socket_closed_error&) {
        ++threw;
      }
      socket t(ctx, address_family::ipv4);
      auto send = t.send_all_async({});
      socket t2 = std::move(t);
      try {
        co_await send;
      } catch (const socket_closed_error&) {
        ++threw;
      }
    }(ctx, l, threw));
    CHECK(threw == 2);
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE("is_fatal separates a closed listener from transient accept errors") {
    CHECK(is_fatal(std::make_error_code(std::errc::operation_canceled)));
    CHECK(is_fatal(std::make_error_code(std::errc::bad_file_descriptor)));
    CHECK_FALSE(is_fatal(std::make_error_code(std::errc::too_many_files_open)));
    CHECK_FALSE(is_fatal(std::make_error_code(std::errc::connection_aborted)));
    CHECK_FALSE(is_fatal(std::make_error_code(std::errc::connection_reset)));
    CHECK_FALSE(is_fatal(std::make_error_code(std::errc::network_unreachable)));
    CHECK(is_fatal(std::make_error_code(std::errc::invalid_argument)));
    CHECK_FALSE(is_fatal(std::error_code{}));
  }
}

}  // namespace rstest
