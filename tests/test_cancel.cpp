#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <thread>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

namespace {

using pair = test::socket_pair;
using test::connected_pair;

task<void> stop_accept(io_context& ctx, socket& l, std::stop_source& src, bool other_thread) {
  std::thread t;
  if (other_thread)
    t = std::thread([&src] {
      std::this_thread::sleep_for(20ms);
      src.request_stop();
    });
  else
    ctx.spawn([](io_context& ctx, std::stop_source& src) -> task<void> {
      co_await sleep_for(ctx, 20ms);
      src.request_stop();
    }(ctx, src));
  accept_args args;
  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec = co_await l.accept_async(args, src.get_token());
  if (t.joinable()) t.join();
  CHECK(ec == std::errc::operation_canceled);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK_FALSE(args.in_use());
  // The listener still works.
  auto [s, c] = co_await connected_pair(ctx, l);
  CHECK(s.is_open());
}

task<void> stop_receive(io_context& ctx, socket& l, bool other_thread) {
  pair p = co_await connected_pair(ctx, l);
  std::stop_source src;
  std::thread t;
  if (other_thread)
    t = std::thread([&src] {
      std::this_thread::sleep_for(20ms);
      src.request_stop();
    });
  else
    ctx.spawn([](io_context& ctx, std::stop_source& src) -> task<void> {
      co_await sleep_for(ctx, 20ms);
      src.request_stop();
    }(ctx, src));
  std::array<std::byte, 16> buf{};
  bool cancelled = false;
  try {
    co_await p.client.receive_async(buf, src.get_token());
  } catch (const socket_error& e) {
    cancelled = e.code() == std::errc::operation_canceled;
  }
  if (t.joinable()) t.join();
  CHECK(cancelled);
  // The connection still works: data sent now arrives in the next receive.
  co_await p.server.send_all_async(test::bytes("after"));
  std::size_t n = co_await p.client.receive_async(buf);
  CHECK(test::str({buf.data(), n}) == "after");
}

task<void> timeouts(io_context& ctx, socket& l) {
  accept_args args;
  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec = co_await l.accept_async(args, 30ms);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(ec == std::errc::timed_out);
  CHECK(took >= 30ms);
  CHECK(took < 2s);

  bool timed_out = false;
  try {
    co_await l.accept_async(10ms);
  } catch (const socket_error& e) {
    timed_out = e.code() == std::errc::timed_out;
  }
  CHECK(timed_out);

  pair p = co_await connected_pair(ctx, l);
  std::array<std::byte, 16> buf{};
  socket_args r;
  r.set_buffer(buf);
  ec = co_await p.client.receive_async(r, 30ms);
  CHECK(ec == std::errc::timed_out);
  // The kernel no longer owns the buffer: data sent now is not written into it ...
  co_await p.server.send_all_async(test::bytes("late"));
  co_await sleep_for(ctx, 10ms);
  CHECK(buf[0] == std::byte{0});
  // ... it waits for the next receive, which also shows the socket still works.
  ec = co_await p.client.receive_async(r, 1s);
  CHECK(!ec);
  CHECK(test::str({buf.data(), r.bytes_transferred()}) == "late");

  // A timeout that does not fire changes nothing.
  co_await p.server.send_all_async(test::bytes("x"));
  ec = co_await p.client.receive_async(r, 5s);
  CHECK(!ec);
  CHECK(r.bytes_transferred() == 1);
}

task<void> close_with_pending_receive(io_context& ctx, socket& l, int& completions) {
  pair p = co_await connected_pair(ctx, l);
  auto reader = [](socket& s, int& completions) -> task<void> {
    std::array<std::byte, 16> buf;
    socket_args a;
    a.set_buffer(buf);
    std::error_code ec = co_await s.receive_async(a);
    if (ec == std::errc::operation_canceled) ++completions;
  };
  ctx.spawn(reader(p.client, completions));
  co_await sleep_for(ctx, 10ms);
  p.client.close();
  co_await sleep_for(ctx, 20ms);
}

}  // namespace

