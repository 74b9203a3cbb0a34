// Micro-benchmarks (Google Benchmark, Debian libbenchmark-dev) (README.md, "Benchmarks"):
//  - a co_await that completes inline (an accept taken from the listener's ready queue, and a
//    task that finishes synchronously): no SQE, no syscall, no suspension;
//  - a suspended receive and a suspended accept round trip through the ring;
//  - heap allocations per operation in steady state (counted by replacing operator new).
// Numbers are reported, never asserted.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <vector>

#include "ringsock/ringsock.hpp"

// Calls of the global operator new (micro_alloc.cpp replaces it).
extern std::atomic<std::size_t> g_news;

namespace {
using namespace ringsock;
using ringsock::socket;

int raw_connect(const endpoint& ep) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, ep.data(), ep.size()) != 0) std::abort();
  return fd;
}

task<socket> accept_one(socket& l) { co_return co_await l.accept_async(); }

task<void> arm(io_context& ctx, socket& l) {
  ctx.spawn([](io_context& ctx, endpoint ep) -> task<void> {
    socket c = co_await socket::connect_async(ctx, ep);
  }(ctx, l.local_endpoint()));
  socket s = co_await l.accept_async();
}

// Queued connections taken by accept_async(args) inline, 64 per timed batch.
void BM_inline_accept(benchmark::State& state) {
  io_context ctx;
  socket l = socket::listen(ctx, endpoint::parse("127.0.0.1:0"));
  l.set_accept_queue_capacity(128);
  ctx.block_on(arm(ctx, l));  // the multishot accept is armed now
  const endpoint ep = l.local_endpoint();
  accept_args args;
  std::vector<int> clients;
  std::vector<socket> held;  // accepted sockets leave the timed part unclosed
  held.reserve(64);
  std::uint64_t inline_total = 0;
  for (auto _ : state) {
    clients.clear();
    for (int i = 0; i < 64; ++i) clients.push_back(raw_connect(ep));
    ctx.run_until([&] { return l.accept_queue_size() == 64; });  // reaped into the queue
    auto before = ctx.stats().inline_completions;
    auto t0 = std::chrono::steady_clock::now();
    ctx.block_on([](socket& l, accept_args& a, std::vector<socket>& held) -> task<void> {
      for (int i = 0; i < 64; ++i) {
        std::error_code ec = co_await l.accept_async(a);
        benchmark::DoNotOptimize(ec);
        held.push_back(std::move(a.accept_socket()));
      }
    }(l, args, held));
    auto t1 = std::chrono::steady_clock::now();
    inline_total += ctx.stats().inline_completions - before;
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    held.clear();
    for (int fd : clients) ::close(fd);
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.counters["inline_share"] = double(inline_total) / double(state.iterations() * 64);
}
BENCHMARK(BM_inline_accept)->UseManualTime()->Iterations(300)->Unit(benchmark::kMicrosecond);

task<int> ready_value(int v) { co_return v; }

// A co_await of a task that finishes synchronously (frames from the recycling allocator).
void BM_inline_task_await(benchmark::State& state) {
  io_context ctx;
  std::size_t news = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::size_t n0 = g_news.load();
    state.ResumeTiming();
    long sum = ctx.block_on([](long n) -> task<long> {
      long s = 0;
      for (long i = 0; i < n; ++i) s += co_await ready_value(1);
      co_return s;
    }(1000));
    benchmark::DoNotOptimize(sum);
    state.PauseTiming();
    news += g_news.load() - n0;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.counters["allocs_per_await"] = double(news) / double(state.iterations() * 1000);
}
BENCHMARK(BM_inline_task_await)->Unit(benchmark::kMicrosecond);

// One byte sent, then a receive that suspends until it arrives: the ring's round trip.
void BM_receive_round_trip(benchmark::State& state) {
  io_context ctx;
  socket l = socket::listen(ctx, endpoint::parse("127.0.0.1:0"));
  auto [a, b] = ctx.block_on([](io_context& ctx, socket& l) -> task<std::tuple<socket, socket>> {
    co_return co_await when_all(accept_one(l), socket::connect_async(ctx, l.local_endpoint()));
  }(ctx, l));
  std::array<std::byte, 1> one{std::byte{1}};
  // Warm-up, then count allocations across the timed loop.
  auto loop = [](socket& a, socket& b, std::array<std::byte, 1>& one, long n) -> task<void> {
    std::array<std::byte, 16> in;
    for (long i = 0; i < n; ++i) {
      co_await a.send_async(one);
      co_await b.receive_async(in);
    }
  };
  ctx.block_on(loop(a, b, one, 100));
  std::size_t n0 = g_news.load();
  long iters = 0;
  for (auto _ : state) {
    ctx.block_on(loop(a, b, one, 100));
    iters += 100;
  }
  state.SetItemsProcessed(iters);
  // Coroutine frames (one per batch of 100) come from the recycler: nothing to subtract.
  state.counters["allocs_per_op"] = double(g_news.load() - n0) / double(iters);
}
BENCHMARK(BM_receive_round_trip)->Unit(benchmark::kMicrosecond);

// An accept that suspends until a concurrent connect arrives (connect + accept + two closes).
void BM_accept_round_trip(benchmark::State& state) {
  io_context ctx;
  socket l = socket::listen(ctx, endpoint::parse("127.0.0.1:0"));
  const endpoint ep = l.local_endpoint();
  for (auto _ : state) {
    ctx.block_on([](io_context& ctx, socket& l, endpoint ep) -> task<void> {
      for (int i = 0; i < 50; ++i) {
        auto [s, c] = co_await when_all(accept_one(l), socket::connect_async(ctx, ep));
        benchmark::DoNotOptimize(s.native_handle());
      }
    }(ctx, l, ep));
  }
  state.SetItemsProcessed(state.iterations() * 50);
}
BENCHMARK(BM_accept_round_trip)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
