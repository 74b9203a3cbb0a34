// bench server "ringsock": written with the public API only, as a user would write it.
// Echo mode. Prints "PORT <n>" once listening on 127.0.0.1.   ringsock_server [port]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ringsock/ringsock.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;

task<void> serve(socket s) {
  s.set_no_delay(true);
  std::byte buf[32 * 1024];
  for (;;) {
    std::size_t n = co_await s.receive_async(buf);
    if (n == 0) co_return;
    co_await s.send_all_async({buf, n});
  }
}

// A failed connection must not end the server: log nothing, drop it.
task<void> serve_guarded(socket s) {
  try {
    co_await serve(std::move(s));
  } catch (const socket_error&) {
  }
}

task<void> accept_loop(io_context& ctx, socket& listener) {
  accept_args args;
  for (;;) {
    std::error_code ec = co_await listener.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    ctx.spawn(serve_guarded(std::move(args.accept_socket())));
  }
}
}  // namespace app

int main(int argc, char** argv) {
  using namespace app;
  io_context ctx;
  std::string where = "127.0.0.1:" + std::to_string(argc > 1 ? std::atoi(argv[1]) : 0);
  ringsock::socket listener = ringsock::socket::listen(ctx, endpoint::parse(where), 4096);
  std::printf("PORT %u\n", listener.local_endpoint().port());
  std::fflush(stdout);
  ctx.spawn(accept_loop(ctx, listener));
  ctx.run();
}
