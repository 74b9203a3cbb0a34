// An HTTPS server on ringsock::tls with Debian's http-parser (libhttp-parser-dev): HTTP/1.1
// keep-alive and pipelining, "Hello, World!" for every request, 400 for what does not parse.
// Run it as `https_server CERT KEY [127.0.0.1:8443]`; it prints "https on ADDRESS" and serves until
// SIGINT or SIGTERM. tests/https_example_check.py runs it against curl and Python's ssl.
#include <http_parser.h>
#include <signal.h>

#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include "ringsock/ringsock.hpp"
#include "ringsock/tls.hpp"

namespace app {
using namespace ringsock;
using ringsock::socket;
namespace tls = ringsock::tls;

// The parser's state for one connection: complete requests are counted, and whether the
// connection stays open after the last one.
struct http_state {
  http_parser parser;
  unsigned complete = 0;
  bool keep_alive = true;
};

int on_complete(http_parser* p) {
  auto* st = static_cast<http_state*>(p->data);
  ++st->complete;
  st->keep_alive = http_should_keep_alive(p) != 0;
  return 0;
}

constexpr std::string_view ok_keep_alive =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
constexpr std::string_view ok_close =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
    "Hello, World!";
constexpr std::string_view bad_request =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s)); }

task<void> serve(socket s, tls::context& ctx) {
  tls::stream t(std::move(s), ctx);
  if (co_await as_result(t.handshake_async(std::chrono::seconds(10)))) co_return;
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_complete = on_complete;
  http_state st;
  http_parser_init(&st.parser, HTTP_REQUEST);
  st.parser.data = &st;
  std::array<std::byte, 16384> buf;
  for (bool open = true; open;) {
    auto [ec, n] = co_await as_result(t.receive_async(buf, std::chrono::seconds(30)));
    if (ec || n == 0) break;  // an error, a timeout, or the client's close_notify
    const std::size_t used = http_parser_execute(&st.parser, &settings,
                                                 reinterpret_cast<const char*>(buf.data()), n);
    std::string out;  // the answers to every request this read completed, in one write
    for (; st.complete > 0; --st.complete)
      out += (st.complete == 1 && !st.keep_alive) ? ok_close : ok_keep_alive;
    if (used != n || HTTP_PARSER_ERRNO(&st.parser) != HPE_OK) {
      out += bad_request;
      open = false;
    } else if (!st.keep_alive) {
      open = false;
    }
    if (!out.empty() && (co_await as_result(t.send_all_async(bytes(out)))).ec) break;
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
    ctx.spawn(serve(std::move(args.accept_socket()), tls));
  }
}

}  // namespace app

int main(int argc, char** argv) {
  using namespace app;
  if (argc < 3) {
    std::fprintf(stderr, "usage: https_server CERT KEY [ADDRESS:PORT]\n");
    return 2;
  }
  tls::context tls = tls::context::server();
  try {
    tls.use_certificate_chain_file(argv[1]);
    tls.use_private_key_file(argv[2]);
  } catch (const tls::setup_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  tls.set_alpn({"http/1.1"});
  // One thread, stopped by SIGINT or SIGTERM (the runtime takes them through its rings); the
  // shutdown gives running sessions 5 s.
  const std::string at = argc > 3 ? argv[3] : "127.0.0.1:0";
  runtime rt({.threads = 1, .stop_signals = {SIGINT, SIGTERM}});
  rt.run([&](io_context& ctx, unsigned) -> task<void> {
    ringsock::socket listener = rt.listen(ctx, endpoint::parse(at));
    std::printf("https on %s\n", listener.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    co_await accept_loop(ctx, listener, tls);
  });
  return 0;
}
