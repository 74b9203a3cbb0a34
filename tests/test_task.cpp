#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous
using namespace std::chrono_literals;

namespace {
task<int> value(int v) { co_return v; }
task<void> nothing() { co_return; }
task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}
task<int> add(int a, int b) { co_return co_await value(a) + co_await value(b); }

task<long> many_sync_awaits(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await value(1);
  co_return sum;
}

task<int> sleepy(io_context& ctx, int v, std::chrono::milliseconds d) {
  co_await sleep_for(ctx, d);
  co_return v;
}

struct counted {
  static inline int alive = 0;
  counted() { ++alive; }
  counted(const counted&) { ++alive; }
  ~counted() { --alive; }
};
}  // namespace

TEST_SUITE("task") {
  TEST_CASE("a task is lazy and yields its value through co_await") {
    io_context ctx;
    CHECK(ctx.block_on(add(2, 3)) == 5);
  }

  TEST_CASE("exceptions propagate through co_await and block_on") {
    io_context ctx;
    CHECK_THROWS_WITH_AS(ctx.block_on(thrower()), "boom", std::runtime_error);
    auto catcher = []() -> task<std::string> {
      try {
        co_await thrower();
      } catch (const std::runtime_error& e) {
        co_return e.what();
      }
      co_return "no";
    };
    CHECK(ctx.block_on(catcher()) == "boom");
  }

  TEST_CASE("a million synchronously-completing awaits do not grow the stack") {
    io_context ctx;
    CHECK(ctx.block_on(many_sync_awaits(1'000'000)) == 1'000'000);
  }

  TEST_CASE("when_all runs tasks concurrently and returns every result") {
    io_context ctx;
    auto start = std::chrono::steady_clock::now();
    auto [a, b, c] = ctx.block_on(when_all(sleepy(ctx, 1, 100ms), sleepy(ctx, 2, 100ms), nothing()));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(a == 1);
    CHECK(b == 2);
    (void)c;
    CHECK(took < 190ms);  // concurrent: in sequence it would take 200 ms or more

    std::vector<task<int>> ts;
    for (int i = 0; i < 10; ++i) ts.push_back(sleepy(ctx, i, 5ms));
    std::vector<int> vs = ctx.block_on(when_all(std::move(ts)));
    REQUIRE(vs.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(vs[i] == i);
  }

  TEST_CASE("when_all waits for every task, then rethrows the first exception") {
    io_context ctx;
    auto run = [](io_context& ctx) -> task<int> {
      int finished = 0;
      auto slow = [](io_context& ctx, int& finished) -> task<void> {
        co_await sleep_for(ctx, 20ms);
        ++finished;
      };
      try {
        co_await when_all(thrower(), slow(ctx, finished));
      } catch (const std::runtime_error&) {
        co_return finished;
      }
      co_return -1;
    };
    CHECK(ctx.block_on(run(ctx)) == 1);
  }

  TEST_CASE("spawn starts the task on a later loop turn, never on the caller's stack") {
    io_context ctx;
    auto body = [](io_context& ctx) -> task<void> {
      bool ran = false;
      auto child = [](bool& ran) -> task<void> {
        ran = true;
        co_return;
      };
      ctx.spawn(child(ran));
      CHECK_FALSE(ran);
      co_await sleep_for(ctx, 1ms);
      CHECK(ran);
    };
    ctx.block_on(body(ctx));
  }

  TEST_CASE("an exception escaping a spawned task reaches the exception handler") {
    io_context ctx;
    std::string seen;
    ctx.set_exception_handler([&](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        seen = ex.what();
      }
    });
    ctx.spawn([]() -> task<void> {
      co_await thrower();
    }());
    ctx.run();
    CHECK(seen == "boom");
  }

  TEST_CASE("run() returns when no work is left; unfinished tasks die with the context") {
    counted::alive = 0;
    {
      io_context ctx;
      ctx.spawn(nothing());
      ctx.run();  // returns: the task finished
      auto forever = [](io_context& ctx, counted) -> task<void> {
        co_await sleep_for(ctx, std::chrono::hours(1));
      };
      ctx.spawn(forever(ctx, counted{}));
      ctx.block_on(sleepy(ctx, 0, 1ms));  // the sleeper starts and stays pending
      CHECK(counted::alive == 1);
    }
    CHECK(counted::alive == 0);  // its frame was destroyed, its locals' destructors ran
  }
}

}  // namespace rstest
