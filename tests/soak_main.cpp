// Soak: churns N connections through an echo server written with the public API (32 clients at a
// time, each: connect, send a message, read the echo back, check it, close with RST), then
// compares the process's descriptors and resident memory with a reading taken after warm-up.
//   soak [connections]     exit 0 when every echo was right and nothing leaked
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "ringsock/ringsock.hpp"
#include "support.hpp"

namespace soak {
using namespace ringsock;
using ringsock::socket;

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

task<void> echo(socket s) {
  std::array<std::byte, 256> buf;
  socket_args rx, tx;
  for (;;) {
    rx.set_buffer(buf);
    std::error_code ec = co_await s.receive_async(rx);
    if (ec || rx.bytes_transferred() == 0) co_return;
    tx.set_buffer({buf.data(), rx.bytes_transferred()});
    ec = co_await s.send_all_async(tx);
    if (ec) co_return;
  }
}

task<void> server(io_context& ctx, socket& listener) {
  accept_args args;
  for (;;) {
    std::error_code ec = co_await listener.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    ctx.spawn(echo(std::move(args.accept_socket())));
  }
}

struct progress {
  long done = 0, failed = 0, target = 0;
};

task<void> client(io_context& ctx, endpoint ep, progress& p, int id) {
  std::array<std::byte, 64> in;
  while (p.done + p.failed < p.target) {
    const long n = p.done + p.failed;
    std::string msg = "soak " + std::to_string(id) + " " + std::to_string(n);
    try {
      socket s = co_await socket::connect_async(ctx, ep);
      co_await s.send_all_async(test::bytes(msg));
      std::size_t got = 0;
      while (got < msg.size()) {
        std::size_t k = co_await s.receive_async(std::span(in).subspan(got));
        if (k == 0) break;
        got += k;
      }
      if (test::str({in.data(), got}) == msg)
        ++p.done;
      else
        ++p.failed;
      linger lg{1, 0};  // RST: no TIME_WAIT, so 200,000 connections do not exhaust the ports
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } catch (const socket_error& e) {
      std::fprintf(stderr, "soak: %s\n", e.what());
      ++p.failed;
    }
  }
}

task<void> run(io_context& ctx, socket& listener, progress& p, long warmup, long total,
               std::size_t& fds0, long& rss0) {
  const endpoint ep = listener.local_endpoint();
  p.target = warmup;
  co_await when_all([](io_context& ctx, endpoint ep, progress& p) -> task<void> {
    std::vector<task<void>> cs;
    for (int i = 0; i < 32; ++i) cs.push_back(client(ctx, ep, p, i));
    co_await when_all(std::move(cs));
  }(ctx, ep, p));
  co_await sleep_for(ctx, std::chrono::milliseconds(50));  // server sessions see their RSTs
  fds0 = test::open_fds();
  rss0 = rss_kib();
  p.target = total;
  std::vector<task<void>> cs;
  for (int i = 0; i < 32; ++i) cs.push_back(client(ctx, ep, p, i));
  co_await when_all(std::move(cs));
  co_await sleep_for(ctx, std::chrono::milliseconds(50));
}
}  // namespace soak

int main(int argc, char** argv) {
  using namespace soak;
  const long total = argc > 1 ? std::atol(argv[1]) : 200'000;
  const long warmup = total / 20 > 1000 ? total / 20 : std::min(total, 1000L);
  io_context ctx;
  ringsock::socket listener = ringsock::socket::listen(ctx, endpoint::parse("127.0.0.1:0"), 4096);
  ctx.spawn(server(ctx, listener));
  progress p;
  std::size_t fds0 = 0;
  long rss0 = 0;
  auto t0 = std::chrono::steady_clock::now();
  ctx.block_on(run(ctx, listener, p, warmup, total, fds0, rss0));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t fds1 = test::open_fds();
  const long rss1 = rss_kib();
  std::printf("soak: %ld connections (%ld failed) in %.1f s; fds %zu -> %zu; RSS %ld -> %ld KiB\n",
              p.done, p.failed, secs, fds0, fds1, rss0, rss1);
  listener.close();
  const bool ok = p.failed == 0 && p.done >= total && fds1 == fds0 && rss1 - rss0 < 8 * 1024;
  std::printf("soak: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
