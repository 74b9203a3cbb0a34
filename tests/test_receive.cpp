// The receive path (detail/stream_receiver.hpp): a persistent multishot receive into the
// context's buffer ring per stream socket, inline completion from its queue, the FIFO order of
// waiting receives, backpressure, ENOBUFS, the ends of a stream, and the buffer accounting.
// Every case talks to a raw peer socket on loopback and checks the bytes it got.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <string>
#include <thread>
#include <vector>

#include "ringsock/detail/socket_ops.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

namespace {

using test::make_pair;
using test::pattern;
using test::raw_pair;

void peer_send(int fd, std::string_view s) {
  REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// Lets the loop reap what the kernel has for a while (bytes then wait in the socket's queue).
void settle(io_context& ctx, std::chrono::milliseconds d = 20ms) {
  ctx.run_until([] { return false; }, d);
}

task<std::string> receive_string(socket& s, std::size_t max) {
  std::vector<std::byte> buf(max);
  const std::size_t n = co_await s.receive_async(buf);
  co_return test::str({buf.data(), n});
}

task<received_buffer> borrow(socket& s) { co_return co_await s.receive_borrowed_async(); }

// Reads until `total` bytes arrived or the stream ended.
task<std::string> receive_all(socket& s, std::size_t total, std::size_t chunk) {
  std::string out;
  std::vector<std::byte> buf(chunk);
  while (out.size() < total) {
    const std::size_t n = co_await s.receive_async(buf);
    if (n == 0) break;
    out += test::str({buf.data(), n});
  }
  co_return out;
}

// Every receive buffer is back in the ring and no piece is held.
bool all_back(const io_context& ctx) {
  const io_stats s = ctx.stats();
  return s.buffers_lent == 0 && s.buffer_pieces_held == 0;
}

// Writes `data` from another thread (the loop must run to take it).
std::thread peer_writer(int fd, std::string data) {
  return std::thread([fd, data = std::move(data)] {
    std::size_t off = 0;
    while (off < data.size()) {
      const std::size_t n = std::min<std::size_t>(4096, data.size() - off);
      const ssize_t w = ::send(fd, data.data() + off, n, MSG_NOSIGNAL);
      if (w <= 0) return;
      off += static_cast<std::size_t>(w);
    }
  });
}

// A context with a small buffer ring (`limit`: the receive queue's) and a loopback listener.
struct small_ring {
  static io_context::params params_of(unsigned buffers, unsigned size, unsigned limit) {
    io_context::params p;
    p.receive_buffers = buffers;
    p.receive_buffer_size = size;
    p.receive_queue_limit = limit;
    return p;
  }
  small_ring(unsigned buffers, unsigned size, unsigned limit = 8)
      : ctx(params_of(buffers, size, limit)),
        l(socket::listen(ctx, endpoint::loopback(address_family::ipv4))) {}
  io_context ctx;
  socket l;
};

}  // namespace

TEST_SUITE("receive path") {
  TEST_CASE("this kernel gives the context a buffer ring and multishot receive") {
    io_context ctx;
    const ring_features& f = ctx.features();
    MESSAGE("buffer_ring " << f.buffer_ring << ", incremental " << f.incremental_buffers
                           << ", multishot_receive " << f.multishot_receive);
    CHECK(f.buffer_ring);
    CHECK(f.multishot_receive);
    CHECK(ctx.stats().buffers_total == 256);
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "a receive completes inline when bytes are queued: no SQE, no enter, no suspension") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "first");
    CHECK(ctx.block_on(receive_string(p.server, 64)) == "first");  // arms the multishot
    peer_send(p.peer, "second");
    settle(ctx);
    CHECK(p.server.queued_bytes() == 6);
    CHECK(p.server.available() == 6);
    struct seen {
      io_stats before, after;
      std::size_t n = 0;
      std::array<std::byte, 64> buf{};
    } s;
    ctx.block_on([](socket& sock, seen& s) -> task<void> {
      s.before = sock.context().stats();
      s.n = co_await sock.receive_async(s.buf);
      s.after = sock.context().stats();
    }(p.server, s));
    CHECK(test::str({s.buf.data(), s.n}) == "second");
    CHECK(s.after.inline_completions == s.before.inline_completions + 1);
    CHECK(s.after.sqes_submitted == s.before.sqes_submitted);
    CHECK(s.after.enter_calls == s.before.enter_calls);
    CHECK(p.server.queued_bytes() == 0);
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "the multishot receive stays armed over 64 receives (no SQE after the first)") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "0");
    CHECK(ctx.block_on(receive_string(p.server, 8)) == "0");
    const io_stats before = ctx.stats();
    std::string got = ctx.block_on([](socket& s, int peer) -> task<std::string> {
      std::string out;
      std::array<std::byte, 8> buf{};
      for (int i = 0; i < 64; ++i) {
        const char c = static_cast<char>('A' + i % 26);
        (void)::send(peer, &c, 1, MSG_NOSIGNAL);
        const std::size_t n = co_await s.receive_async(buf);
        out += test::str({buf.data(), n});
      }
      co_return out;
    }(p.server, p.peer));
    CHECK(got.size() == 64);
    CHECK(got.substr(0, 3) == "ABC");
    CHECK(ctx.stats().sqes_submitted == before.sqes_submitted);
    CHECK(ctx.stats().cqes >= before.cqes + 1);
  }

  TEST_CASE_FIXTURE(test::listening, "concurrent receives on one socket complete in the order they were started") {
    for (int round = 0; round < 2; ++round) {
      CAPTURE(round);  // 0: the peer sends 1, 2, 3 at once; 1: one by one
      raw_pair p = make_pair(ctx, l);
      std::string order;
      auto one = [](socket& s, std::string& order) -> task<void> {
        std::array<std::byte, 1> b{};
        const std::size_t n = co_await s.receive_async(b);
        if (n == 1) order += static_cast<char>(b[0]);
      };
      for (int i = 0; i < 3; ++i) ctx.spawn(one(p.server, order));
      settle(ctx, 5ms);
      if (round == 0) {
        peer_send(p.peer, "123");
      } else {
        for (const char* c : {"1", "2", "3"}) {
          peer_send(p.peer, c);
          settle(ctx, 2ms);
        }
      }
      ctx.run_until([&] { return order.size() == 3; }, 2s);
      CHECK(order == "123");
    }
  }

  TEST_CASE_FIXTURE(test::listening, "data then FIN gives the data, then 0 for every later receive") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "hello");
    REQUIRE(::shutdown(p.peer, SHUT_WR) == 0);
    settle(ctx);
    CHECK(ctx.block_on(receive_string(p.server, 64)) == "hello");
    CHECK(ctx.block_on(receive_string(p.server, 64)).empty());
    CHECK(ctx.block_on(receive_string(p.server, 64)).empty());
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "data then RST gives the data, then connection_reset once, then 0") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "x");
    CHECK(ctx.block_on(receive_string(p.server, 8)) == "x");  // the multishot is armed
    peer_send(p.peer, "hello");
    settle(ctx);
    const ::linger abort{1, 0};
    REQUIRE(::setsockopt(p.peer, SOL_SOCKET, SO_LINGER, &abort, sizeof abort) == 0);
    ::close(std::exchange(p.peer, -1));
    settle(ctx);
    CHECK(ctx.block_on(receive_string(p.server, 64)) == "hello");
    std::array<std::byte, 8> buf{};
    auto r = ctx.block_on([](socket& s, std::span<std::byte> b) -> task<io_result<std::size_t>> {
      co_return co_await as_result(s.receive_async(b));
    }(p.server, buf));
    CHECK(r.ec == std::errc::connection_reset);
    CHECK(ctx.block_on(receive_string(p.server, 64)).empty());
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "a waiting receive that is cancelled or times out leaves the multishot to the next one, in order") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "a");
    CHECK(ctx.block_on(receive_string(p.server, 8)) == "a");
    // Timed out while waiting.
    std::array<std::byte, 8> buf{};
    auto timed = ctx.block_on([](socket& s, std::span<std::byte> b) -> task<io_result<std::size_t>> {
      co_return co_await as_result(s.receive_async(b, 20ms));
    }(p.server, buf));
    CHECK(timed.ec == std::errc::timed_out);
    // Cancelled while waiting, with another receive queued behind it.
    std::stop_source stop;
    std::error_code first;
    std::string second;
    ctx.spawn([](socket& s, std::stop_token tok, std::error_code& first) -> task<void> {
      std::array<std::byte, 8> b{};
      auto r = co_await as_result(s.receive_async(b, tok));
      first = r.ec;
    }(p.server, stop.get_token(), first));
    ctx.spawn([](socket& s, std::string& out) -> task<void> {
      out = co_await receive_string(s, 8);
    }(p.server, second));
    settle(ctx, 5ms);
    stop.request_stop();
    settle(ctx, 5ms);
    CHECK(first == std::errc::operation_canceled);
    peer_send(p.peer, "b");
    ctx.run_until([&] { return !second.empty(); }, 2s);
    CHECK(second == "b");
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE_FIXTURE(test::listening, "close() with receives waiting completes them once with operation_canceled and gives every buffer back") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "queued");
    CHECK(ctx.block_on(receive_string(p.server, 1)) == "q");  // the rest stays queued
    CHECK(ctx.stats().buffers_lent <= 1);
    int canceled = 0;
    // The queued bytes go to the first receive inline; these two wait.
    CHECK(ctx.block_on(receive_string(p.server, 64)) == "ueued");
    for (int i = 0; i < 2; ++i)
      ctx.spawn([](socket& s, int& canceled) -> task<void> {
        std::array<std::byte, 8> b{};
        auto r = co_await as_result(s.receive_async(b));
        if (r.ec == std::errc::operation_canceled) ++canceled;
      }(p.server, canceled));
    settle(ctx, 5ms);
    peer_send(p.peer, "more");
    p.server.close();
    settle(ctx);
    CHECK(canceled == 2);
    CHECK(ctx.pending_operations() == 0);
    CHECK(all_back(ctx));
    // The peer sees the close.
    pollfd pf{p.peer, POLLIN, 0};
    CHECK(::poll(&pf, 1, 1000) == 1);
  }

  TEST_CASE_FIXTURE(test::listening, "a receive handed its piece straight from the CQE that closes or drops its socket: the receives behind it end with operation_canceled, every buffer back") {
    for (bool drop : {false, true}) {
      CAPTURE(drop);
      raw_pair p = make_pair(ctx, l);
      peer_send(p.peer, "0");
      CHECK(ctx.block_on(receive_string(p.server, 4)) == "0");  // armed, nothing queued
      std::string log;
      // The first waiter takes the next piece whole (the hand-off path), then closes or drops.
      ctx.spawn([](socket& s, std::string& log, bool drop) -> task<void> {
        received_buffer b = co_await s.receive_borrowed_async();
        log += "[1:" + test::str(b.data()) + "]";
        if (drop) {
          socket gone = std::move(s);  // the last handle dies with this frame
        } else {
          s.close();
        }
      }(p.server, log, drop));
      for (int i = 2; i <= 3; ++i)
        ctx.spawn([](socket& s, std::string& log, int i) -> task<void> {
          std::array<std::byte, 8> buf{};
          auto r = co_await as_result(s.receive_async(buf));
          log += "[" + std::to_string(i) + (r.ec == std::errc::operation_canceled ? ":canceled]" : ":other]");
        }(p.server, log, i));
      settle(ctx, 5ms);
      peer_send(p.peer, "xy");
      ctx.run_until([&] { return log.size() >= 6 + 2 * 11; }, 2s);
      CHECK(log == "[1:xy][2:canceled][3:canceled]");
      settle(ctx);
      CHECK(ctx.pending_operations() == 0);
      CHECK(all_back(ctx));
    }
  }

  TEST_CASE("the early-data queue stops at its limit and nothing is lost") {
    small_ring ring(64, 1024, 4);
    io_context& ctx = ring.ctx;
    socket& l = ring.l;
    raw_pair p = make_pair(ctx, l);
    p.server.set_receive_buffer_size(256 * 1024);
    peer_send(p.peer, "!");
    CHECK(ctx.block_on(receive_string(p.server, 8)) == "!");
    const std::string data = pattern(200 * 1024);
    std::thread w = peer_writer(p.peer, data);
    settle(ctx, 100ms);
    const std::size_t queued = p.server.queued_bytes();
    MESSAGE("queued " << queued << " bytes, kernel holds " << p.server.available() - queued
                      << ", lent " << ctx.stats().buffers_lent);
    // The limit (4 pieces of at most 1 KiB), plus what the kernel posted in the same burst before
    // the cancel was seen: a multishot receive retries up to 32 times per wake-up.
    CHECK(queued > 0);
    CHECK(queued <= (4 + 32) * 1024);
    CHECK(ctx.stats().buffers_lent <= 4 + 32);
    CHECK(p.server.available() - queued >= 100 * 1024);  // the rest waits in the kernel
    CHECK(ctx.block_on(receive_all(p.server, data.size(), 3000)) == data);
    w.join();
    CHECK(all_back(ctx));
  }

  TEST_CASE("a ring that runs dry never kills a connection: every byte arrives, in order, on every socket") {
    small_ring ring(4, 512, 64);  // a queue limit above the ring: one socket can take every buffer
    io_context& ctx = ring.ctx;
    socket& l = ring.l;
    raw_pair a = make_pair(ctx, l);
    raw_pair b = make_pair(ctx, l);
    peer_send(a.peer, "a");
    peer_send(b.peer, "b");
    CHECK(ctx.block_on(receive_string(a.server, 8)) == "a");
    CHECK(ctx.block_on(receive_string(b.server, 8)) == "b");
    const std::string da = pattern(300 * 1024), db = pattern(200 * 1024).substr(7);
    std::thread wa = peer_writer(a.peer, da), wb = peer_writer(b.peer, db);
    settle(ctx, 30ms);  // nobody reads: the queues take the ring's every buffer
    std::string ga, gb;
    ctx.spawn([](socket& s, std::size_t n, std::string& out) -> task<void> {
      out = co_await receive_all(s, n, 700);
    }(a.server, da.size(), ga));
    ctx.spawn([](socket& s, std::size_t n, std::string& out) -> task<void> {
      out = co_await receive_all(s, n, 300);
    }(b.server, db.size(), gb));
    ctx.run_until([&] { return ga.size() == da.size() && gb.size() == db.size(); }, 10s);
    wa.join();
    wb.join();
    MESSAGE("ENOBUFS met " << ctx.stats().buffer_shortages << " times");
    CHECK(ctx.stats().buffer_shortages > 0);
    CHECK(ga == da);
    CHECK(gb == db);
    CHECK(all_back(ctx));
  }

  TEST_CASE("receives far beyond the ring's capacity: 4 MiB through 4 buffers of 512 bytes") {
    small_ring ring(4, 512);
    io_context& ctx = ring.ctx;
    socket& l = ring.l;
    raw_pair p = make_pair(ctx, l);
    const std::string data = pattern(4u << 20);
    std::thread w = peer_writer(p.peer, data);
    CHECK(ctx.block_on(receive_all(p.server, data.size(), 64 * 1024)) == data);
    w.join();
    CHECK(all_back(ctx));
  }

  TEST_CASE("without a buffer ring (receive_buffers = 0) every receive has its own SQE and works") {
    io_context::params prm;
    prm.receive_buffers = 0;
    io_context ctx(prm);
    CHECK_FALSE(ctx.features().buffer_ring);
    CHECK_FALSE(ctx.features().multishot_receive);
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "plain");
    const io_stats before = ctx.stats();
    CHECK(ctx.block_on(receive_string(p.server, 64)) == "plain");
    CHECK(ctx.stats().sqes_submitted == before.sqes_submitted + 1);
    CHECK(p.server.queued_bytes() == 0);
    ::shutdown(p.peer, SHUT_WR);
    CHECK(ctx.block_on(receive_string(p.server, 64)).empty());
  }

  TEST_CASE("a datagram socket keeps single-shot receives (truncation stays visible)") {
    io_context ctx;
    socket u(ctx, address_family::ipv4, socket_type::datagram);
    u.bind(endpoint::loopback(address_family::ipv4));
    const int peer = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const endpoint to = u.local_endpoint();
    REQUIRE(::sendto(peer, "0123456789", 10, 0, to.data(), to.size()) == 10);
    REQUIRE(::sendto(peer, "ab", 2, 0, to.data(), to.size()) == 2);
    REQUIRE(::sendto(peer, "cd", 2, 0, to.data(), to.size()) == 2);
    CHECK(ctx.block_on(receive_string(u, 4)) == "0123");  // the rest of that datagram is gone
    const io_stats before = ctx.stats();
    CHECK(ctx.block_on(receive_string(u, 4)) == "ab");
    CHECK(ctx.block_on(receive_string(u, 4)) == "cd");
    CHECK(ctx.stats().sqes_submitted == before.sqes_submitted + 2);
    CHECK(all_back(ctx));
    ::close(peer);
  }

  TEST_CASE("destroying the context with receives waiting and bytes queued leaks nothing") {
    const std::size_t fds = test::open_fds();
    {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      raw_pair a = make_pair(ctx, l);
      raw_pair b = make_pair(ctx, l);
      peer_send(a.peer, "x");
      CHECK(ctx.block_on(receive_string(a.server, 8)) == "x");
      peer_send(a.peer, "queued and never read");
      settle(ctx);
      CHECK(a.server.queued_bytes() > 0);
      ctx.spawn([](socket& s) -> task<void> { (void)co_await receive_string(s, 8); }(b.server));
      settle(ctx, 5ms);
      CHECK(ctx.pending_operations() == 1);
    }
    CHECK(test::open_fds() == fds);
  }

  TEST_CASE("a socket dropped while its receive queue holds bytes gives the buffers back") {
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    for (int i = 0; i < 20; ++i) {
      raw_pair p = make_pair(ctx, l);
      peer_send(p.peer, "1");
      CHECK(ctx.block_on(receive_string(p.server, 8)) == "1");
      peer_send(p.peer, pattern(3000));
      settle(ctx, 2ms);
    }
    settle(ctx);
    CHECK(all_back(ctx));
    CHECK(ctx.pending_operations() == 0);
  }

  TEST_CASE_FIXTURE(test::listening, "receive_borrowed_async lends the ring's buffer: inline when queued, back to the ring when the handle dies") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "one");
    received_buffer first = ctx.block_on(borrow(p.server));
    CHECK(test::str(first.data()) == "one");
    peer_send(p.peer, "two");
    settle(ctx);
    struct seen {
      io_stats before, after;
      received_buffer b;
    } s;
    ctx.block_on([](socket& sock, seen& s) -> task<void> {
      s.before = sock.context().stats();
      s.b = co_await sock.receive_borrowed_async();
      s.after = sock.context().stats();
    }(p.server, s));
    CHECK(test::str(s.b.data()) == "two");
    CHECK(s.after.inline_completions == s.before.inline_completions + 1);
    CHECK(s.after.sqes_submitted == s.before.sqes_submitted);
    first.reset();
    CHECK(first.empty());
    received_buffer moved = std::move(s.b);
    CHECK(s.b.empty());
    CHECK(moved.size() == 3);
    moved = received_buffer();
    CHECK(all_back(ctx));
    // End of stream: an empty handle.
    ::shutdown(p.peer, SHUT_WR);
    received_buffer end = ctx.block_on(borrow(p.server));
    CHECK(end.empty());
  }

  TEST_CASE_FIXTURE(test::listening, "borrowed and copying receives share one FIFO: they complete in the order started") {
    raw_pair p = make_pair(ctx, l);
    std::string log;
    ctx.spawn([](socket& s, std::string& log) -> task<void> {
      received_buffer b = co_await s.receive_borrowed_async();
      log += "[B:" + test::str(b.data()) + "]";
    }(p.server, log));
    ctx.spawn([](socket& s, std::string& log) -> task<void> {
      std::array<std::byte, 2> buf{};
      const std::size_t n = co_await s.receive_async(buf);
      log += "[C:" + test::str({buf.data(), n}) + "]";
    }(p.server, log));
    ctx.spawn([](socket& s, std::string& log) -> task<void> {
      socket_args a;
      if (std::error_code ec = co_await s.receive_borrowed_async(a)) co_return;
      log += "[A:" + test::str(a.borrowed().data()) + "]";
    }(p.server, log));
    settle(ctx, 5ms);
    peer_send(p.peer, "xy");
    settle(ctx, 5ms);
    peer_send(p.peer, "zw");
    settle(ctx, 5ms);
    peer_send(p.peer, "q");
    ctx.run_until([&] { return log.size() >= 3 * 5; }, 2s);
    CHECK(log == "[B:xy][C:zw][A:q]");
    settle(ctx);
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "MSG_PEEK (args form) copies queued bytes and leaves them: inline when they fill its buffer, in FIFO order when waiting") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "peek");
    CHECK(ctx.block_on(receive_string(p.server, 2)) == "pe");  // arms; "ek" stays queued
    std::string log;
    ctx.block_on([](socket& s, std::string& log) -> task<void> {
      std::array<std::byte, 8> buf{};
      socket_args a;
      a.set_buffer(std::span(buf).first(2));  // the queue fills it: inline
      a.set_message_flags(MSG_PEEK);
      if (co_await s.receive_async(a)) co_return;
      log += (a.completed_synchronously() ? "[inline " : "[") + test::str({buf.data(), a.bytes_transferred()}) + "]";
      a.set_buffer(buf);  // it cannot: on a following turn, with what is there
      if (co_await s.receive_async(a)) co_return;
      log += (a.completed_synchronously() ? "[inline " : "[") + test::str({buf.data(), a.bytes_transferred()}) + "]";
    }(p.server, log));
    CHECK(log == "[inline ek][ek]");
    CHECK(p.server.queued_bytes() == 2);
    CHECK(ctx.block_on(receive_string(p.server, 8)) == "ek");  // a plain receive takes them

    // Waiting: a peek, then a plain receive; both see the next bytes, the plain one takes them.
    log.clear();
    auto peek = [](socket& s, std::string& log) -> task<void> {
      std::array<std::byte, 8> buf{};
      socket_args a;
      a.set_buffer(buf);
      a.set_message_flags(MSG_PEEK);
      if (co_await s.receive_async(a)) co_return;
      log += "[P:" + test::str({buf.data(), a.bytes_transferred()}) + "]";
    };
    auto take = [](socket& s, std::string& log) -> task<void> {
      std::array<std::byte, 8> buf{};
      const std::size_t n = co_await s.receive_async(buf);
      log += "[T:" + test::str({buf.data(), n}) + "]";
    };
    ctx.spawn(peek(p.server, log));
    ctx.spawn(take(p.server, log));
    settle(ctx, 5ms);
    peer_send(p.peer, "xyz");
    ctx.run_until([&] { return log.size() >= 14; }, 2s);
    CHECK(log == "[P:xyz][T:xyz]");
    CHECK(p.server.queued_bytes() == 0);
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "peeks that loop until enough bytes are there let the loop run: one peeker, then two at once") {
    for (int peekers : {1, 2}) {
      CAPTURE(peekers);
      raw_pair p = make_pair(ctx, l);
      peer_send(p.peer, "0");
      CHECK(ctx.block_on(receive_string(p.server, 1)) == "0");  // armed
      int done = 0;
      auto peek_until = [](socket& s, int& done) -> task<void> {
        std::array<std::byte, 8> buf{};
        socket_args a;
        a.set_buffer(buf);
        a.set_message_flags(MSG_PEEK);
        for (int round = 0; round < 100000; ++round) {
          if (co_await s.receive_async(a)) co_return;
          if (a.bytes_transferred() == 8) break;
        }
        if (test::str(buf) == "abcdefgh") ++done;
      };
      for (int i = 0; i < peekers; ++i) ctx.spawn(peek_until(p.server, done));
      settle(ctx, 5ms);
      peer_send(p.peer, "abcd");
      settle(ctx, 5ms);  // the peekers see 4 bytes and peek again: the loop must go on turning
      peer_send(p.peer, "efgh");
      ctx.run_until([&] { return done == peekers; }, 2s);
      CHECK(done == peekers);
      CHECK(ctx.block_on(receive_string(p.server, 16)) == "abcdefgh");  // still all queued
    }
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "MSG_OOB: the out-of-band byte by its own receive, the stream around it unchanged; flags are checked before submission") {
    raw_pair p = make_pair(ctx, l);
    REQUIRE(::send(p.peer, "ab!", 3, MSG_OOB) == 3);  // "ab" in the stream, '!' urgent
    settle(ctx, 5ms);
    std::string got = ctx.block_on([](socket& s) -> task<std::string> {
      std::array<std::byte, 4> buf{};
      socket_args a;
      a.set_buffer(buf);
      a.set_message_flags(MSG_OOB);
      if (std::error_code ec = co_await s.receive_async(a)) co_return "error " + ec.message();
      std::string out = "[" + test::str({buf.data(), a.bytes_transferred()}) + "]";
      a.set_message_flags(0);
      if (co_await s.receive_async(a)) co_return "error";
      co_return out + test::str({buf.data(), a.bytes_transferred()});
    }(p.server));
    CHECK(got == "[!]ab");
    // A send with MSG_OOB: the peer reads the byte out of band.
    ctx.block_on([](socket& s) -> task<void> {
      const char c = '#';
      socket_args a;
      a.set_buffer({const_cast<std::byte*>(reinterpret_cast<const std::byte*>(&c)), 1});
      a.set_message_flags(MSG_OOB);
      (void)co_await s.send_async(a);
    }(p.server));
    pollfd pf{p.peer, POLLPRI, 0};
    REQUIRE(::poll(&pf, 1, 2000) == 1);
    char oob = 0;
    CHECK(::recv(p.peer, &oob, 1, MSG_OOB) == 1);
    CHECK(oob == '#');

    socket_args bad;
    std::array<std::byte, 4> buf{};
    bad.set_buffer(buf);
    bad.set_message_flags(MSG_WAITALL);
    CHECK_THROWS_AS(ctx.block_on([](socket& s, socket_args& a) -> task<void> { (void)co_await s.receive_async(a); }(p.server, bad)),
                    std::invalid_argument);
    bad.set_message_flags(MSG_PEEK);
    CHECK_THROWS_AS(ctx.block_on([](socket& s, socket_args& a) -> task<void> { (void)co_await s.receive_borrowed_async(a); }(p.server, bad)),
                    std::invalid_argument);
    CHECK_THROWS_AS(ctx.block_on([](socket& s, socket_args& a) -> task<void> { (void)co_await s.send_async(a); }(p.server, bad)),
                    std::invalid_argument);
    CHECK(ctx.pending_operations() == 0);
    CHECK_FALSE(bad.in_use());
  }

  TEST_CASE_FIXTURE(test::listening, "a buffer list (args form): a receive fills the segments in order, with every buffer given back") {
    raw_pair p = make_pair(ctx, l);
    peer_send(p.peer, "0123456789");
    settle(ctx, 5ms);
    std::array<std::byte, 4> a1{};
    std::array<std::byte, 8> a2{};
    const std::array<iovec, 3> segs{iovec{a1.data(), a1.size()}, iovec{nullptr, 0}, iovec{a2.data(), a2.size()}};
    std::size_t n = ctx.block_on([](socket& s, std::span<const iovec> segs) -> task<std::size_t> {
      socket_args a;
      a.set_buffer_list(segs);
      if (co_await s.receive_async(a)) co_return 0;
      co_return a.bytes_transferred();
    }(p.server, segs));
    CHECK(n == 10);
    CHECK(test::str(a1) == "0123");
    CHECK(test::str(std::span(a2).first(6)) == "456789");
    const std::array<iovec, 1> empty{iovec{a1.data(), 0}};
    CHECK_THROWS_AS(ctx.block_on([](socket& s, std::span<const iovec> segs) -> task<void> {
                      socket_args a;
                      a.set_buffer_list(segs);
                      (void)co_await s.receive_async(a);
                    }(p.server, empty)),
                    std::invalid_argument);
    CHECK(all_back(ctx));
  }

  TEST_CASE("send_all over segments resumes where a short send stopped: mid-segment with one send, then sendmsg of the rest, skipping empty segments") {
    std::array<char, 8> a{}, b{};
    const std::array<iovec, 4> segs{iovec{nullptr, 0}, iovec{a.data(), 3}, iovec{nullptr, 0}, iovec{b.data(), 5}};
    detail::send_all_vec_op op{segs};
    detail::io_request r;
    REQUIRE_FALSE(op.done_inline(r));
    CHECK(op.total == 8);
    io_uring_sqe sqe{};
    op.prep(&sqe, 7);  // the first round: every segment, from the first non-empty one
    CHECK(sqe.opcode == IORING_OP_SENDMSG);
    CHECK(op.msg.msg_iov == segs.data() + 1);
    CHECK(op.msg.msg_iovlen == 3);
    op.advance(2);  // short: 2 of the 3 bytes of a
    op.prep(&sqe, 7);
    CHECK(sqe.opcode == IORING_OP_SEND);
    CHECK(sqe.addr == reinterpret_cast<std::uintptr_t>(a.data() + 2));
    CHECK(sqe.len == 1);
    op.advance(1);  // a done: the rest is b, past the empty segment
    op.prep(&sqe, 7);
    CHECK(sqe.opcode == IORING_OP_SENDMSG);
    CHECK(op.msg.msg_iov == segs.data() + 3);
    CHECK(op.msg.msg_iovlen == 1);
    op.advance(4);
    op.prep(&sqe, 7);
    CHECK(sqe.opcode == IORING_OP_SEND);
    CHECK(sqe.addr == reinterpret_cast<std::uintptr_t>(b.data() + 4));
    CHECK(sqe.len == 1);
    op.advance(1);
    CHECK(op.sent == op.total);
    const std::array<iovec, 2> empty{iovec{nullptr, 0}, iovec{a.data(), 0}};
    detail::send_all_vec_op none{empty};
    CHECK(none.done_inline(r));  // nothing to send: inline, 0
    CHECK(r.res_ == 0);
  }

  TEST_CASE_FIXTURE(test::listening, "a buffer list longer than IOV_MAX: send_all sends every segment in order, a receive fills them in order") {
    raw_pair p = make_pair(ctx, l);
    constexpr std::size_t n = 1500, each = 100;  // IOV_MAX is 1024
    std::vector<std::byte> data(n * each);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i % 251);
    std::vector<iovec> segs;
    for (std::size_t i = 0; i < n; ++i) segs.push_back({data.data() + i * each, each});
    std::vector<std::byte> got;
    std::thread reader = test::read_on_thread(p.peer, got, data.size());
    const std::size_t sent = ctx.block_on([](socket& s, std::span<const iovec> segs) -> task<std::size_t> {
      socket_args a;
      a.set_buffer_list(segs);
      if (co_await s.send_all_async(a)) co_return 0;
      co_return a.bytes_transferred();
    }(p.server, segs));
    reader.join();
    CHECK(sent == data.size());
    CHECK(got == data);

    // Receive: 3000 bytes into 2000 segments of 1 byte, then the rest.
    std::string text(3000, 'x');
    for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
    peer_send(p.peer, text);
    settle(ctx, 5ms);
    std::vector<std::byte> small(2000);
    std::vector<iovec> one_byte;
    for (auto& b : small) one_byte.push_back({&b, 1});
    const std::size_t first = ctx.block_on([](socket& s, std::span<const iovec> segs) -> task<std::size_t> {
      socket_args a;
      a.set_buffer_list(segs);
      if (co_await s.receive_async(a)) co_return 0;
      co_return a.bytes_transferred();
    }(p.server, one_byte));
    REQUIRE(first > 0);
    REQUIRE(first <= 2000);
    CHECK(test::str({small.data(), first}) == text.substr(0, first));
    CHECK(ctx.block_on(receive_string(p.server, 4096)) == text.substr(first, 4096));
    CHECK(all_back(ctx));
  }

  TEST_CASE_FIXTURE(test::listening, "an echo server on borrowed buffers moves 1 MiB intact and gives every buffer back") {
    raw_pair p = make_pair(ctx, l);
    const std::string data = pattern(1u << 20);
    std::thread w = peer_writer(p.peer, data);
    std::string back;
    std::thread r([&] {
      char buf[65536];
      while (back.size() < data.size()) {
        const ssize_t n = ::recv(p.peer, buf, sizeof buf, 0);
        if (n <= 0) break;
        back.append(buf, static_cast<std::size_t>(n));
      }
    });
    ctx.block_on([](socket& s, std::size_t total) -> task<void> {
      std::size_t done = 0;
      while (done < total) {
        received_buffer b = co_await s.receive_borrowed_async();
        if (b.empty()) break;
        co_await s.send_all_async(b.data());
        done += b.size();
      }
    }(p.server, data.size()));
    w.join();
    r.join();
    CHECK(back == data);
    CHECK(all_back(ctx));
  }

  TEST_CASE("handles that hold every buffer: a copying receive elsewhere still gets its bytes (a receive of its own), a borrowing one waits for a buffer") {
    small_ring ring(4, 256);
    io_context& ctx = ring.ctx;
    socket& l = ring.l;
    raw_pair a = make_pair(ctx, l);
    raw_pair b = make_pair(ctx, l);
    std::vector<received_buffer> held;
    for (int i = 0; i < 4; ++i) {
      peer_send(a.peer, pattern(256));  // one full buffer per arrival
      held.push_back(ctx.block_on(borrow(a.server)));
    }
    std::size_t total = 0;
    for (const auto& h : held) total += h.size();
    CHECK(total == 4 * 256);
    CHECK(ctx.stats().buffers_lent == 4);
    // The ring is dry. A copying receive on b: its multishot meets ENOBUFS, then a single-shot
    // receive into its own buffer brings the bytes.
    std::string got;
    ctx.spawn([](socket& s, std::string& got) -> task<void> { got = co_await receive_all(s, 14, 64); }(b.server, got));
    peer_send(b.peer, "waiting");
    settle(ctx, 10ms);
    peer_send(b.peer, "direct!");
    ctx.run_until([&] { return got.size() == 14; }, 2s);
    CHECK(got == "waitingdirect!");
    CHECK(ctx.stats().buffer_shortages > 0);
    // A borrowing receive needs a ring buffer: it waits until a handle gives one back.
    received_buffer lent;
    bool done = false;
    ctx.spawn([](socket& s, received_buffer& out, bool& done) -> task<void> {
      out = co_await s.receive_borrowed_async();
      done = true;
    }(b.server, lent, done));
    peer_send(b.peer, "later");
    settle(ctx, 30ms);
    CHECK_FALSE(done);
    held.clear();
    ctx.run_until([&] { return done; }, 2s);
    CHECK(test::str(lent.data()) == "later");
    lent.reset();
    CHECK(all_back(ctx));
  }

  TEST_CASE("receive_borrowed_async on a datagram socket or without a buffer ring is std::invalid_argument") {
    {
      io_context ctx;
      socket u(ctx, address_family::ipv4, socket_type::datagram);
      u.bind(endpoint::loopback(address_family::ipv4));
      bool threw = false;
      ctx.block_on([](socket& u, bool& threw) -> task<void> {
        try {
          (void)co_await u.receive_borrowed_async();
        } catch (const std::invalid_argument&) {
          threw = true;
        }
      }(u, threw));
      CHECK(threw);
      CHECK(ctx.pending_operations() == 0);
    }
    io_context::params prm;
    prm.receive_buffers = 0;
    io_context ctx(prm);
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    raw_pair p = make_pair(ctx, l);
    bool threw = false;
    ctx.block_on([](socket& s, bool& threw) -> task<void> {
      try {
        (void)co_await s.receive_borrowed_async();
      } catch (const std::invalid_argument&) {
        threw = true;
      }
    }(p.server, threw));
    CHECK(threw);
  }

  TEST_CASE("a dry ring with one socket left unread: another socket is still read to its end first") {
    small_ring ring(4, 512, 64);
    io_context& ctx = ring.ctx;
    socket& l = ring.l;
    raw_pair a = make_pair(ctx, l);
    raw_pair b = make_pair(ctx, l);
    peer_send(a.peer, "a");
    CHECK(ctx.block_on(receive_string(a.server, 8)) == "a");
    peer_send(a.peer, pattern(8 * 1024));  // a's queue takes every buffer; nobody reads a yet
    settle(ctx);
    CHECK(ctx.stats().buffers_lent == 4);
    const std::string db = pattern(100 * 1024);
    std::thread wb = peer_writer(b.peer, db);
    std::string gb;
    ctx.spawn([](socket& s, std::size_t n, std::string& out) -> task<void> {
      out = co_await receive_all(s, n, 4096);
    }(b.server, db.size(), gb));
    ctx.run_until([&] { return gb.size() == db.size(); }, 10s);
    wb.join();
    CHECK(gb == db);
    CHECK(ctx.block_on(receive_all(a.server, 8 * 1024, 1000)) == pattern(8 * 1024));
    CHECK(all_back(ctx));
  }

  TEST_CASE("an error that does not end the connection is given to one receive: a receive before the connect, then the data") {
    io_context ctx;
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    socket c(ctx, address_family::ipv4);
    std::array<std::byte, 8> buf{};
    auto early = ctx.block_on([](socket& s, std::span<std::byte> b) -> task<io_result<std::size_t>> {
      co_return co_await as_result(s.receive_async(b));
    }(c, buf));
    CHECK(early.ec == std::errc::not_connected);
    ctx.block_on([](socket& c, endpoint ep) -> task<void> { co_await c.connect_async(ep); }(c, l.local_endpoint()));
    socket server = ctx.block_on(test::accept_one(l));
    ctx.block_on([](socket& s) -> task<void> { co_await s.send_all_async(test::bytes("late")); }(server));
    CHECK(ctx.block_on(receive_string(c, 8)) == "late");
  }
}

}  // namespace rstest
