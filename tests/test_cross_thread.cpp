// runtime: work between its threads: spawn_on ring to ring (MSG_RING), a stop_source on one
// thread cancelling an operation of another, and the stop signals.
#include <doctest/doctest.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fcntl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

#include "../lib/message_gate.hpp"  // internal: the gate's wait is tested directly
#include "runtime_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

namespace {

// Counts, once, the destruction of the coroutine frame it is a parameter of (run or not).
struct frame_mark {
  explicit frame_mark(std::atomic<int>* n) noexcept : n_(n) {}
  frame_mark(frame_mark&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  frame_mark& operator=(frame_mark&&) = delete;
  ~frame_mark() {
    if (n_) n_->fetch_add(1);
  }
  std::atomic<int>* n_;
};

bool signal_blocked(int sig) {
  sigset_t now;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

bool signal_pending(int sig) {
  sigset_t p;
  ::sigpending(&p);
  return sigismember(&p, sig) == 1;
}

}  // namespace

TEST_SUITE("cross-thread") {
  TEST_CASE("spawn_on between runtime threads goes ring to ring: every task runs once, on its thread") {
    constexpr unsigned threads = 3;
    constexpr int per = 300;   // from each thread's factory to each other thread
    constexpr int hops = 1000;  // a task that spawns the next on the other of threads 0 and 1
    runtime rt({.threads = threads});
    REQUIRE(rt.size() == threads);
    std::array<std::atomic<int>, threads> ran{};
    std::atomic<int> wrong{0}, hopped{0};
    auto job = [&](unsigned want) -> task<void> {
      if (runtime::this_index() == want)
        ran[want].fetch_add(1);
      else
        wrong.fetch_add(1);
      co_return;
    };
    std::function<task<void>(int)> hop = [&](int left) -> task<void> {
      hopped.fetch_add(1);
      if (left > 0) rt.spawn_on(1 - runtime::this_index(), hop(left - 1));
      co_return;
    };
    auto total = [&] {
      int n = 0;
      for (auto& r : ran) n += r.load();
      return n;
    };
    const int expected = per * static_cast<int>(threads * (threads - 1));
    runtime_report rep = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      // The factory's first lines: every other thread's context is already up.
      for (unsigned to = 0; to < threads; ++to)
        if (to != index)
          for (int i = 0; i < per; ++i) rt.spawn_on(to, job(to));
      if (index == 0) rt.spawn_on(1, hop(hops - 1));
      io_context::work_guard keep(ctx);  // every thread stays up until all have run
      for (int i = 0; i < 2000 && (total() < expected || hopped.load() < hops); ++i)
        co_await sleep_for(ctx, 2ms);
      rt.stop();
    });
    CHECK(wrong.load() == 0);
    CHECK(hopped.load() == hops);
    std::uint64_t spawned_in = 0;
    for (unsigned i = 0; i < threads; ++i) {
      CHECK(ran[i].load() == per * static_cast<int>(threads - 1));
      spawned_in += rep.threads[i].spawned_in;
    }
    // Every spawn_on above came from a runtime thread onto another one: all travelled as messages.
    if (io_context().features().msg_ring) CHECK(spawned_in == static_cast<std::uint64_t>(expected + hops));
    CHECK(rep.tasks_left == 0);
  }

