// bench server "ringsock": written with the public API only, as a user would write it (the
// README's way: receive_borrowed_async, so a connection holds no buffer of its own, and I/O
// outcomes as values through as_result, so a peer's reset costs an error code, not a throw).
// Mode "-copy" (the "ringsock-copy" peer) receives with receive_async into a 4 KiB buffer of
// each connection's coroutine frame instead, so the table shows both.
// Modes: echo and http (http_min.h). Prints "PORT <n>" once listening on 127.0.0.1.
//   ringsock_server echo|http|echo-copy|http-copy [port] [--threads N [--pin] [--hand-off]]
// With --threads, SIGTERM or SIGINT stops the runtime gracefully and the summed counters are
// printed to stderr ("STATS enter_calls=... cqes=... sqes=...").
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "http_min.h"
#include "ringsock/ringsock.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;

task<void> echo(socket s) {
  for (;;) {
    auto [ec, b] = co_await as_result(s.receive_borrowed_async());
    if (ec || b.empty()) co_return;
    auto sent = co_await as_result(s.send_all_async(b.data()));
    if (sent.ec) co_return;
  }
}

task<void> echo_copy(socket s) {
  std::byte buf[4096];
  for (;;) {
    auto [ec, n] = co_await as_result(s.receive_async(buf));
    if (ec || n == 0) co_return;
    auto sent = co_await as_result(s.send_all_async({buf, n}));
    if (sent.ec) co_return;
  }
}

std::span<const std::byte> text(const char* s, std::size_t n) { return std::as_bytes(std::span(s, n)); }

// Answers the complete requests at the front of [p, p + n); returns the bytes they took and
// sets `close` when the last one asked to close (or a send failed: the connection is over).
task<std::size_t> answer(socket& s, const char* p, std::size_t n, bool& close) {
  std::size_t off = 0, end;
  // A request must end within the first 2 * HTTP_MAX_HEADER bytes, as in the servers that read
  // into a buffer of that size.
  while (!close && (end = http_request_end(p + off, std::min<std::size_t>(n - off, 2 * HTTP_MAX_HEADER))) > 0) {
    close = http_wants_close(p + off, end);
    off += end;
    const auto reply = close ? text(http_ok_close, sizeof http_ok_close - 1) : text(http_ok, sizeof http_ok - 1);
    auto sent = co_await as_result(s.send_all_async(reply));
    if (sent.ec) close = true;
  }
  co_return off;
}

task<void> too_large(socket& s) {
  auto sent = co_await as_result(s.send_all_async(text(http_431, sizeof http_431 - 1)));
  if (!sent.ec) s.shutdown(shutdown_how::send);
}

// Requests are parsed in the lent buffer; only a request split across arrivals is copied.
task<void> http(socket s) {
  char carry[2 * HTTP_MAX_HEADER];
  std::size_t len = 0;
  bool close = false;
  for (;;) {
    auto [ec, b] = co_await as_result(s.receive_borrowed_async());
    if (ec || b.empty()) co_return;
    const char* in = reinterpret_cast<const char*>(b.data().data());
    std::size_t left = b.size();
    if (len == 0) {  // the common case: whole requests, answered from the ring's buffer
      const std::size_t used = co_await answer(s, in, left, close);
      if (close) co_return;
      in += used;
      left -= used;
    }
    while (left > 0) {  // a request split across arrivals: gather it
      const std::size_t take = std::min(left, sizeof carry - len);
      std::memcpy(carry + len, in, take);
      len += take;
      in += take;
      left -= take;
      const std::size_t used = co_await answer(s, carry, len, close);
      if (close) co_return;
      std::memmove(carry, carry + used, len - used);
      len -= used;
      if (len >= HTTP_MAX_HEADER) {  // headers too long: answer 431, then close
        co_await too_large(s);
        co_return;
      }
    }
  }
}

task<void> http_copy(socket s) {
  char in[2 * HTTP_MAX_HEADER];
  std::size_t len = 0;
  bool close = false;
  for (;;) {
    auto [ec, n] = co_await as_result(s.receive_async(std::as_writable_bytes(std::span(in + len, sizeof in - len))));
    if (ec || n == 0) co_return;
    len += n;
    const std::size_t used = co_await answer(s, in, len, close);
    if (close) co_return;
    std::memmove(in, in + used, len - used);
    len -= used;
    if (len >= HTTP_MAX_HEADER) {
      co_await too_large(s);
      co_return;
    }
  }
}

// A failed connection ends its own coroutine only (the loops above return on any I/O error).
// The handler is spawned directly, as in the README: a connection's only frame is its handler's.
task<void> accept_loop(io_context& ctx, socket& listener, std::string_view mode) {
  using handler = task<void> (*)(socket);
  const handler serve = mode == "http"        ? handler{&http}
                        : mode == "http-copy" ? handler{&http_copy}
                        : mode == "echo-copy" ? handler{&echo_copy}
                                              : handler{&echo};
  accept_args args;
  for (;;) {
    std::error_code ec = co_await listener.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    args.accept_socket().set_no_delay(true);
    ctx.spawn(serve(std::move(args.accept_socket())));
  }
}
}  // namespace app

// With --threads N (bench/scaling.py): a runtime of N threads, each with its own SO_REUSEPORT
// listener on the port (--hand-off: one accepting thread hands connections to the others) and
// its own accept loop; PORT is printed once every listener is up.
int serve_threads(std::string_view mode, const std::string& where, unsigned threads, bool pin,
                  bool hand_off) {
  using namespace app;
  runtime rt({.threads = threads,
              .pin = pin,
              .grace = std::chrono::milliseconds(1000),
              .spread = hand_off ? spread_mode::hand_off : spread_mode::reuse_port,
              .stop_signals = {SIGTERM, SIGINT}});
  std::atomic<unsigned> up{0};
  runtime_report rep = rt.run([&](io_context& ctx, unsigned) -> task<void> {
    ringsock::socket l = rt.listen(ctx, endpoint::parse(where), 4096);
    if (up.fetch_add(1) + 1 == rt.size()) {
      std::printf("PORT %u\n", l.local_endpoint().port());
      std::fflush(stdout);
    }
    co_await accept_loop(ctx, l, mode);
  });
  std::fprintf(stderr, "STATS enter_calls=%llu cqes=%llu sqes=%llu\n",
               static_cast<unsigned long long>(rep.stats.enter_calls),
               static_cast<unsigned long long>(rep.stats.cqes),
               static_cast<unsigned long long>(rep.stats.sqes_submitted));
  return 0;
}

int main(int argc, char** argv) {
  using namespace app;
  const std::string_view mode = argc > 1 ? argv[1] : "echo";
  int port = 0;
  unsigned threads = 0;
  bool pin = false, hand_off = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--pin")
      pin = true;
    else if (a == "--hand-off")
      hand_off = true;
    else
      port = std::atoi(argv[i]);
  }
  std::string where = "127.0.0.1:" + std::to_string(port);
  if (threads > 0) return serve_threads(mode, where, threads, pin, hand_off);
  io_context ctx;
  ringsock::socket listener = ringsock::socket::listen(ctx, endpoint::parse(where), 4096);
  std::printf("PORT %u\n", listener.local_endpoint().port());
  std::fflush(stdout);
  ctx.spawn(accept_loop(ctx, listener, mode));
  ctx.run();
}
