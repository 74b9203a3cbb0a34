#include <doctest/doctest.h>

#include <sys/utsname.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

TEST_SUITE("io_context") {
  TEST_CASE("the ring is set up with the newest flags the kernel accepts") {
    io_context ctx;
    MESSAGE("single_issuer=" << ctx.features().single_issuer
                             << " defer_taskrun=" << ctx.features().defer_taskrun
                             << " coop_taskrun=" << ctx.features().coop_taskrun
                             << " registered_ring_fd=" << ctx.features().registered_ring_fd);
    // The flags are tried together: DEFER_TASKRUN comes only with SINGLE_ISSUER, and COOP_TASKRUN
    // is the fallback when that pair is refused.
    CHECK(ctx.features().defer_taskrun == ctx.features().single_issuer);
    CHECK_FALSE((ctx.features().defer_taskrun && ctx.features().coop_taskrun));
    // The row this kernel must take: SINGLE_ISSUER and DEFER_TASKRUN exist since Linux 6.1, and a
    // registered ring fd since 5.18.
    utsname u{};
    REQUIRE(::uname(&u) == 0);
    int major = 0, minor = 0;
    std::sscanf(u.release, "%d.%d", &major, &minor);
    if (major > 6 || (major == 6 && minor >= 1)) {
      CHECK(ctx.features().single_issuer);
      CHECK(ctx.features().defer_taskrun);
      CHECK(ctx.features().registered_ring_fd);
    } else {
      MESSAGE("kernel " << u.release << " predates DEFER_TASKRUN: a fallback row is expected");
    }
  }

  TEST_CASE("a ring that cannot be set up throws an error naming the cause and the remedy") {
    CHECK(std::strstr(ring_setup_error(EPERM).what(), "io_uring_disabled") != nullptr);
    CHECK(std::strstr(ring_setup_error(ENOMEM).what(), "RLIMIT_MEMLOCK") != nullptr);
    CHECK(std::strstr(ring_setup_error(ENOSYS).what(), "kernel") != nullptr);
    CHECK(ring_setup_error(EPERM).code() == std::errc::operation_not_permitted);
    // A real refusal: more entries than the kernel allows.
    CHECK_THROWS_AS(io_context(io_context::params{1u << 20, 1u << 28}), ring_setup_error);
  }

  TEST_CASE("post from another thread wakes a blocked run()") {
    io_context ctx;
    io_context::work_guard guard(ctx);  // run() would otherwise return at once
    std::atomic<bool> ran{false};
    std::thread::id ran_on;
    std::thread other([&] {
      std::this_thread::sleep_for(50ms);
      ctx.post([&] {
        ran_on = std::this_thread::get_id();
        ran = true;
        ctx.stop();
      });
    });
    auto t0 = std::chrono::steady_clock::now();
    ctx.run();  // blocks in io_uring_enter until the post wakes it
    other.join();
    CHECK(ran);
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(std::chrono::steady_clock::now() - t0 >= 45ms);
  }

  TEST_CASE("posted work is bounded: past max_posted, post throws queue_full_error, loses nothing") {
    io_context::params p;
    p.max_posted = 100;
    io_context ctx(p);
    std::vector<int> order;
    int refused = 0;
    std::thread producer([&] {
      for (int i = 0; i < 150; ++i) {
        try {
          ctx.post([&order, i] { order.push_back(i); });
        } catch (const queue_full_error& e) {
          ++refused;
          CHECK(std::strstr(e.what(), "100 items") != nullptr);
        }
      }
    });
    producer.join();  // the loop was not running: the queue filled up
    CHECK(refused == 50);
    ctx.run();        // runs what was queued, in order, and returns (no other work)
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
    ctx.post([&order] { order.push_back(1000); });  // room again once the loop drained it
    ctx.run();
    CHECK(order.back() == 1000);
  }

  TEST_CASE("stop() from another thread ends run()") {
    io_context ctx;
    io_context::work_guard guard(ctx);  // without stop(), run() would wait forever
    std::atomic<bool> stopped{false};
    std::thread other([&] {
      std::this_thread::sleep_for(20ms);
      stopped = true;
      ctx.stop();
    });
    auto t0 = std::chrono::steady_clock::now();
    ctx.run();
    other.join();
    CHECK(stopped.load());  // run() returned because of the stop, not before it
    CHECK(std::chrono::steady_clock::now() - t0 >= 15ms);
  }

  TEST_CASE("sleep_for waits at least its duration and counts one SQE") {
    io_context ctx;
    ctx.block_on([](io_context& c) -> task<void> { co_await sleep_for(c, 0ms); }(ctx));
    auto before = ctx.stats();
    auto t0 = std::chrono::steady_clock::now();
    auto ec = ctx.block_on([](io_context& ctx) -> task<std::error_code> {
      co_return co_await sleep_for(ctx, 30ms);
    }(ctx));
    CHECK(!ec);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK(ctx.stats().sqes_submitted - before.sqes_submitted == 1);
    CHECK(ctx.stats().cqes - before.cqes >= 1);
  }

  TEST_CASE("sleep_for ends early with operation_canceled when its stop token fires") {
    io_context ctx;
    std::stop_source src;
    std::thread other([&] {
      std::this_thread::sleep_for(20ms);
      src.request_stop();
    });
    auto t0 = std::chrono::steady_clock::now();
    auto ec = ctx.block_on([](io_context& ctx, std::stop_token tok) -> task<std::error_code> {
      co_return co_await sleep_for(ctx, 10s, tok);
    }(ctx, src.get_token()));
    other.join();
    CHECK(ec == std::errc::operation_canceled);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  }

  TEST_CASE("SQEs of one loop turn go to the kernel in one io_uring_enter") {
    io_context ctx;
    auto many = [](io_context& ctx) -> task<void> {
      std::vector<task<int>> ts;
      for (int i = 0; i < 100; ++i)
        ts.push_back([](io_context& ctx) -> task<int> {
          co_await sleep_for(ctx, 10ms);
          co_return 1;
        }(ctx));
      co_await when_all(std::move(ts));
    };
    ctx.block_on([](io_context& c) -> task<void> { co_await sleep_for(c, 0ms); }(ctx));
    auto before = ctx.stats();
    ctx.block_on(many(ctx));
    auto d_sqes = ctx.stats().sqes_submitted - before.sqes_submitted;
    auto d_enter = ctx.stats().enter_calls - before.enter_calls;
    MESSAGE("100 timers: " << d_sqes << " SQEs in " << d_enter << " io_uring_enter calls");
    CHECK(d_sqes == 100);
    CHECK(d_enter < 20);
  }
}

}  // namespace rstest