  TEST_CASE("spawn_on racing the target thread's end: a task is refused or sent, and every frame is destroyed once") {
    const std::size_t fds_before = test::open_fds();
    std::atomic<int> sent{0}, refused{0}, ran{0}, frames{0};
    {
      runtime rt({.threads = 2, .grace = 100ms});
      auto job = [&](frame_mark) -> task<void> {
        ran.fetch_add(1);
        co_return;
      };
      rt.run([&](io_context& ctx, unsigned index) -> task<void> {
        if (index == 1) {
          co_await sleep_for(ctx, 20ms);
          co_return;  // nothing left on thread 1: its loop ends, then its shutdown and drain
        }
        io_context::work_guard keep(ctx);
        const auto until = std::chrono::steady_clock::now() + 3s;
        while (refused.load() < 20 && std::chrono::steady_clock::now() < until) {
          for (int i = 0; i < 16; ++i) {
            try {
              rt.spawn_on(1, job(frame_mark(&frames)));
              sent.fetch_add(1);
            } catch (const std::logic_error&) {
              refused.fetch_add(1);
            }
          }
          co_await sleep_for(ctx, 100us);  // the loop enters: the messages go out
        }
        rt.stop();
      });
    }
    MESSAGE("sent " << sent.load() << ", ran " << ran.load() << ", refused " << refused.load());
    CHECK(sent.load() > 0);
    CHECK(refused.load() >= 20);
    CHECK(ran.load() <= sent.load());
    CHECK(frames.load() == sent.load() + refused.load());  // none leaked, none destroyed twice
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("a stop_source on one thread cancels a receive owned by another thread's ring, exactly once") {
    constexpr int rounds = 200;
    runtime rt({.threads = 2});
    std::atomic<int> completions{0};  // thread 1 waits for it
    int cancelled = 0, with_data = 0;
    long sent = 0, received = 0;
    std::atomic<bool> other_thread{true};
    rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index != 0) {
        io_context::work_guard keep(ctx);  // thread 1 stays up for the cancellers
        while (completions < rounds) co_await sleep_for(ctx, 1ms);
        co_return;
      }
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      test::socket_pair p = co_await test::connected_pair(ctx, l);
      std::array<std::byte, 64> buf{};
      const std::byte one[1] = {std::byte{42}};
      for (int i = 0; i < rounds; ++i) {
        std::stop_source src;
        // Every other round a byte races the cancel: the receive completes with it or with
        // operation_canceled, once; a byte a cancelled receive left is taken later.
        if (i % 2 == 1) {
          co_await p.client.send_async(one);
          ++sent;
        }
        rt.spawn_on(1, [](std::stop_source s, std::atomic<bool>& where) -> task<void> {
          if (runtime::this_index() != 1) where.store(false);
          s.request_stop();  // the stop callback runs here, on thread 1
          co_return;
        }(src, other_thread));
        auto [ec, n] = co_await as_result(p.server.receive_async(buf, src.get_token()));
        completions.fetch_add(1);
        if (ec == std::errc::operation_canceled) {
          ++cancelled;
        } else {
          REQUIRE(!ec);
          ++with_data;
          received += static_cast<long>(n);
        }
      }
      p.client.close();
      for (;;) {
        auto [ec, n] = co_await as_result(p.server.receive_async(buf));
        if (ec || n == 0) break;
        received += static_cast<long>(n);
      }
      rt.stop();
    });
    MESSAGE("cancelled " << cancelled << ", completed with data " << with_data);
    CHECK(other_thread.load());
    CHECK(completions.load() == rounds);
    CHECK(cancelled + with_data == rounds);
    CHECK(cancelled >= rounds / 2);  // the rounds with no byte can end only by the cancel
    CHECK(received == sent);         // nothing lost to a cancel
  }

  TEST_CASE("a stop signal stops every thread (thread 0 ended early); a second one is taken; the mask is restored") {
    REQUIRE_FALSE(signal_blocked(SIGUSR1));
    const std::size_t fds_before = test::open_fds();
    tally t;
    runtime_report rep;
    {
      runtime rt({.threads = 2, .grace = 1000ms, .stop_signals = {SIGUSR1, SIGUSR2}});
      rep = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
        CHECK(signal_blocked(SIGUSR1));  // inherited from run()'s thread
        if (index == 0) co_return;  // nothing to do: thread 0 ends at once; thread 1 still watches
        if (index == 1) {
          ctx.spawn([](io_context& c, tally& tl, runtime& r) -> task<void> {
            while (tl.listening.load() < 1) co_await sleep_for(c, 1ms);
            co_await sleep_for(c, 50ms);
            // Thread 0's loop has ended (spawn_on to it is refused): only thread 1 watches now.
            CHECK_THROWS_AS(r.spawn_on(0, []() -> task<void> { co_return; }()), std::logic_error);
            ::kill(::getpid(), SIGUSR1);  // as Ctrl-C would: to the process, not to a thread
            ::kill(::getpid(), SIGUSR1);  // the second is taken, not delivered, after the run
          }(ctx, t, rt));
        }
        co_await serve_all(rt, ctx, t);  // ends when the stop closes its listener
      });
    }
    CHECK(rep.stop_signal == SIGUSR1);
    CHECK(rep.finished_in_time);
    CHECK(rep.tasks_left == 0);
    CHECK_FALSE(signal_blocked(SIGUSR1));
    CHECK_FALSE(signal_blocked(SIGUSR2));
    CHECK_FALSE(signal_pending(SIGUSR1));
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("misuse: a stop signal that cannot be taken throws before any thread starts") {
    runtime bad({.threads = 2, .stop_signals = {SIGKILL}});
    int factories = 0;
    CHECK_THROWS_AS(bad.run([&](io_context&, unsigned) -> task<void> {
      ++factories;
      co_return;
    }),
                    std::invalid_argument);
    CHECK(factories == 0);
    CHECK_FALSE(signal_blocked(SIGKILL));
    runtime bad2({.threads = 1, .stop_signals = {0}});
    CHECK_THROWS_AS(bad2.run([](io_context&, unsigned) -> task<void> { co_return; }), std::invalid_argument);
    // Nothing of the refused run is left: it refuses again the same way (not "a run is going on").
    CHECK_THROWS_AS(bad.run([](io_context&, unsigned) -> task<void> { co_return; }), std::invalid_argument);
    runtime ok({.threads = 1, .stop_signals = {SIGUSR2}});
    runtime_report r = ok.run([](io_context&, unsigned) -> task<void> { co_return; });
    CHECK(r.stop_signal == 0);
    CHECK_FALSE(signal_blocked(SIGUSR2));
  }

  TEST_CASE("a ring-to-ring gate closes only after its last sender left, and says so on stderr while it waits") {
    io_context ctx;
    detail::message_gate gate;
    gate.open();
    REQUIRE(gate.enter());  // a message on its way, handled 150 ms from now
    std::thread sender([&gate] {
      std::this_thread::sleep_for(150ms);
      gate.leave();
    });
    int err[2];
    REQUIRE(::pipe2(err, O_NONBLOCK | O_CLOEXEC) == 0);
    const int saved = ::dup(2);
    ::dup2(err[1], 2);
    const auto t0 = std::chrono::steady_clock::now();
    gate.close(ctx, "gate test", 40ms);
    const auto waited = std::chrono::steady_clock::now() - t0;
    ::dup2(saved, 2);
    ::close(saved);
    sender.join();
    std::string said(4096, '\0');
    const ssize_t n = ::read(err[0], said.data(), said.size());
    said.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    ::close(err[0]);
    ::close(err[1]);
    CHECK(waited >= 150ms);
    CHECK(said.find("ringsock: gate test: 1 ring-to-ring message(s) still travelling") != std::string::npos);
    CHECK_FALSE(gate.enter());  // shut: nothing more is sent
  }
}

}  // namespace rstest
