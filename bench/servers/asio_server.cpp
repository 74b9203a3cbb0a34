// bench peer "asio-uring": standalone Asio (Debian libasio-dev) with C++20 coroutines
// (co_spawn, use_awaitable) on its io_uring backend (ASIO_HAS_IO_URING, ASIO_DISABLE_EPOLL),
// written the way Asio's own examples are. Modes: echo and http (http_min.h).
// Prints "PORT <n>" once listening on 127.0.0.1.   asio_server echo|http [port]
#define ASIO_HAS_IO_URING 1
#define ASIO_DISABLE_EPOLL 1
#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "http_min.h"

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

static awaitable<void> echo(tcp::socket s) {
  char buf[32 * 1024];
  try {
    for (;;) {
      std::size_t n = co_await s.async_read_some(asio::buffer(buf), use_awaitable);
      co_await asio::async_write(s, asio::buffer(buf, n), use_awaitable);
    }
  } catch (const std::exception&) {  // EOF or a reset: the connection ends
  }
}

static awaitable<void> http(tcp::socket s) {
  char in[2 * HTTP_MAX_HEADER];
  std::size_t len = 0;
  try {
    for (;;) {
      len += co_await s.async_read_some(asio::buffer(in + len, sizeof in - len), use_awaitable);
      std::size_t end;
      while ((end = http_request_end(in, len)) > 0) {
        const bool close = http_wants_close(in, end);
        std::memmove(in, in + end, len - end);
        len -= end;
        if (close) {
          co_await asio::async_write(s, asio::buffer(http_ok_close, sizeof http_ok_close - 1), use_awaitable);
          co_return;
        }
        co_await asio::async_write(s, asio::buffer(http_ok, sizeof http_ok - 1), use_awaitable);
      }
      if (len >= HTTP_MAX_HEADER) {  // headers too long: answer 431, then close
        co_await asio::async_write(s, asio::buffer(http_431, sizeof http_431 - 1), use_awaitable);
        s.shutdown(tcp::socket::shutdown_send);
        co_return;
      }
    }
  } catch (const std::exception&) {
  }
}

static awaitable<void> listener(tcp::acceptor& acc, bool http_mode) {
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    tcp::socket s(ex);
    try {
      s = co_await acc.async_accept(use_awaitable);
    } catch (const std::exception&) {
      continue;  // EMFILE and friends: try again
    }
    s.set_option(tcp::no_delay(true));
    if (http_mode)
      asio::co_spawn(ex, http(std::move(s)), asio::detached);
    else
      asio::co_spawn(ex, echo(std::move(s)), asio::detached);
  }
}

int main(int argc, char** argv) {
  const bool http_mode = argc > 1 && std::strcmp(argv[1], "http") == 0;
  const unsigned short port = static_cast<unsigned short>(argc > 2 ? std::atoi(argv[2]) : 0);
  asio::io_context ctx(1);  // concurrency hint 1: one thread, no locking
  tcp::acceptor acc(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  acc.listen(4096);
  std::printf("PORT %u\n", acc.local_endpoint().port());
  std::fflush(stdout);
  asio::co_spawn(ctx, listener(acc, http_mode), asio::detached);
  ctx.run();
}
