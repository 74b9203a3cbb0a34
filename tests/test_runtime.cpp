// runtime: contexts on several threads, listeners on one port, one shutdown, errors to the caller.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

TEST_SUITE("runtime") {
  TEST_CASE("connections spread over the threads' SO_REUSEPORT listeners and every byte is echoed") {
    const std::size_t fds_before = test::open_fds();
    runtime rt({.threads = 2, .grace = 2000ms});
    tally t;
    constexpr int conns = 64;
    constexpr std::size_t size = 64 * 1024;
    std::atomic<long> echoed{0};
    std::thread clients([&] {
      if (!wait_for(t.listening, 2)) {
        rt.stop();
        return;
      }
      const endpoint ep = endpoint::loopback(address_family::ipv4, rt.bound_port(endpoint::loopback(address_family::ipv4)));
      echoed.store(echo_clients(ep, conns, size));
      rt.stop();
    });
    runtime_report rep = rt.run([&](io_context& ctx, unsigned) { return serve_all(rt, ctx, t); });
    clients.join();
    CHECK(echoed.load() == static_cast<long>(conns * size));
    CHECK(t.bytes[0].load() + t.bytes[1].load() == static_cast<long>(conns * size));
    CHECK(t.connections[0].load() + t.connections[1].load() == conns);
    // The kernel hashes the 4-tuple over the two listeners: both get some of 64.
    CHECK(t.connections[0].load() > 0);
    CHECK(t.connections[1].load() > 0);
    REQUIRE(rep.threads.size() == 2);
    CHECK(rep.threads[0].index == 0);
    CHECK(rep.threads[1].index == 1);
    CHECK(rep.finished_in_time);
    CHECK(rep.tasks_left == 0);
    CHECK(rep.stats.cqes == rep.threads[0].stats.cqes + rep.threads[1].stats.cqes);
    CHECK(rep.stats.buffers_lent == 0);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("a task that throws a bug stops every thread, and run() rethrows it after joining") {
    runtime rt({.threads = 2, .grace = 1000ms});
    tally t;
    std::atomic<int> started{0};
    auto factory = [&](io_context& ctx, unsigned index) -> task<void> {
      started.fetch_add(1);
      if (index == 1) {
        co_await sleep_for(ctx, 20ms);
        throw std::runtime_error("thread 1 broke");
      }
      co_await serve_all(rt, ctx, t);  // ends when the shutdown stops its listener
    };
    CHECK_THROWS_WITH_AS(rt.run(factory), "thread 1 broke", std::runtime_error);
    CHECK(started.load() == 2);
    // The runtime can run again after a failed run.
    std::atomic<int> ran{0};
    rt.run([&](io_context&, unsigned) -> task<void> {
      ran.fetch_add(1);
      co_return;
    });
    CHECK(ran.load() == 2);
  }

  TEST_CASE("a socket_error escaping a task ends only that task and is counted") {
    runtime rt({.threads = 2});
    runtime_report rep = rt.run([](io_context& ctx, unsigned index) -> task<void> {
      if (index == 0) {
        socket s(ctx, address_family::ipv4, socket_type::stream);
        // Nobody listens on this port of a fresh socket bound just for the purpose.
        socket probe = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
        const endpoint dead = probe.local_endpoint();
        probe.close();
        co_await s.connect_async(dead);  // connection_refused: a socket_error
      }
    });
    CHECK(rep.threads[0].stats.tasks_ended_by_io_error == 1);
    CHECK(rep.stats.tasks_ended_by_io_error == 1);
  }

  TEST_CASE("spawn_on runs a task on the chosen thread, from a runtime thread or from outside") {
    runtime rt({.threads = 2});
    std::atomic<int> on_one{0}, wrong{0};
    std::atomic<int> index1_ready{0};
    auto on_thread = [&](unsigned want) -> task<void> {
      if (runtime::this_index() == want && runtime::this_context() != nullptr)
        on_one.fetch_add(1);
      else
        wrong.fetch_add(1);
      co_return;
    };
    std::thread outsider([&] {
      if (!wait_for(index1_ready, 1)) return;
      rt.spawn_on(1, on_thread(1));  // from a thread of no runtime
      CHECK(runtime::this_context() == nullptr);
    });
    rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      if (index == 1) {
        io_context::work_guard keep(ctx);
        index1_ready.fetch_add(1);
        for (int i = 0; i < 200 && on_one.load() < 2; ++i) co_await sleep_for(ctx, 5ms);
        rt.stop();
      } else {
        while (index1_ready.load() == 0) co_await sleep_for(ctx, 1ms);
        rt.spawn_on(1, on_thread(1));  // from thread 0
        CHECK_THROWS_AS(rt.spawn_on(2, on_thread(2)), std::out_of_range);
      }
    });
    outsider.join();
    CHECK(on_one.load() == 2);
    CHECK(wrong.load() == 0);
    CHECK_THROWS_AS(rt.spawn_on(0, on_thread(0)), std::logic_error);  // not running
  }

  TEST_CASE("stop() from another thread under load: every thread shuts down, nothing leaks") {
    const std::size_t fds_before = test::open_fds();
    tally t;
    std::atomic<bool> done{false};
    std::atomic<long> echoed{0};
    {
      runtime rt({.threads = 2, .grace = 200ms});
      std::thread load([&] {
        if (!wait_for(t.listening, 2)) return;
        const endpoint ep = endpoint::loopback(address_family::ipv4, rt.bound_port(endpoint::loopback(address_family::ipv4)));
        std::vector<std::thread> ts;
        for (int i = 0; i < 8; ++i) ts.emplace_back([&] {
          while (!done.load()) {
            const int fd = try_connect(ep);
            if (fd < 0) break;
            const long n = echo_blocking(fd, 16 * 1024);
            ::close(fd);
            if (n < 0) break;  // the server went away mid-echo
            echoed.fetch_add(n);
          }
        });
        std::this_thread::sleep_for(200ms);
        rt.stop();  // from this thread, while connections are in flight
        for (auto& th : ts) th.join();
      });
      runtime_report rep = rt.run([&](io_context& ctx, unsigned) { return serve_all(rt, ctx, t); });
      done = true;
      load.join();
      CHECK(rep.threads.size() == 2);
      CHECK(rep.stats.buffers_lent == 0);
      CHECK(rep.tasks_left == 0);
    }
    MESSAGE("bytes echoed before the stop: " << echoed.load());
    CHECK(echoed.load() > 0);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("destroying a runtime while its run() goes on stops it and waits: nothing leaks") {
    const std::size_t fds_before = test::open_fds();
    tally t;
    auto rt = std::make_unique<runtime>(runtime::params{.threads = 2, .grace = 100ms});
    std::atomic<bool> returned{false};
    std::thread runner([&] {
      runtime_report rep = rt->run([&](io_context& ctx, unsigned) { return serve_all(*rt, ctx, t); });
      returned = rep.threads.size() == 2;
    });
    REQUIRE(wait_for(t.listening, 2));
    // An idle connection on each listener, held open across the destruction.
    const endpoint ep = endpoint::loopback(address_family::ipv4, rt->bound_port(endpoint::loopback(address_family::ipv4)));
    std::vector<int> idle;
    for (int i = 0; i < 16; ++i) idle.push_back(test::blocking_connect(ep));
    std::this_thread::sleep_for(50ms);
    // The destructor must wait for run() to end on the runner thread; run() then returns to a
    // runner that no longer touches the runtime.
    std::thread destroyer([&] { rt.reset(); });
    destroyer.join();
    runner.join();
    CHECK(returned.load());
    for (int fd : idle) ::close(fd);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("misuse: more pinned threads than CPUs, and a run() inside a run()") {
    CHECK_THROWS_AS(runtime({.threads = 100000, .pin = true}), std::invalid_argument);
    runtime rt({.threads = 1});
    bool nested_threw = false;
    rt.run([&](io_context&, unsigned) -> task<void> {
      try {
        rt.run([](io_context&, unsigned) -> task<void> { co_return; });
      } catch (const std::logic_error&) {
        nested_threw = true;
      }
      co_return;
    });
    CHECK(nested_threw);
  }

  TEST_CASE("pinned threads report their CPU; this_context() is each thread's own") {
    runtime rt({.threads = 1, .pin = true});
    io_context* seen = nullptr;
    io_context* given = nullptr;
    runtime_report rep = rt.run([&](io_context& ctx, unsigned) -> task<void> {
      given = &ctx;
      seen = runtime::this_context();
      co_return;
    });
    CHECK(seen == given);
    CHECK(rep.threads[0].cpu >= 0);
    CHECK(runtime::this_context() == nullptr);
  }
}

}  // namespace rstest
