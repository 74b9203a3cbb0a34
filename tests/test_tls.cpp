// tls::stream (ringsock/tls.hpp) on loopback: ringsock on both ends, then real clients and
// servers (Python's ssl module, openssl s_client and s_server), and every bad input the issue
// lists: garbage instead of a ClientHello, a handshake cut in the middle, a rejected
// certificate, a peer that closes without close_notify, a record larger than allowed. Each ends
// that connection with a named error; the server keeps serving; nothing leaks. Certificates
// are made at test time (tls_support.hpp).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ringsock/tls.hpp"
#include "support.hpp"
#include "tls_support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;
namespace tls = ringsock::tls;

namespace {

tls::context server_context(const std::string& cert, const std::string& key) {
  tls::context c = tls::context::server();
  c.use_certificate_chain_pem(cert);
  c.use_private_key_pem(key);
  c.set_alpn({"http/1.1"});
  return c;
}
tls::context server_context() {
  tls::context c = test::tls_server_context();
  c.set_alpn({"http/1.1"});
  return c;
}

tls::context client_context() {
  tls::context c = test::tls_client_context();
  c.set_alpn({"h2", "http/1.1"});
  return c;
}

// What one server session saw.
struct session_log {
  std::error_code handshake, end;
  std::size_t bytes = 0;
  std::string alpn, sni, version, detail;
  bool reused = false, done = false;
};

// A TLS echo session: handshake, echo until close_notify (then its own close_notify) or an error.
task<void> echo_session(socket s, tls::context& ctx, session_log& log) {
  tls::stream t(std::move(s), ctx);
  log.handshake = co_await as_result(t.handshake_async(5s));
  if (!log.handshake) {
    log.alpn = t.alpn();
    log.sni = t.server_name();
    log.version = t.version();
    log.reused = t.session_reused();
    std::vector<std::byte> buf(16 * 1024);
    for (;;) {
      auto [ec, n] = co_await as_result(t.receive_async(buf, 5s));
      if (ec) {
        log.end = ec;
        break;
      }
      if (n == 0) {
        log.end = co_await as_result(t.shutdown_async(5s));
        break;
      }
      log.bytes += n;
      auto [sent_ec, sent] = co_await as_result(t.send_all_async(std::span(buf).first(n), 5s));
      if (sent_ec) {
        log.end = sent_ec;
        break;
      }
    }
  }
  log.detail = t.last_error_detail();
  log.done = true;
}

// Accepts connections for as long as it runs, an echo session each; the logs in order.
task<void> serve(socket& listener, tls::context& ctx, std::deque<session_log>& logs) {
  for (;;) {
    auto [ec, s] = co_await as_result(listener.accept_async());
    if (ec) co_return;  // the listener closed
    logs.emplace_back();
    listener.context().spawn(echo_session(std::move(s), ctx, logs.back()));
  }
}

struct client_log {
  std::error_code handshake, end;
  std::string echoed, alpn, detail;
  tls::session session;
  bool reused = false;
};

task<std::string> read_n(tls::stream& t, std::size_t want, std::error_code& ec) {
  std::string got;
  std::vector<std::byte> buf(16 * 1024);
  while (got.size() < want) {
    auto [e, n] = co_await as_result(t.receive_async(buf, 5s));
    if (e || n == 0) {
      ec = e;
      break;
    }
    got += test::str(std::span(buf).first(n));
  }
  co_return got;
}

task<std::error_code> write_all(tls::stream& t, const std::string& data) {
  co_return (co_await as_result(t.send_all_async(test::bytes(data), 5s))).ec;
}

// A ringsock TLS client: sends `payload` while reading its echo, then close_notify, then
// expects the server's close_notify (receive 0).
task<client_log> echo_client(io_context& ctx, endpoint ep, tls::context& c, std::string host,
                             std::string payload, tls::session resume = {}) {
  client_log out;
  socket s = co_await socket::connect_async(ctx, ep);
  tls::stream t(std::move(s), c);
  if (!host.empty()) t.set_host_name(host);
  if (resume) t.set_session(resume);
  out.handshake = co_await as_result(t.handshake_async(5s));
  out.detail = t.last_error_detail();
  if (out.handshake) co_return out;
  out.alpn = t.alpn();
  out.reused = t.session_reused();
  std::error_code read_ec;
  auto [sent, echoed] = co_await when_all(write_all(t, payload), read_n(t, payload.size(), read_ec));
  out.echoed = std::move(echoed);
  out.end = sent ? sent : read_ec;
  out.session = t.session();
  if (!out.end) out.end = co_await as_result(t.shutdown_async(5s));
  if (!out.end) {
    std::vector<std::byte> b(16);
    auto [ec, n] = co_await as_result(t.receive_async(b, 5s));
    out.end = ec ? ec : (n == 0 ? std::error_code{} : make_error_code(std::errc::protocol_error));
  }
  co_return out;
}

// A TLS server on a loopback listener, driven by the test's loop.
struct tls_server {
  io_context ctx;
  socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
  tls::context tctx = server_context();
  std::deque<session_log> logs;
  tls_server() { ctx.spawn(serve(l, tctx, logs)); }
  endpoint ep() const { return l.local_endpoint(); }
  // Runs the loop until `n` sessions ended (bounded).
  bool until_done(std::size_t n) {
    return ctx.run_until([&] {
      std::size_t d = 0;
      for (const session_log& g : logs) d += g.done;
      return d >= n;
    }, 10s);
  }
};

// Runs `cmd` (a shell command) on a thread while the loop turns; its exit status and output.
struct command_result {
  int status = -1;
  std::string output;
};
command_result run_beside(io_context& ctx, const std::string& cmd) {
  command_result r;
  std::atomic<bool> done{false};
  std::thread t([&] {
    if (FILE* p = ::popen((cmd + " 2>&1").c_str(), "r")) {
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
      r.status = ::pclose(p);
    }
    done = true;
  });
  ctx.run_until([&] { return done.load(); }, 30s);
  t.join();
  return r;
}

bool have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Writes raw bytes to the server, then reads until it closes (5 s at most); returns what came.
std::string raw_exchange(const endpoint& ep, const std::string& bytes, bool close_after = false) {
  const int fd = test::blocking_connect(ep);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string got;
  if (!close_after) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return got;
}

}  // namespace

