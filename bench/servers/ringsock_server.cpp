// bench server "ringsock": written with the public API only, as a user would write it.
// Modes: echo and http (http_min.h). Prints "PORT <n>" once listening on 127.0.0.1.
//   ringsock_server echo|http [port]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http_min.h"
#include "ringsock/ringsock.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;

task<void> echo(socket s) {
  std::byte buf[32 * 1024];
  for (;;) {
    std::size_t n = co_await s.receive_async(buf);
    if (n == 0) co_return;
    co_await s.send_all_async({buf, n});
  }
}

task<void> http(socket s) {
  char in[2 * HTTP_MAX_HEADER];
  std::size_t len = 0;
  for (;;) {
    std::size_t n = co_await s.receive_async(std::as_writable_bytes(std::span(in + len, sizeof in - len)));
    if (n == 0) co_return;
    len += n;
    std::size_t end;
    while ((end = http_request_end(in, len)) > 0) {
      const bool close = http_wants_close(in, end);
      std::memmove(in, in + end, len - end);
      len -= end;
      if (close) {
        co_await s.send_all_async(std::as_bytes(std::span(http_ok_close, sizeof http_ok_close - 1)));
        co_return;
      }
      co_await s.send_all_async(std::as_bytes(std::span(http_ok, sizeof http_ok - 1)));
    }
    if (len >= HTTP_MAX_HEADER) {  // headers too long: answer 431, then close
      co_await s.send_all_async(std::as_bytes(std::span(http_431, sizeof http_431 - 1)));
      s.shutdown(shutdown_how::send);
      co_return;
    }
  }
}

// A failed connection must not end the server: drop it.
task<void> serve(socket s, bool http_mode) {
  s.set_no_delay(true);
  try {
    if (http_mode)
      co_await http(std::move(s));
    else
      co_await echo(std::move(s));
  } catch (const socket_error&) {
  }
}

task<void> accept_loop(io_context& ctx, socket& listener, bool http_mode) {
  accept_args args;
  for (;;) {
    std::error_code ec = co_await listener.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    ctx.spawn(serve(std::move(args.accept_socket()), http_mode));
  }
}
}  // namespace app

int main(int argc, char** argv) {
  using namespace app;
  const bool http_mode = argc > 1 && std::strcmp(argv[1], "http") == 0;
  io_context ctx;
  std::string where = "127.0.0.1:" + std::to_string(argc > 2 ? std::atoi(argv[2]) : 0);
  ringsock::socket listener = ringsock::socket::listen(ctx, endpoint::parse(where), 4096);
  std::printf("PORT %u\n", listener.local_endpoint().port());
  std::fflush(stdout);
  ctx.spawn(accept_loop(ctx, listener, http_mode));
  ctx.run();
}
