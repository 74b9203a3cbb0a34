// bench server "ringsock-tls" (W8, HTTPS keep-alive): the http mode of ringsock_server.cpp
// (http_min.h) over ringsock::tls, written with the public API as a user would: one coroutine
// per connection, outcomes through as_result. Prints "PORT <n>" once listening on 127.0.0.1.
//   ringsock_tls_server CERT KEY [port]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http_min.h"
#include "ringsock/ringsock.hpp"
#include "ringsock/tls.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;
namespace tls = ringsock::tls;

std::span<const std::byte> text(const char* s, std::size_t n) { return std::as_bytes(std::span(s, n)); }

task<void> https(socket s, tls::context& ctx) {
  tls::stream t(std::move(s), ctx);
  if (co_await as_result(t.handshake_async(std::chrono::seconds(10)))) co_return;
  char in[2 * HTTP_MAX_HEADER];
  std::size_t len = 0;
  for (bool close = false; !close;) {
    auto [ec, n] = co_await as_result(t.receive_async(std::as_writable_bytes(std::span(in + len, sizeof in - len))));
    if (ec || n == 0) break;
    len += n;
    // Each complete request of this read is answered in turn, as the plain HTTP server does.
    std::size_t off = 0, end;
    while (!close && (end = http_request_end(in + off, len - off)) > 0) {
      close = http_wants_close(in + off, end);
      off += end;
      const auto reply = close ? text(http_ok_close, sizeof http_ok_close - 1) : text(http_ok, sizeof http_ok - 1);
      if ((co_await as_result(t.send_all_async(reply))).ec) close = true;
    }
    std::memmove(in, in + off, len - off);
    len -= off;
    if (len >= HTTP_MAX_HEADER) {  // headers too long: 431, then close
      (void)co_await as_result(t.send_all_async(text(http_431, sizeof http_431 - 1)));
      break;
    }
  }
  (void)co_await as_result(t.shutdown_async(std::chrono::seconds(5)));
}

task<void> accept_loop(io_context& ctx, socket& listener, tls::context& tls) {
  accept_args args;
  for (;;) {
    if (std::error_code ec = co_await listener.accept_async(args)) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    ctx.spawn(https(std::move(args.accept_socket()), tls));
  }
}

}  // namespace app

int main(int argc, char** argv) {
  using namespace app;
  if (argc < 3) {
    std::fprintf(stderr, "usage: ringsock_tls_server CERT KEY [port]\n");
    return 2;
  }
  tls::context tls = tls::context::server();
  tls.use_certificate_chain_file(argv[1]);
  tls.use_private_key_file(argv[2]);
  io_context ctx;
  ringsock::socket listener =
      ringsock::socket::listen(ctx, endpoint::parse("127.0.0.1:" + std::string(argc > 3 ? argv[3] : "0")));
  std::printf("PORT %u\n", static_cast<unsigned>(listener.local_endpoint().port()));
  std::fflush(stdout);
  ctx.spawn(accept_loop(ctx, listener, tls));
  ctx.run();
  return 0;
}
