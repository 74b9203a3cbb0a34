// spread_mode::hand_off: one thread's listener accepts for all, the connections travel to the
// other threads' fed listeners over IORING_OP_MSG_RING; none is lost, leaked or served twice.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

namespace {

endpoint any_loopback() { return endpoint::loopback(address_family::ipv4); }

endpoint bound(const runtime& rt) {
  return endpoint::loopback(address_family::ipv4, rt.bound_port(any_loopback()));
}

// The thread whose listener accepted (the only one that sent or kept any).
const thread_report* origin_of(const runtime_report& rep) {
  const thread_report* o = nullptr;
  for (const thread_report& t : rep.threads)
    if (t.handed_out + t.kept > 0) {
      if (o) return nullptr;  // two accepting threads: wrong
      o = &t;
    }
  return o;
}

std::uint64_t handed_in(const runtime_report& rep) {
  std::uint64_t n = 0;
  for (const thread_report& t : rep.threads) n += t.handed_in;
  return n;
}

std::uint64_t refused(const runtime_report& rep) {
  std::uint64_t n = 0;
  for (const thread_report& t : rep.threads) n += t.refused;
  return n;
}

}  // namespace

TEST_SUITE("hand-off") {
  TEST_CASE("one listener accepts for all threads, each serves its share, every byte is echoed") {
    const std::size_t fds_before = test::open_fds();
    runtime rt({.threads = 3, .grace = 2000ms, .spread = spread_mode::hand_off});
    tally t;
    constexpr int conns = 60;
    constexpr std::size_t size = 16 * 1024;
    std::atomic<long> echoed{0};
    std::thread clients([&] {
      if (!wait_for(t.listening, 3)) {
        rt.stop();
        return;
      }
      echoed.store(echo_clients(bound(rt), conns, size));
      rt.stop();
    });
    runtime_report rep = rt.run([&](io_context& ctx, unsigned) { return serve_all(rt, ctx, t); });
    clients.join();
    CHECK(echoed.load() == static_cast<long>(conns * size));
    int served = 0;
    for (unsigned i = 0; i < 3; ++i) {
      served += t.connections[i].load();
      CHECK(t.connections[i].load() > 0);  // the fewest-waiting rule takes turns among equals
    }
    CHECK(served == conns);
    const thread_report* o = origin_of(rep);
    REQUIRE(o != nullptr);
    CHECK(o->handed_out + o->kept == static_cast<std::uint64_t>(conns));
    CHECK(o->handed_out > 0);
    CHECK(handed_in(rep) == o->handed_out);  // every message arrived
    CHECK(refused(rep) == 0);
    CHECK(rep.tasks_left == 0);
    CHECK(rep.stats.buffers_lent == 0);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("hand-off under churn: every connection is served once and none is lost") {
    const std::size_t fds_before = test::open_fds();
    runtime rt({.threads = 3, .grace = 2000ms, .spread = spread_mode::hand_off});
    tally t;
    constexpr int clients_n = 6, per_client = 150;
    constexpr std::size_t size = 4096;
    std::atomic<long> echoed{0};
    std::atomic<int> failed{0};
    std::thread load([&] {
      if (!wait_for(t.listening, 3)) {
        rt.stop();
        return;
      }
      std::vector<std::thread> ts;
      for (int c = 0; c < clients_n; ++c) ts.emplace_back([&] {
        for (int i = 0; i < per_client; ++i) {
          const int fd = try_connect(bound(rt));
          const long n = fd < 0 ? -1 : echo_blocking(fd, size);
          if (fd >= 0) ::close(fd);
          if (n > 0)
            echoed.fetch_add(n);
          else
            failed.fetch_add(1);
        }
      });
      for (auto& th : ts) th.join();
      rt.stop();
    });
    runtime_report rep = rt.run([&](io_context& ctx, unsigned) { return serve_all(rt, ctx, t); });
    load.join();
    constexpr int total = clients_n * per_client;
    CHECK(failed.load() == 0);
    CHECK(echoed.load() == static_cast<long>(total * size));
    CHECK(t.connections[0].load() + t.connections[1].load() + t.connections[2].load() == total);
    CHECK(t.bytes[0].load() + t.bytes[1].load() + t.bytes[2].load() == static_cast<long>(total * size));
    const thread_report* o = origin_of(rep);
    REQUIRE(o != nullptr);
    CHECK(o->handed_out + o->kept == static_cast<std::uint64_t>(total));
    CHECK(handed_in(rep) == o->handed_out);
    CHECK(refused(rep) == 0);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("stop() under hand-off load: no connection is left unserved, every fd is closed") {
    const std::size_t fds_before = test::open_fds();
    tally t;
    std::atomic<bool> done{false};
    std::atomic<long> echoed{0};
    std::atomic<int> silent{0};
    runtime_report rep;
    {
      runtime rt({.threads = 3, .grace = 300ms, .spread = spread_mode::hand_off});
      std::thread load([&] {
        if (!wait_for(t.listening, 3)) return;
        const endpoint ep = bound(rt);
        std::vector<std::thread> ts;
        for (int i = 0; i < 8; ++i) ts.emplace_back([&] {
          while (!done.load()) {
            const int fd = try_connect(ep);
            if (fd < 0) break;
            const long n = echo_blocking(fd, 8 * 1024);
            ::close(fd);
            if (n == -2) silent.fetch_add(1);  // accepted by the kernel and then forgotten
            if (n < 0) break;
            echoed.fetch_add(n);
          }
        });
        std::this_thread::sleep_for(300ms);
        rt.stop();
        for (auto& th : ts) th.join();
      });
      rep = rt.run([&](io_context& ctx, unsigned) { return serve_all(rt, ctx, t); });
      done = true;
      load.join();
    }
    MESSAGE("bytes echoed before the stop: " << echoed.load());
    CHECK(echoed.load() > 0);
    CHECK(silent.load() == 0);
    const thread_report* o = origin_of(rep);
    REQUIRE(o != nullptr);
    CHECK(handed_in(rep) == o->handed_out);  // nothing was still travelling when a ring went
    CHECK(rep.tasks_left == 0);
    CHECK(rep.stats.buffers_lent == 0);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("a thread that does not accept is handed little; the others serve the rest") {
    const std::size_t fds_before = test::open_fds();
    runtime rt({.threads = 3, .grace = 200ms, .spread = spread_mode::hand_off});
    tally t;
    std::atomic<int> lazy_listening{0};
    constexpr int conns = 200;
    std::atomic<int> echoed{0};
    std::thread clients([&] {
      if (!wait_for(t.listening, 2) || !wait_for(lazy_listening, 1)) {
        rt.stop();
        return;
      }
      std::vector<int> fds;
      for (int i = 0; i < conns; ++i) {
        const int fd = test::blocking_connect(bound(rt));
        const char b = 'x';
        if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1) break;
        fds.push_back(fd);
      }
      // Every connection that a serving thread has echoes its byte; the lazy thread's do not.
      const auto until = std::chrono::steady_clock::now() + 3s;
      std::vector<bool> got(fds.size());
      while (std::chrono::steady_clock::now() < until && echoed.load() < conns) {
        std::vector<pollfd> ps;
        for (std::size_t i = 0; i < fds.size(); ++i)
          if (!got[i]) ps.push_back({fds[i], POLLIN, 0});
        if (::poll(ps.data(), ps.size(), 100) <= 0) continue;
        for (const pollfd& p : ps) {
          if (!(p.revents & POLLIN)) continue;
          char c;
          if (::recv(p.fd, &c, 1, 0) == 1)
            for (std::size_t i = 0; i < fds.size(); ++i)
              if (fds[i] == p.fd) got[i] = true, echoed.fetch_add(1);
        }
      }
      rt.stop();
      for (int fd : fds) ::close(fd);
    });
    // Thread 0 listens first, so it accepts; thread 2 listens and never accepts.
    runtime_report rep = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index == 0) co_return co_await serve_all(rt, ctx, t);
      while (t.listening.load() == 0) co_await sleep_for(ctx, 1ms);
      if (index == 1) co_return co_await serve_all(rt, ctx, t);
      socket l = rt.listen(ctx, any_loopback());
      lazy_listening.fetch_add(1);
      for (;;) co_await sleep_for(ctx, 10ms);  // ends when the shutdown destroys it
    });
    clients.join();
    REQUIRE(rep.threads.size() == 3);
    CHECK(rep.threads[0].handed_out + rep.threads[0].kept == static_cast<std::uint64_t>(conns));
    const std::uint64_t lazy = rep.threads[2].handed_in;
    MESSAGE("handed to the thread that never accepts: " << lazy << " of " << conns);
    CHECK(lazy <= 64);  // at most its queue's worth waiting for it (the default capacity)
    CHECK(lazy < conns / 3);
    CHECK(echoed.load() == conns - static_cast<int>(lazy));
    CHECK(t.connections[0].load() + t.connections[1].load() == conns - static_cast<int>(lazy));
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("misuse: a second hand-off listener on one thread, a late one, a context not of the run") {
    runtime rt({.threads = 2, .spread = spread_mode::hand_off});
    std::atomic<int> twice{0}, late{0}, origin_closed{0};
    rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index == 0) {
        {
          socket l = rt.listen(ctx, any_loopback());
          try {
            socket again = rt.listen(ctx, any_loopback());
          } catch (const std::logic_error&) {
            twice.fetch_add(1);
          }
        }
        origin_closed.store(1);  // the accepting listener is closed here
        co_return;
      }
      while (origin_closed.load() == 0) co_await sleep_for(ctx, 1ms);
      try {
        socket l = rt.listen(ctx, any_loopback());
      } catch (const std::logic_error&) {
        late.fetch_add(1);
      }
    });
    CHECK(twice.load() == 1);
    CHECK(late.load() == 1);
    io_context outside;
    CHECK_THROWS_AS(rt.listen(outside, any_loopback()), std::invalid_argument);
  }

  TEST_CASE("misuse: a hand-off listener made from another thread; a fed listener closed and made again") {
    runtime rt({.threads = 2, .spread = spread_mode::hand_off});
    std::atomic<io_context*> ctx1{nullptr};
    std::atomic<int> foreign{0}, relisten{0}, done{0}, origin_ready{0};
    rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index == 1) {
        while (origin_ready.load() == 0) co_await sleep_for(ctx, 1ms);
        {
          socket fed = rt.listen(ctx, any_loopback());
        }  // closed: this thread may listen again
        socket fed = rt.listen(ctx, any_loopback());
        relisten.fetch_add(1);
        ctx1.store(&ctx);
        while (done.load() == 0) co_await sleep_for(ctx, 1ms);
        co_return;
      }
      socket l = rt.listen(ctx, any_loopback());
      origin_ready.store(1);
      while (ctx1.load() == nullptr) co_await sleep_for(ctx, 1ms);
      try {
        socket wrong = rt.listen(*ctx1.load(), any_loopback());  // thread 1's context, from 0
      } catch (const std::logic_error&) {
        foreign.fetch_add(1);
      }
      done.store(1);
    });
    CHECK(relisten.load() == 1);
    CHECK(foreign.load() == 1);
  }

  TEST_CASE("the accepting listener closes: fed listeners' accepts complete with operation_canceled") {
    const std::size_t fds_before = test::open_fds();
    runtime rt({.threads = 3, .grace = 500ms, .spread = spread_mode::hand_off});
    std::atomic<int> origin_ready{0}, fed_ready{0}, cancelled{0}, timed_out{0}, guarded{0};
    rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index == 0) {
        {
          socket l = rt.listen(ctx, any_loopback());
          origin_ready.store(1);
          while (fed_ready.load() < 2) co_await sleep_for(ctx, 1ms);
          co_await sleep_for(ctx, 20ms);  // both fed threads wait in accept_async
        }  // closed here
        co_return;
      }
      while (origin_ready.load() == 0) co_await sleep_for(ctx, 1ms);
      socket fed = rt.listen(ctx, any_loopback());
      // It shares the accepting thread's socket: neither may change it for every thread.
      try {
        fed.shutdown(shutdown_how::both);
      } catch (const std::logic_error&) {
        guarded.fetch_add(1);
      }
      try {
        fed.listen(16);
      } catch (const std::logic_error&) {
        guarded.fetch_add(1);
      }
      fed_ready.fetch_add(1);
      for (int round = 0; round < 2; ++round) {  // the waiting accept, then a later one
        auto [ec, s] = co_await as_result(fed.accept_async(3s));
        if (ec == std::errc::operation_canceled) cancelled.fetch_add(1);
        if (ec == std::errc::timed_out) timed_out.fetch_add(1);
      }
    });
    CHECK(guarded.load() == 4);
    CHECK(cancelled.load() == 4);
    CHECK(timed_out.load() == 0);
    CHECK(test::open_fds() == fds_before);
  }
}

}  // namespace rstest
