// The README's server example: an echo server in about 20 lines, plus a self-test that the
// test suite runs (`echo_server --self-test`). Run it as `echo_server 127.0.0.1:8080`.
#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include "ringsock/ringsock.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;  // POSIX ::socket() would make the bare name ambiguous

// README-BEGIN
task<void> serve(socket s) {  // state is passed as parameters, never captured
  for (;;) {
    auto [ec, bytes] = co_await as_result(s.receive_borrowed_async());  // lent by the ring
    if (ec || bytes.empty()) co_return;            // I/O errors are values; empty: the end
    auto sent = co_await as_result(s.send_all_async(bytes.data()));    // no copy, no buffer
    if (sent.ec) co_return;
  }  // each received_buffer goes back to the ring at the end of its iteration
}

task<void> accept_loop(io_context& ctx, socket& listener) {
  accept_args args;  // reusable, like SocketAsyncEventArgs
  for (;;) {
    if (std::error_code ec = co_await listener.accept_async(args)) {
      if (is_fatal(ec)) co_return;  // listener closed or broken
      continue;                     // EMFILE and friends: the listener backs off by itself
    }
    ctx.spawn(serve(std::move(args.accept_socket())));
  }
}
// README-END

namespace {

task<bool> self_test(io_context& ctx, socket& listener) {
  const std::string msg = "ringsock says hello";
  bool ok = true;
  for (int i = 0; i < 8; ++i) {
    socket c = co_await socket::connect_async(ctx, listener.local_endpoint());
    co_await c.send_all_async(std::as_bytes(std::span(msg)));
    std::string back;
    std::array<std::byte, 64> buf;
    while (back.size() < msg.size()) {
      std::size_t n = co_await c.receive_async(buf);
      if (n == 0) break;
      back.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    ok = ok && back == msg;
  }
  listener.close();  // ends accept_loop: its pending accept completes with operation_canceled
  co_return ok;
}

}  // namespace
}  // namespace app

int main(int argc, char** argv) {
  using namespace app;
  const bool test = argc > 1 && std::string_view(argv[1]) == "--self-test";
  io_context ctx;
  ringsock::socket listener =
      ringsock::socket::listen(ctx, endpoint::parse(test || argc < 2 ? "127.0.0.1:0" : argv[1]));
  std::printf("echo server on %s\n", listener.local_endpoint().to_string().c_str());
  ctx.spawn(accept_loop(ctx, listener));
  if (!test) {
    ctx.run();
    return 0;
  }
  bool ok = ctx.block_on(self_test(ctx, listener));
  ctx.run();  // accept_loop sees the cancellation and ends; run() returns when no work is left
  std::printf("self-test %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
