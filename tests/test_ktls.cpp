// Kernel TLS on the send side (lib/tls/ktls.cpp). Everywhere: a stream whose keys the socket
// refuses stays in user space with nothing lost (the offload is attempted with the ULP step
// skipped, so the kernel refuses the keys as it would a cipher it lacks), TLS 1.3 and 1.2.
// Where the kernel has TLS (CONFIG_TLS): the kernel encrypts what streams send, and ringsock,
// openssl s_client and Python's ssl read it; elsewhere those cases say why they skip.
#include <doctest/doctest.h>

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "../lib/tls/ktls.hpp"
#include "ringsock/tls.hpp"
#include "support.hpp"
#include "tls_support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;
namespace tls = ringsock::tls;

namespace {

constexpr const char* no_kernel_tls =
    "kernel TLS offload: skipped: this kernel has no TCP ULP \"tls\" (built without CONFIG_TLS)";

tls::context server_context() { return test::tls_server_context(); }

tls::context client_context(bool tls12 = false) {
  tls::context c = test::tls_client_context();
  if (tls12) SSL_CTX_set_max_proto_version(c.native_handle(), TLS1_2_VERSION);
  return c;
}

// For one test: the attempt without the ULP; with `taken`, the plaintext emulation (ktls.hpp).
struct pretend_kernel_tls {
  explicit pretend_kernel_tls(bool taken = false) {
    tls::detail::kernel_tls_hooks().pretend_available = true;
    tls::detail::kernel_tls_hooks().pretend_taken = taken;
  }
  ~pretend_kernel_tls() {
    tls::detail::kernel_tls_hooks().pretend_available = false;
    tls::detail::kernel_tls_hooks().pretend_taken = false;
  }
};

struct end_state {
  bool offload = false;
  std::string version;
  std::string got;           // what it read until the peer's close_notify
  std::error_code ec;        // the first error
  bool reused = false;
  tls::session session;
};

task<std::error_code> send_all(tls::stream& t, const std::string& data) {
  co_return (co_await as_result(t.send_all_async(test::bytes(data), 5s))).ec;
}

// Reads until close_notify (0) or an error.
task<std::error_code> read_to_end(tls::stream& t, std::string& got) {
  std::vector<std::byte> buf(16 * 1024);
  for (;;) {
    auto [ec, n] = co_await as_result(t.receive_async(buf, 5s));
    if (ec) co_return ec;
    if (n == 0) co_return std::error_code{};
    got += test::str(std::span(buf).first(n));
  }
}

// One end: handshake, then sends `out` and close_notify while it reads the peer's bytes to their
// close_notify.
task<end_state> one_end(tls::stream& t, std::string out) {
  end_state st;
  st.ec = co_await as_result(t.handshake_async(5s));
  if (st.ec) co_return st;
  st.offload = t.kernel_offload();
  st.version = t.version();
  st.reused = t.session_reused();
  auto writer = [](tls::stream& t, const std::string& out) -> task<std::error_code> {
    std::error_code ec = co_await send_all(t, out);
    if (!ec) ec = co_await as_result(t.shutdown_async(5s));
    co_return ec;
  };
  std::string got;
  auto [sent, read] = co_await when_all(writer(t, out), read_to_end(t, got));
  st.got = std::move(got);
  st.ec = sent ? sent : read;
  st.session = t.session();
  co_return st;
}

// A server and a client stream on loopback exchanging `a` (client to server) and `b`.
struct exchange_result {
  end_state server, client;
};
exchange_result exchange(tls::context& srv_ctx, tls::context& cli_ctx, const std::string& a,
                         const std::string& b, tls::session resume = {}, int send_buffer = 0) {
  io_context ctx;
  socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
  auto server = [&]() -> task<end_state> {
    socket s = co_await l.accept_async();
    if (send_buffer) s.set_send_buffer_size(send_buffer);
    tls::stream t(std::move(s), srv_ctx);
    co_return co_await one_end(t, b);
  };
  auto client = [&]() -> task<end_state> {
    socket s = co_await socket::connect_async(ctx, l.local_endpoint());
    if (send_buffer) s.set_send_buffer_size(send_buffer);
    tls::stream t(std::move(s), cli_ctx);
    t.set_host_name("localhost");
    if (resume) t.set_session(resume);
    co_return co_await one_end(t, a);
  };
  auto [s, c] = ctx.block_on(when_all(server(), client()));
  return {std::move(s), std::move(c)};
}

// A client that finishes its handshake in TLS, then sends `raw_out` as it is and reads the
// socket raw to its end (the emulation's plaintext).
task<std::string> raw_after_handshake(io_context& ctx, endpoint ep, tls::context& cli, std::string raw_out) {
  socket s = co_await socket::connect_async(ctx, ep);
  tls::stream t(std::move(s), cli);
  t.set_host_name("localhost");
  co_await t.handshake_async(5s);
  if (!raw_out.empty()) co_await t.lowest_layer().send_all_async(test::bytes(raw_out));
  std::string raw;
  std::vector<std::byte> buf(64 * 1024);
  for (;;) {
    auto [ec, n] = co_await as_result(t.lowest_layer().receive_async(buf, 5s));
    if (ec || n == 0) break;
    raw += test::str(std::span(buf).first(n));
  }
  co_return raw;
}

bool have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

TEST_SUITE("kernel tls") {
  TEST_CASE("keys the socket refuses: the stream stays in user space and nothing is lost (TLS 1.3 and 1.2)") {
    pretend_kernel_tls pretend;
    const std::size_t fds = test::open_fds();
    tls::context srv = server_context();
    for (bool tls12 : {false, true}) {
      CAPTURE(tls12);
      tls::context cli = client_context(tls12);
      auto& hooks = tls::detail::kernel_tls_hooks();
      const unsigned offered = hooks.offered, taken = hooks.taken;
      const std::string a = test::pattern(1 << 20), b = test::pattern((1 << 20) + 3);
      exchange_result r = exchange(srv, cli, a, b);
      // Both ends offered their send keys once each; the handshake's last flight, sent at that
      // moment outside the ring, arrived in order (the handshake completed).
      CHECK(hooks.offered - offered == 2);
      CHECK(hooks.taken == taken);
      CHECK_FALSE(r.server.ec);
      CHECK_FALSE(r.client.ec);
      CHECK_FALSE(r.server.offload);
      CHECK_FALSE(r.client.offload);
      CHECK(r.server.version == (tls12 ? "TLSv1.2" : "TLSv1.3"));
      CHECK(r.server.got == a);
      CHECK(r.client.got == b);
      // The tickets came: the session resumes.
      REQUIRE(r.client.session);
      exchange_result again = exchange(srv, cli, "one", "two", r.client.session);
      CHECK_FALSE(again.client.ec);
      CHECK(again.client.reused);
      CHECK(again.server.got == "one");
      CHECK(again.client.got == "two");
    }
    CHECK(test::open_fds() == fds);
  }

  TEST_CASE("set_kernel_offload(false): the keys are never offered") {
    pretend_kernel_tls pretend;
    tls::context srv = server_context();
    tls::context cli = client_context();
    srv.set_kernel_offload(false);
    cli.set_kernel_offload(false);
    CHECK_FALSE(srv.kernel_offload());
    auto& hooks = tls::detail::kernel_tls_hooks();
    const unsigned offered = hooks.offered;
    exchange_result r = exchange(srv, cli, "ping", "pong");
    CHECK(hooks.offered == offered);
    CHECK(r.server.got == "ping");
    CHECK(r.client.got == "pong");
    CHECK_FALSE(r.client.offload);
  }

  TEST_CASE("with the send keys taken, data goes as it is and control records one by one (TLS 1.3, plaintext emulation)") {
    // The server reports its keys taken but keeps them (pretend_taken): what the kernel would
    // encrypt goes out in plaintext. The client finishes its handshake in TLS (the server's
    // tickets only follow the client's Finished), then reads the socket raw: the tickets as
    // handshake messages, the application data, the close_notify alert, the end.
    pretend_kernel_tls pretend(true);
    auto& hooks = tls::detail::kernel_tls_hooks();
    tls::context srv = server_context();
    tls::context cli = client_context();
    cli.set_kernel_offload(false);
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    const std::string data = test::pattern(100 * 1024);
    bool offload = false;
    auto server = [&]() -> task<std::error_code> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), srv);
      if (std::error_code ec = co_await as_result(t.handshake_async(5s))) co_return ec;
      offload = t.kernel_offload();
      if (std::error_code ec = co_await send_all(t, data)) co_return ec;
      co_return co_await as_result(t.shutdown_async(5s));
    };
    auto client = [&]() -> task<std::string> {
      co_return co_await raw_after_handshake(ctx, l.local_endpoint(), cli, "");
    };
    const unsigned taken = hooks.taken;
    hooks.queued_types.clear();
    auto [sent, raw] = ctx.block_on(when_all(server(), client()));
    CHECK_FALSE(sent);
    CHECK(offload);
    CHECK(hooks.taken - taken == 1);
    // Handshake messages of type 4 (new_session_ticket), each with its 24-bit length.
    std::size_t at = 0, tickets = 0;
    while (at + 4 <= raw.size() && raw[at] == 4) {
      const std::size_t len = (std::size_t(std::uint8_t(raw[at + 1])) << 16) |
                              (std::size_t(std::uint8_t(raw[at + 2])) << 8) | std::uint8_t(raw[at + 3]);
      at += 4 + len;
      ++tickets;
    }
    CHECK(tickets == 2);  // OpenSSL's default
    // Each went as a control record of its type: handshake (22) twice, then the alert (21); the
    // application data went by the ring's plain send, not through OpenSSL.
    CHECK(hooks.queued_types == std::string("\x16\x16\x15", 3));
    REQUIRE(raw.size() >= at + 2);
    CHECK(raw.substr(at, data.size()) == data);
    CHECK(raw.substr(at + data.size()) == std::string("\x01\x00", 2));  // close_notify, then FIN
  }

  TEST_CASE("under the kernel's keys, a fatal error stops the sends: the alert goes, the data does not (emulation)") {
    pretend_kernel_tls pretend(true);
    auto& hooks = tls::detail::kernel_tls_hooks();
    tls::context srv = server_context();
    tls::context cli = client_context();
    cli.set_kernel_offload(false);
    SSL_CTX_set_num_tickets(srv.native_handle(), 0);  // nothing after the handshake but the alert
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    std::error_code received, sent;
    std::size_t sent_n = 99;
    std::string detail;
    auto server = [&]() -> task<void> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), srv);
      co_await t.handshake_async(5s);
      std::vector<std::byte> buf(1024);
      received = (co_await as_result(t.receive_async(buf, 5s))).ec;  // a record that fails its MAC
      detail = t.last_error_detail();
      auto r = co_await as_result(t.send_all_async(test::bytes("must not go"), 5s));
      sent = r.ec;
      sent_n = r.value;
    };
    auto client = [&]() -> task<std::string> {
      // An application-data record of 32 bytes that no key made.
      co_return co_await raw_after_handshake(ctx, l.local_endpoint(), cli,
                                             std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, 'x'));
    };
    hooks.queued_types.clear();
    auto [unused, raw] = ctx.block_on(when_all([&]() -> task<int> {
      co_await server();
      co_return 0;
    }(), client()));
    (void)unused;
    CHECK(received == tls::errc::protocol_error);
    CHECK(sent == tls::errc::protocol_error);
    CHECK(sent_n == 0);
    CHECK(hooks.queued_types == std::string("\x15", 1));  // the alert, as a control record
    CHECK(raw == std::string("\x02\x14", 2));  // fatal bad_record_mac; "must not go" did not
    CHECK_FALSE(detail.empty());
  }

  TEST_CASE("under the kernel's keys, a peer's KeyUpdate request stops our sends, not our receives (emulation, an OpenSSL client)") {
    pretend_kernel_tls pretend(true);
    tls::context srv = server_context();
    SSL_CTX_set_num_tickets(srv.native_handle(), 0);  // the client reads nothing the server sends
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    std::error_code received, sent, shut;
    std::string got, detail;
    bool offload = false, done = false;
    auto server = [&]() -> task<void> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), srv);
      co_await t.handshake_async(5s);
      offload = t.kernel_offload();
      std::vector<std::byte> buf(1024);
      auto r = co_await as_result(t.receive_async(buf, 5s));
      received = r.ec;
      if (!r.ec) got = test::str(std::span(buf).first(r.value));
      sent = (co_await as_result(t.send_all_async(test::bytes("after"), 5s))).ec;
      detail = t.last_error_detail();
      shut = co_await as_result(t.shutdown_async(5s));  // close_notify may still go
      done = true;
    };
    ctx.spawn(server());
    const endpoint ep = l.local_endpoint();
    std::string peer_saw;
    std::thread peer([ep, &peer_saw] {  // blocking OpenSSL: handshake, KeyUpdate asking for ours, one byte
      const int fd = test::blocking_connect(ep);
      SSL_CTX* c = SSL_CTX_new(TLS_client_method());
      SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
      SSL* s = SSL_new(c);
      SSL_set_fd(s, fd);
      if (SSL_connect(s) == 1 && SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED) == 1) (void)SSL_write(s, "x", 1);
      timeval tv{3, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char b[64];
      const ssize_t n = ::recv(fd, b, sizeof b, 0);  // plaintext here: the emulation
      if (n > 0) peer_saw.assign(b, static_cast<std::size_t>(n));
      SSL_free(s);
      SSL_CTX_free(c);
      ::close(fd);
    });
    ctx.run_until([&] { return done; }, 10s);
    l.close();
    peer.join();
    CHECK(offload);
    // The byte after the KeyUpdate is the caller's; the send that would go under the old keys is
    // refused; close_notify (an alert, not data) still goes.
    CHECK_FALSE(received);
    CHECK(got == "x");
    CHECK(sent == tls::errc::protocol_error);
    CHECK_FALSE(shut);
    CHECK(peer_saw == std::string("\x01\x00", 2));
    CHECK(detail.find("key update") != std::string::npos);
  }

  TEST_CASE("the kernel encrypts what both ends send: 8 MiB each way, close_notify, resumption, TLS 1.2") {
    if (!tls::kernel_tls_available()) {
      MESSAGE(std::string(no_kernel_tls));
      return;
    }
    tls::context srv = server_context();
    for (bool tls12 : {false, true}) {
      CAPTURE(tls12);
      tls::context cli = client_context(tls12);
      const std::string a = test::pattern(8 << 20), b = test::pattern((8 << 20) + 5);
      // Small send buffers: sends complete while the kernel's TLS layer still holds record
      // tails, so a FIN that overtook one would cut the stream before its close_notify.
      exchange_result r = exchange(srv, cli, a, b, {}, 16 * 1024);
      CHECK_FALSE(r.server.ec);
      CHECK_FALSE(r.client.ec);
      CHECK(r.server.offload);  // TLS_AES_256_GCM_SHA384 / ECDHE-ECDSA-AES256-GCM-SHA384
      CHECK(r.client.offload);
      CHECK(r.server.got == a);
      CHECK(r.client.got == b);  // the close_notify (a control record) ended each read
      REQUIRE(r.client.session);  // TLS 1.3: the tickets went as control records
      exchange_result again = exchange(srv, cli, "one", "two", r.client.session);
      CHECK(again.client.reused);
      CHECK(again.server.got == "one");
    }
  }

  TEST_CASE("openssl s_client reads what the kernel encrypted") {
    if (!tls::kernel_tls_available()) {
      MESSAGE(std::string(no_kernel_tls));
      return;
    }
    if (!have("openssl")) {
      MESSAGE("skipped: no openssl command");
      return;
    }
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    tls::context srv = server_context();
    const std::string big = test::pattern(256 * 1024);
    bool offload = false;
    auto server = [&]() -> task<void> {
      socket s = co_await l.accept_async();
      tls::stream t(std::move(s), srv);
      co_await t.handshake_async(5s);
      offload = t.kernel_offload();
      co_await t.send_all_async(test::bytes(big), 5s);
      co_await t.shutdown_async(5s);
    };
    bool done = false;
    ctx.spawn([](task<void> t, bool& done) -> task<void> {
      co_await std::move(t);
      done = true;
    }(server(), done));
    const std::string cmd = "timeout 10 openssl s_client -quiet -connect 127.0.0.1:" +
                            std::to_string(l.local_endpoint().port()) + " -CAfile " +
                            test::tls_material().ca_file + " -verify_return_error </dev/null 2>/dev/null";
    int status = -1;
    std::string got;
    std::atomic<bool> exited{false};
    std::thread runner([&] {
      if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[16384];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) got.append(buf, n);
        status = ::pclose(p);
      }
      exited = true;
    });
    ctx.run_until([&] { return done && exited.load(); }, 15s);
    runner.join();
    CHECK(offload);
    CHECK(status == 0);
    CHECK(got == big);
  }
}

}  // namespace rstest
