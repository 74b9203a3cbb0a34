#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <optional>
#include <thread>
#include <unistd.h>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous

namespace {

// Ping-pong: one message out, the same message back, `count` times; the allocation counter is
// read after `warmup` round trips and at the end.
task<void> plain_echo_loop(socket& c, int warmup, int count, std::size_t& news) {
  std::array<std::byte, 64> out{}, in{};
  std::size_t start = 0;
  for (int i = 0; i < warmup + count; ++i) {
    if (i == warmup) start = test::new_calls();
    out[0] = static_cast<std::byte>(i);
    co_await c.send_all_async(out);
    std::size_t got = 0;
    while (got < out.size()) got += co_await c.receive_async(std::span(in).subspan(got));
    if (in[0] != out[0]) throw std::runtime_error("echo mismatch");
  }
  news = test::new_calls() - start;
}

task<void> args_echo_loop(socket& c, int warmup, int count, std::size_t& news) {
  std::array<std::byte, 64> out{}, in{};
  socket_args tx, rx;
  std::size_t start = 0;
  for (int i = 0; i < warmup + count; ++i) {
    if (i == warmup) start = test::new_calls();
    out[0] = static_cast<std::byte>(i);
    tx.set_buffer(out);
    std::error_code ec = co_await c.send_all_async(tx);
    if (ec) throw std::runtime_error("send failed");
    std::size_t got = 0;
    while (got < in.size()) {
      rx.set_buffer(std::span(in).subspan(got));
      std::error_code rec = co_await c.receive_async(rx);
      if (rec) throw std::runtime_error("receive failed");
      got += rx.bytes_transferred();
    }
  }
  news = test::new_calls() - start;
}

// The README's receive: the ring's buffer is lent, checked, and given back each round trip.
task<void> borrowed_echo_loop(socket& c, int warmup, int count, std::size_t& news) {
  std::array<std::byte, 64> out{};
  std::size_t start = 0;
  for (int i = 0; i < warmup + count; ++i) {
    if (i == warmup) start = test::new_calls();
    out[0] = static_cast<std::byte>(i);
    co_await c.send_all_async(out);
    std::size_t got = 0;
    while (got < out.size()) {
      received_buffer b = co_await c.receive_borrowed_async();
      if (b.empty()) throw std::runtime_error("end of stream");
      if (got == 0 && b.data()[0] != out[0]) throw std::runtime_error("echo mismatch");
      got += b.size();
    }
  }
  news = test::new_calls() - start;
}

// The borrowed echo loop with a timeout on every receive: each arms a timer (and needs the
// request's extras), which must come from the recycler too.
task<void> timed_echo_loop(socket& c, int warmup, int count, std::size_t& news) {
  std::array<std::byte, 64> out{};
  std::size_t start = 0;
  std::stop_source stop;
  for (int i = 0; i < warmup + count; ++i) {
    if (i == warmup) start = test::new_calls();
    out[0] = static_cast<std::byte>(i);
    co_await c.send_all_async(out, {std::chrono::seconds(5), stop.get_token()});
    std::size_t got = 0;
    while (got < out.size()) {
      received_buffer b = co_await c.receive_borrowed_async({std::chrono::seconds(5), stop.get_token()});
      if (b.empty()) throw std::runtime_error("end of stream");
      if (got == 0 && b.data()[0] != out[0]) throw std::runtime_error("echo mismatch");
      got += b.size();
    }
  }
  news = test::new_calls() - start;
}

constexpr int idle_conns = 200;

// The README's connection handler.
task<void> readme_serve(socket s) {
  for (;;) {
    auto [ec, bytes] = co_await as_result(s.receive_borrowed_async());
    if (ec || bytes.empty()) co_return;
    auto sent = co_await as_result(s.send_all_async(bytes.data()));
    if (sent.ec) co_return;
  }
}

// operator new calls of `loop` over 10,000 round trips after 100 of warm-up, against an echo peer.
using echo_loop = task<void> (*)(socket&, int, int, std::size_t&);
std::size_t echo_news(io_context& ctx, socket& l, echo_loop loop) {
  std::size_t news = 99;
  ctx.block_on([](io_context& ctx, socket& l, echo_loop loop, std::size_t& news) -> task<void> {
    auto [s, c] = co_await test::connected_pair(ctx, l);
    ctx.spawn(test::echo_session(std::move(s)));
    co_await loop(c, 100, 10'000, news);
  }(ctx, l, loop, news));
  return news;
}

task<void> nothing() { co_return; }

// A thread_local made before the thread's first frame: destroyed after the frame recycler's
// own thread-exit cleanup, with a frame still in it.
std::atomic<long> deletes_at_exit{-1};
struct late_holder {
  std::optional<task<void>> t;
  ~late_holder() {
    const std::size_t before = test::delete_calls();
    t.reset();
    deletes_at_exit = static_cast<long>(test::delete_calls() - before);
  }
};

}  // namespace

TEST_SUITE("allocation") {
  TEST_CASE_FIXTURE(test::listening, "a 10,000-message echo loop performs no operator new after warm-up (borrowed receive)") {
    const std::size_t news = echo_news(ctx, l, &borrowed_echo_loop);
    CHECK(news == 0);
  }

  TEST_CASE("a frame freed at thread exit after the recycler's cleanup goes back to operator delete") {
    deletes_at_exit = -1;
    std::thread([] {
      thread_local late_holder holder;  // constructed before this thread's first frame
      holder.t.emplace(nothing());      // the first frame: the recycler's cleanup is made now
    }).join();
    // The frame was freed after the cleanup ran: it must not land on a list nobody empties.
    CHECK(deletes_at_exit.load() == 1);
  }

  TEST_CASE_FIXTURE(test::listening, "a 10,000-message echo loop performs no operator new after warm-up (plain form)") {
    const std::size_t news = echo_news(ctx, l, &plain_echo_loop);
    MESSAGE("operator new calls in 10,000 round trips: " << news);
    CHECK(news == 0);
  }

  TEST_CASE_FIXTURE(test::listening, "a 10,000-message echo loop performs no operator new after warm-up (args form)") {
    const std::size_t news = echo_news(ctx, l, &args_echo_loop);
    CHECK(news == 0);
  }

  TEST_CASE_FIXTURE(test::listening, "a 10,000-message echo loop with a timeout and a stop token on every operation performs no operator new after warm-up") {
    const std::size_t news = echo_news(ctx, l, &timed_echo_loop);
    CHECK(news == 0);
  }

  TEST_CASE("an idle connection of the README's server holds at most 1 KiB of the heap") {
    // On a thread of its own, so that no frame comes from a recycler list other tests filled:
    // every byte an idle connection holds is asked of operator new here.
    std::size_t per_conn = 0, served = 0;
    std::thread([&] {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      std::vector<int> fds;
      fds.reserve(idle_conns + 1);  // not counted as the connections' memory
      ctx.block_on([](io_context& ctx, socket& l, std::vector<int>& fds, std::size_t& per_conn,
                      std::size_t& served) -> task<void> {
        // Warm-up: one connection's worth of each size, served and ended, then cached.
        fds.push_back(test::blocking_connect(l.local_endpoint()));
        ctx.spawn(readme_serve(co_await l.accept_async()));
        co_await sleep_for(ctx, std::chrono::milliseconds(20));
        const std::size_t before = test::new_bytes();
        for (int i = 0; i < idle_conns; ++i) fds.push_back(test::blocking_connect(l.local_endpoint()));
        for (int i = 0; i < idle_conns; ++i) ctx.spawn(readme_serve(co_await l.accept_async()));
        co_await sleep_for(ctx, std::chrono::milliseconds(50));  // every handler reaches its first receive and waits there
        per_conn = (test::new_bytes() - before) / idle_conns;
        served = ctx.pending_operations();
      }(ctx, l, fds, per_conn, served));
      for (int fd : fds) ::close(fd);
    }).join();
    MESSAGE("heap bytes per idle connection: " << per_conn);
    CHECK(served >= idle_conns);  // each handler is suspended in its receive
    CHECK(per_conn > 0);
    CHECK(per_conn <= 1024);
  }

  TEST_CASE("task frames are recycled: creating and finishing tasks allocates nothing") {
    io_context ctx;
    std::size_t news = 99;
    ctx.block_on([](std::size_t& news) -> task<void> {
      auto leaf = [](int v) -> task<int> { co_return v; };
      int sum = co_await leaf(1);  // warm-up
      std::size_t start = test::new_calls();
      for (int i = 0; i < 10'000; ++i) sum += co_await leaf(i);
      news = test::new_calls() - start;
      CHECK(sum > 0);
    }(news));
    CHECK(news == 0);
  }
}

}  // namespace rstest