TEST_SUITE("tls") {
  TEST_CASE("ringsock server and client: handshake, 1 MiB echoed, ALPN, SNI, close_notify both ways") {
    const std::size_t fds = test::open_fds();
    {
      tls_server srv;
      tls::context cli = client_context();
      const std::string data = test::pattern(1 << 20);
      client_log c = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "localhost", data));
      REQUIRE(srv.until_done(1));
      CHECK_FALSE(c.handshake);
      CHECK(c.echoed == data);
      CHECK_FALSE(c.end);  // the server's close_notify came: a clean end (0)
      CHECK(c.alpn == "http/1.1");
      const session_log& s = srv.logs.front();
      CHECK_FALSE(s.handshake);
      CHECK_FALSE(s.end);
      CHECK(s.bytes == data.size());
      CHECK(s.alpn == "http/1.1");
      CHECK(s.sni == "localhost");
      CHECK(s.version == "TLSv1.3");
      srv.l.close();
      srv.ctx.run_until([&] { return srv.ctx.pending_operations() == 0; }, 2s);
    }
    CHECK(test::open_fds() == fds);
  }

  TEST_CASE("the client rejects a certificate for another name, an expired one and one from an unknown issuer; the server keeps serving") {
    tls_server srv;
    tls::context cli = client_context();
    client_log wrong_name = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "not-localhost.example", "x"));
    CHECK(wrong_name.handshake == tls::errc::certificate_rejected);
    CHECK(wrong_name.detail.find("mismatch") != std::string::npos);
    const test::tls_files& m = test::tls_material();
    for (auto [cert, key, why] : {std::tuple{&m.expired_cert_pem, &m.expired_key_pem, "expired"},
                                  std::tuple{&m.stranger_cert_pem, &m.stranger_key_pem, "issuer"}}) {
      CAPTURE(why);
      tls_server bad;
      bad.tctx = server_context(*cert, *key);
      client_log c = bad.ctx.block_on(echo_client(bad.ctx, bad.ep(), cli, "localhost", "x"));
      CHECK(c.handshake == tls::errc::certificate_rejected);
      CHECK(c.detail.find(why) != std::string::npos);
      REQUIRE(bad.until_done(1));
      CHECK(bad.logs.front().handshake);  // the server side saw the client's alert
    }
    REQUIRE(srv.until_done(1));
    CHECK(srv.logs.front().handshake);
    // The server goes on: a good client is served.
    client_log ok = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "localhost", "after"));
    CHECK_FALSE(ok.handshake);
    CHECK(ok.echoed == "after");
  }

  TEST_CASE("garbage instead of a ClientHello: handshake_failed, an alert back, and the next client is served") {
    tls_server srv;
    std::string answer;
    std::chrono::steady_clock::duration took{};
    std::thread peer([&] {
      const auto t0 = std::chrono::steady_clock::now();
      answer = raw_exchange(srv.ep(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      took = std::chrono::steady_clock::now() - t0;
    });
    REQUIRE(srv.until_done(1));
    peer.join();
    CHECK(took < 4s);  // the server closed that connection (the peer's read saw its end)
    CHECK(srv.logs.front().handshake == tls::errc::handshake_failed);
    CHECK_FALSE(srv.logs.front().detail.empty());
    // OpenSSL sends no alert to what is not TLS at all; it closes. Anything that came back is
    // an alert record.
    CHECK((answer.empty() || answer[0] == '\x15'));
    tls::context cli = client_context();
    client_log ok = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "localhost", "next"));
    CHECK(ok.echoed == "next");
  }

  TEST_CASE("a handshake cut in the middle ends with truncated") {
    tls_server srv;
    // The start of a real ClientHello (record header, handshake header, version), then close.
    const std::string partial("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11);
    std::thread peer([&] { raw_exchange(srv.ep(), partial, true); });
    REQUIRE(srv.until_done(1));
    peer.join();
    CHECK(srv.logs.front().handshake == tls::errc::truncated);
  }

  TEST_CASE("a peer that closes without close_notify: the data arrives, then truncated, never a clean end") {
    tls_server srv;
    tls::context cli = client_context();
    auto client = [](io_context& ctx, endpoint ep, tls::context& c) -> task<std::string> {
      socket s = co_await socket::connect_async(ctx, ep);
      tls::stream t(std::move(s), c);
      t.set_host_name("localhost");
      co_await t.handshake_async(5s);
      co_await t.send_all_async(test::bytes("last words"));
      std::error_code ec;
      std::string back = co_await read_n(t, 10, ec);
      t.lowest_layer().close();  // no close_notify
      co_return back;
    };
    CHECK(srv.ctx.block_on(client(srv.ctx, srv.ep(), cli)) == "last words");
    REQUIRE(srv.until_done(1));
    CHECK(srv.logs.front().bytes == 10);
    CHECK(srv.logs.front().end == tls::errc::truncated);
  }

  TEST_CASE("a record longer than TLS allows: record_too_large") {
    tls_server srv;
    // A handshake record whose length field says 20,000 bytes (TLS allows 16,384 + 2,048).
    std::string big("\x16\x03\x01\x4e\x20", 5);
    big += std::string(20000, 'A');
    std::thread peer([&] { raw_exchange(srv.ep(), big); });
    REQUIRE(srv.until_done(1));
    peer.join();
    CHECK(srv.logs.front().handshake == tls::errc::record_too_large);
  }

  TEST_CASE("session resumption: a second connection with the first one's session resumes it") {
    tls_server srv;
    tls::context cli = client_context();
    client_log first = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "localhost", "one"));
    REQUIRE_FALSE(first.handshake);
    CHECK_FALSE(first.reused);
    REQUIRE(first.session);
    client_log second = srv.ctx.block_on(echo_client(srv.ctx, srv.ep(), cli, "localhost", "two", first.session));
    CHECK_FALSE(second.handshake);
    CHECK(second.reused);
    CHECK(second.echoed == "two");
    REQUIRE(srv.until_done(2));
    CHECK(srv.logs[1].reused);
  }

  TEST_CASE("misuse throws before anything is sent; files that do not load are setup_error") {
    tls::context bad = tls::context::server();
    CHECK_THROWS_AS(bad.use_certificate_chain_file("/nonexistent/cert.pem"), tls::setup_error);
    CHECK_THROWS_AS(bad.use_private_key_pem("not a key"), tls::setup_error);
    tls::context mismatched = tls::context::server();
    mismatched.use_certificate_chain_pem(test::tls_material().cert_pem);
    CHECK_THROWS_AS(mismatched.use_private_key_pem(test::tls_material().expired_key_pem), tls::setup_error);
    CHECK_THROWS_AS(mismatched.set_alpn({""}), std::invalid_argument);

    tls_server srv;
    tls::context cli = client_context();
    auto misuse = [](io_context& ctx, endpoint ep, tls::context& c) -> task<void> {
      socket s = co_await socket::connect_async(ctx, ep);
      tls::stream t(std::move(s), c);
      std::vector<std::byte> buf(8);
      CHECK_THROWS_AS((void)t.receive_async(buf), std::logic_error);  // before the handshake
      CHECK_THROWS_AS((void)t.send_all_async(buf), std::logic_error);
      CHECK_THROWS_AS((void)t.handshake_async(), std::logic_error);  // verifying, but no name
      t.set_host_name("localhost");
      co_await t.handshake_async(5s);
      CHECK_THROWS_AS((void)t.handshake_async(), std::logic_error);  // twice
      CHECK_THROWS_AS(t.set_host_name("x"), std::logic_error);
      CHECK_THROWS_AS((void)t.receive_async(std::span<std::byte>()), std::invalid_argument);
      {  // a second receive or send made while the first is not awaited yet is refused too
        auto first = t.receive_async(buf);
        CHECK_THROWS_AS((void)t.receive_async(buf), std::logic_error);
        auto send = t.send_all_async(buf);
        CHECK_THROWS_AS((void)t.send_all_async(buf), std::logic_error);
        CHECK_THROWS_AS((void)t.shutdown_async(), std::logic_error);
      }  // neither awaited: both gone, nothing was sent
      {
        auto again = t.receive_async(buf);  // the flags went with them
        (void)again;
      }
      {  // an operation awaited as a named object frees its kind when its result is taken
        auto send = t.send_all_async(buf);
        co_await send;
        auto next = t.send_all_async(buf);  // not refused: the first one is over
        co_await next;
      }
      co_await t.shutdown_async();
      CHECK_THROWS_AS((void)t.send_all_async(buf), std::logic_error);  // after shutdown
      CHECK_THROWS_AS((void)t.shutdown_async(), std::logic_error);
    };
    srv.ctx.block_on(misuse(srv.ctx, srv.ep(), cli));
  }

  TEST_CASE("a handshake against a silent peer times out; a stop cancels a waiting receive; nothing leaks") {
    const std::size_t fds = test::open_fds();
    {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      tls::context cli = client_context();
      auto silent = [](io_context& ctx, endpoint ep, tls::context& c) -> task<std::error_code> {
        socket s = co_await socket::connect_async(ctx, ep);
        tls::stream t(std::move(s), c);
        t.set_host_name("localhost");
        std::error_code ec = co_await as_result(t.handshake_async(100ms));
        // The stream ended with that error: a receive after it says so (no logic_error).
        std::byte b[8];
        CHECK((co_await as_result(t.receive_async(b))).ec == ec);
        co_return ec;
      };
      CHECK(ctx.block_on(silent(ctx, l.local_endpoint(), cli)) == std::errc::timed_out);

      socket l2 = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      tls::context srv_ctx = server_context();
      session_log log;
      std::stop_source stop;
      auto server = [](socket& l, tls::context& c, std::stop_token tok, session_log& log) -> task<void> {
        socket s = co_await l.accept_async();
        tls::stream t(std::move(s), c);
        log.handshake = co_await as_result(t.handshake_async(5s));
        if (!log.handshake) {
          std::vector<std::byte> buf(64);
          log.end = (co_await as_result(t.receive_async(buf, tok))).ec;
        }
        log.done = true;
      };
      ctx.spawn(server(l2, srv_ctx, stop.get_token(), log));
      auto idle_client = [](io_context& ctx, endpoint ep, tls::context& c, session_log& log,
                            std::stop_source& stop) -> task<void> {
        socket s = co_await socket::connect_async(ctx, ep);
        tls::stream t(std::move(s), c);
        t.set_host_name("localhost");
        co_await t.handshake_async(5s);
        co_await sleep_for(ctx, 50ms);
        stop.request_stop();
        while (!log.done) co_await sleep_for(ctx, 5ms);
      };
      ctx.block_on(idle_client(ctx, l2.local_endpoint(), cli, log, stop));
      CHECK_FALSE(log.handshake);
      CHECK(log.end == std::errc::operation_canceled);
    }
    CHECK(test::open_fds() == fds);
  }

  TEST_CASE("full duplex: both ends send 8 MiB while they read; neither waits for the other's sending") {
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    tls::context srv_ctx = server_context();
    tls::context cli_ctx = client_context();
    const std::string a = test::pattern(8 << 20), b = test::pattern((8 << 20) + 7);
    auto both_ways = [](tls::stream& t, const std::string& out, std::size_t in) -> task<std::string> {
      std::error_code ec;
      auto [sent, got] = co_await when_all(write_all(t, out), read_n(t, in, ec));
      CHECK_FALSE(sent);
      CHECK_FALSE(ec);
      co_return got;
    };
    auto server = [&](socket& l) -> task<std::string> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), srv_ctx);
      co_await t.handshake_async(5s);
      co_return co_await both_ways(t, b, a.size());
    };
    auto client = [&]() -> task<std::string> {
      socket s = co_await socket::connect_async(ctx, l.local_endpoint());
      tls::stream t(std::move(s), cli_ctx);
      t.set_host_name("localhost");
      co_await t.handshake_async(5s);
      co_return co_await both_ways(t, a, b.size());
    };
    auto [at_server, at_client] = ctx.block_on(when_all(server(l), client()));
    CHECK(at_server == a);
    CHECK(at_client == b);
  }

  TEST_CASE("an operation's timeout bounds all of it: a peer trickling a ClientHello byte by byte is cut off") {
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    tls::context srv_ctx = server_context();
    const test::tls_files& m = test::tls_material();
    (void)m;
    std::atomic<bool> stop{false};
    std::thread peer([&] {
      const int fd = test::blocking_connect(l.local_endpoint());
      const std::string hello("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11);
      for (std::size_t i = 0; i < hello.size() && !stop; ++i) {  // one byte per 60 ms
        (void)::send(fd, hello.data() + i, 1, MSG_NOSIGNAL);
        std::this_thread::sleep_for(60ms);
      }
      while (!stop) std::this_thread::sleep_for(10ms);
      ::close(fd);
    });
    auto server = [](socket& l, tls::context& c) -> task<std::error_code> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), c);
      co_return co_await as_result(t.handshake_async(250ms));
    };
    const auto t0 = std::chrono::steady_clock::now();
    const std::error_code ec = ctx.block_on(server(l, srv_ctx));
    const auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    peer.join();
    CHECK(ec == std::errc::timed_out);
    CHECK(took < 550ms);  // each byte came within 60 ms: a per-receive bound would never fire
  }

  TEST_CASE("Python's ssl module talks to a ringsock TLS server") {
    if (!have("python3")) {
      MESSAGE("skipped: no python3");
      return;
    }
    tls_server srv;
    const std::string script =
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "ctx.set_alpn_protocols(['http/1.1'])\n"
        "with socket.create_connection(('127.0.0.1', int(sys.argv[2]))) as raw:\n"
        "    with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n"
        "        data = b'python ' * 5000\n"
        "        s.sendall(data)\n"
        "        got = b''\n"
        "        while len(got) < len(data):\n"
        "            got += s.recv(65536)\n"
        "        assert got == data, 'echo differs'\n"
        "        print('ok', s.version(), s.selected_alpn_protocol())\n"
        "        s.unwrap()\n";
    const std::string path = test::tls_material().dir + "/client.py";
    std::ofstream(path) << script;
    command_result r = run_beside(srv.ctx, "python3 " + path + " " + test::tls_material().ca_file + " " +
                                               std::to_string(srv.ep().port()));
    CHECK(r.status == 0);
    CHECK(r.output.find("ok TLSv1.3 http/1.1") != std::string::npos);
    MESSAGE(r.output);
    REQUIRE(srv.until_done(1));
    CHECK(srv.logs.front().bytes == 35000);
    CHECK_FALSE(srv.logs.front().end);  // Python's unwrap() sent close_notify
  }

  TEST_CASE("openssl s_client talks to a ringsock TLS server") {
    if (!have("openssl")) {
      MESSAGE("skipped: no openssl command");
      return;
    }
    tls_server srv;
    command_result r = run_beside(
        srv.ctx, "printf 'hello from s_client\\n' | timeout 10 openssl s_client -connect 127.0.0.1:" +
                     std::to_string(srv.ep().port()) + " -CAfile " + test::tls_material().ca_file +
                     " -servername localhost -verify_hostname localhost -alpn http/1.1 -ign_eof");
    CHECK(r.output.find("Verify return code: 0 (ok)") != std::string::npos);
    CHECK(r.output.find("ALPN protocol: http/1.1") != std::string::npos);
    CHECK(r.output.find("hello from s_client") != std::string::npos);
    REQUIRE(srv.until_done(1));
    CHECK(srv.logs.front().bytes == 20);
  }

  TEST_CASE("a ringsock TLS client talks to openssl s_server") {
    if (!have("openssl")) {
      MESSAGE("skipped: no openssl command");
      return;
    }
    const test::tls_files& m = test::tls_material();
    // A free port: bound, read, released (s_server binds it a moment later).
    int port = 0;
    {
      io_context tmp;
      socket probe = socket::listen(tmp, endpoint::loopback(address_family::ipv4));
      port = probe.local_endpoint().port();
    }
    FILE* server = ::popen(("exec timeout 20 openssl s_server -accept 127.0.0.1:" + std::to_string(port) +
                            " -cert " + m.cert_file + " -key " + m.key_file + " -www -naccept 1 2>&1")
                               .c_str(),
                           "r");
    REQUIRE(server != nullptr);
    io_context ctx;
    tls::context cli = client_context();
    auto get = [](io_context& ctx, int port, tls::context& c) -> task<std::string> {
      for (int i = 0;; ++i) {  // until s_server listens
        socket s;
        bool connected = false;
        try {
          s = co_await socket::connect_async(ctx, endpoint::parse("127.0.0.1:" + std::to_string(port)));
          connected = true;
        } catch (const socket_error&) {
        }
        if (connected) {
          tls::stream t(std::move(s), c);
          t.set_host_name("localhost");
          co_await t.handshake_async(5s);
          co_await t.send_all_async(test::bytes("GET / HTTP/1.0\r\n\r\n"));
          std::string page;
          std::vector<std::byte> buf(16384);
          for (;;) {
            auto [e, n] = co_await as_result(t.receive_async(buf, 5s));
            if (e || n == 0) break;  // s_server -www closes (with close_notify)
            page += test::str(std::span(buf).first(n));
          }
          co_return page;
        }
        if (i == 100) co_return std::string("no s_server");
        co_await sleep_for(ctx, 50ms);
      }
    };
    const std::string page = ctx.block_on(get(ctx, port, cli));
    ::pclose(server);
    CHECK(page.find("HTTP/1.0 200 ok") != std::string::npos);
    CHECK(page.find("TLSv1.3") != std::string::npos);
  }

  TEST_CASE("kernel TLS: the probe agrees with the kernel's list of TCP upper-layer protocols") {
    const bool available = tls::kernel_tls_available();  // loads the module where there is one
    std::ifstream f("/proc/sys/net/ipv4/tcp_available_ulp");
    std::string ulps;
    std::getline(f, ulps);
    std::istringstream words(ulps);
    bool listed = false;
    for (std::string w; words >> w;) listed = listed || w == "tls";
    CHECK(available == listed);
    if (!available)
      MESSAGE("kernel TLS offload: skipped: this kernel has no TCP ULP \"tls\" (built without "
              "CONFIG_TLS); streams use the user-space record layer");
  }
}

}  // namespace rstest