TEST_SUITE("cancellation") {
  TEST_CASE_FIXTURE(test::listening, "a stop token cancels a pending accept (same thread); the listener still works") {
    std::stop_source src;
    ctx.block_on(stop_accept(ctx, l, src, false));
  }

  TEST_CASE_FIXTURE(test::listening, "a stop token cancels a pending accept (other thread); the listener still works") {
    std::stop_source src;
    ctx.block_on(stop_accept(ctx, l, src, true));
  }

  TEST_CASE_FIXTURE(test::listening, "a stop token cancels a pending receive; the connection still works") {
    ctx.block_on(stop_receive(ctx, l, false));
    ctx.block_on(stop_receive(ctx, l, true));
  }

  TEST_CASE_FIXTURE(test::listening, "timeouts end a pending accept and receive with timed_out; the buffer is released") {
    ctx.block_on(timeouts(ctx, l));
  }

  TEST_CASE_FIXTURE(test::listening, "a timeout and a stop token together: whichever comes first ends the operation") {
    ctx.block_on([](io_context& ctx, socket& l) -> task<void> {
      pair p = co_await connected_pair(ctx, l);
      std::array<std::byte, 8> buf{};
      socket_args r;
      r.set_buffer(buf);
      std::stop_source src;
      ctx.spawn([](io_context& ctx, std::stop_source& src) -> task<void> {
        co_await sleep_for(ctx, 20ms);
        src.request_stop();
      }(ctx, src));
      std::error_code ec = co_await p.client.receive_async(r, {5s, src.get_token()});
      CHECK(ec == std::errc::operation_canceled);  // the token fired first
      std::stop_source idle;
      ec = co_await p.client.receive_async(r, {20ms, idle.get_token()});
      CHECK(ec == std::errc::timed_out);  // the timeout fired first
      co_await p.server.send_all_async(test::bytes("ok"));
      ec = co_await p.client.receive_async(r, {5s, idle.get_token()});
      CHECK(!ec);  // neither: the data came
      CHECK(r.bytes_transferred() == 2);
    }(ctx, l));
  }

  TEST_CASE_FIXTURE(test::listening, "close() completes a pending receive once with operation_canceled") {
    int completions = 0;
    ctx.block_on(close_with_pending_receive(ctx, l, completions));
    CHECK(completions == 1);
  }

  TEST_CASE("destroying a context with operations in flight leaks no descriptor") {
    std::size_t before = test::open_fds();
    {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      endpoint ep = l.local_endpoint();
      // Pending: an accept, receives on both ends of two connections, a timer, a send_all
      // that cannot finish (nobody reads), and connections queued but never accepted.
      auto busy = [](io_context& ctx, socket& l) -> task<void> {
        pair a = co_await connected_pair(ctx, l);  // a receive that never gets data
        pair b = co_await connected_pair(ctx, l);  // a send_all that never finishes: nobody reads
        ctx.spawn([](socket s) -> task<void> {
          std::array<std::byte, 16> buf;
          co_await s.receive_async(buf);
        }(std::move(a.server)));
        ctx.spawn([](socket s) -> task<void> {
          std::string big(32 << 20, 'x');
          socket_args args;
          args.set_buffer({reinterpret_cast<std::byte*>(big.data()), big.size()});
          co_await s.send_all_async(args);
        }(std::move(b.server)));
        ctx.spawn([](io_context& ctx, socket c1, socket c2) -> task<void> {
          CHECK((c1.is_open() && c2.is_open()));
          co_await sleep_for(ctx, 1h);  // holds the peers open
        }(ctx, std::move(a.client), std::move(b.client)));
        ctx.spawn([](socket& l) -> task<void> { co_await l.accept_async(); }(l));
        co_await sleep_for(ctx, 20ms);
      };
      ctx.block_on(busy(ctx, l));
      int queued1 = test::blocking_connect(ep);
      ::close(queued1);
    }
    CHECK(test::open_fds() == before);
  }
}

}  // namespace rstest
