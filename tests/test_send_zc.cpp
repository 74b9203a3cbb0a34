// Zero-copy sends (io_context::params::send_zc_threshold): which sends go zero-copy, that every
// byte arrives in order, that the buffer is the caller's once the co_await returns, that a
// socket whose zero-copy send the kernel copied (loopback does, always) sends by copying from
// then on, and that cancellation, timeouts and resets end such sends once, leaking nothing.
// Every case talks to a raw peer socket on loopback and checks the bytes it got.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using namespace std::chrono_literals;

namespace {

io_context::params zc_params(std::size_t threshold) {
  io_context::params p;
  p.send_zc_threshold = threshold;
  return p;
}

// A context whose sends of at least `threshold` bytes go zero-copy, and a loopback listener.
struct zc_server {
  explicit zc_server(std::size_t threshold = 16 * 1024)
      : ctx(zc_params(threshold)), l(socket::listen(ctx, endpoint::loopback(address_family::ipv4))) {}
  io_context ctx;
  socket l;
};

std::span<const std::byte> as_span(const std::string& s) { return test::bytes(s); }

task<std::size_t> send_all(socket& s, std::span<const std::byte> b) {
  co_return co_await s.send_all_async(b);
}

// Sends `data` to the peer of `p` while a thread reads it; returns what the peer got.
std::string send_and_read(io_context& ctx, test::raw_pair& p, const std::string& data) {
  std::vector<std::byte> got;
  std::thread reader = test::read_on_thread(p.peer, got, data.size());
  const std::size_t n = ctx.block_on(send_all(p.server, as_span(data)));
  reader.join();
  CHECK(n == data.size());
  return test::str(got);
}

// Shrinks the socket's send buffer and the peer's receive buffer, so that a large send waits
// for the peer (which does not read) to make room.
void make_room_scarce(test::raw_pair& p) {
  p.server.set_send_buffer_size(16 * 1024);
  const int small = 16 * 1024;
  REQUIRE(::setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
}

// True for a kernel at least major.minor (uname's release).
bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int a = 0, b = 0;
  if (std::sscanf(u.release, "%d.%d", &a, &b) != 2) return false;
  return a > major || (a == major && b >= minor);
}

bool skip_without_zc(const io_context& ctx) {
  if (ctx.features().send_zc) return false;
  // Where the kernel has it, the probe must have found it: no silent skip of every case.
  REQUIRE_FALSE(kernel_at_least(6, 2));
  MESSAGE("skipped: this kernel has no IORING_OP_SEND_ZC with usage reports (6.2+)");
  return true;
}

// Fills the socket's send buffer (and the peer's receive buffer) with copying sends that do
// not wait, so that the next send waits for room.
std::size_t fill_until_full(socket& s) {
  std::vector<char> chunk(64 * 1024, 'f');
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::send(s.native_handle(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) return total;
    total += static_cast<std::size_t>(n);
  }
}

}  // namespace

TEST_SUITE("zero-copy send") {
  TEST_CASE("off by default; asked for, this kernel takes it, and features() says so") {
    io_context plain;
    CHECK_FALSE(plain.features().send_zc);
    test::listening f;
    test::raw_pair p = test::make_pair(f.ctx, f.l);
    const std::string data = test::pattern(256 * 1024);
    CHECK(send_and_read(f.ctx, p, data) == data);
    CHECK(f.ctx.stats().zero_copy_sends == 0);

    zc_server z;
    if (skip_without_zc(z.ctx)) return;
    CHECK(z.ctx.features().send_zc);
    CHECK(z.ctx.stats().zero_copy_sends == 0);
  }

  TEST_CASE("a send at the threshold goes zero-copy and every byte arrives; the loopback copy makes that socket copy from then on") {
    zc_server z(64 * 1024);
    if (skip_without_zc(z.ctx)) return;
    test::raw_pair a = test::make_pair(z.ctx, z.l);
    const std::string small = test::pattern(64 * 1024 - 1);
    CHECK(send_and_read(z.ctx, a, small) == small);  // below the threshold: copied
    CHECK(z.ctx.stats().zero_copy_sends == 0);

    const std::string big = test::pattern(1 << 20);
    CHECK(send_and_read(z.ctx, a, big) == big);
    io_stats s = z.ctx.stats();
    CHECK(s.zero_copy_sends >= 1);
    // Loopback delivers into the receiver's queue by copying: every notification says so.
    CHECK(s.zero_copy_copied == s.zero_copy_sends);
    const std::uint64_t after_first = s.zero_copy_sends;

    CHECK(send_and_read(z.ctx, a, big) == big);  // this socket copies now
    CHECK(z.ctx.stats().zero_copy_sends == after_first);

    test::raw_pair b = test::make_pair(z.ctx, z.l);  // the choice is per socket
    CHECK(send_and_read(z.ctx, b, big) == big);
    CHECK(z.ctx.stats().zero_copy_sends > after_first);
    CHECK(z.ctx.pending_operations() == 0);
  }

  TEST_CASE("send_async (one send, possibly short) goes zero-copy too; the rest by copying completes the stream") {
    zc_server z;
    if (skip_without_zc(z.ctx)) return;
    test::raw_pair p = test::make_pair(z.ctx, z.l);
    const std::string data = test::pattern(512 * 1024);
    std::vector<std::byte> got;
    std::thread reader = test::read_on_thread(p.peer, got, data.size());
    const std::size_t first = z.ctx.block_on([](socket& s, const std::string& d) -> task<std::size_t> {
      co_return co_await s.send_async(as_span(d));
    }(p.server, data));
    REQUIRE(first > 0);
    CHECK(z.ctx.stats().zero_copy_sends == 1);
    const std::size_t rest = z.ctx.block_on(send_all(p.server, as_span(data).subspan(first)));
    reader.join();
    CHECK(first + rest == data.size());
    CHECK(test::str(got) == data);
  }

  TEST_CASE("a Unix-domain socket never tries zero-copy (the kernel refuses it there): its sends copy") {
    zc_server z;
    if (skip_without_zc(z.ctx)) return;
    const std::string path = test::temp_socket_path("zc");
    socket ul = socket::listen(z.ctx, endpoint::parse("unix:" + path));
    auto [server, client] = z.ctx.block_on(test::connected_pair(z.ctx, ul));
    const std::string data = test::pattern(512 * 1024);
    auto [sent, got] = z.ctx.block_on([](socket& a, socket& b, const std::string& d) -> task<std::tuple<std::size_t, std::string>> {
      auto [n, s] = co_await when_all(send_all(a, as_span(d)), [](socket& b, std::size_t want) -> task<std::string> {
        std::string out;
        std::vector<std::byte> buf(65536);
        while (out.size() < want) {
          const std::size_t k = co_await b.receive_async(buf);
          if (k == 0) break;
          out += test::str(std::span(buf).first(k));
        }
        co_return out;
      }(b, d.size()));
      co_return std::tuple{n, std::move(s)};
    }(server, client, data));
    CHECK(sent == data.size());
    CHECK(got == data);
    CHECK(z.ctx.stats().zero_copy_sends == 0);
    ::unlink(path.c_str());
  }

  TEST_CASE("the buffer is the caller's when the co_await returns: overwriting it at once changes nothing the peer gets") {
    zc_server z;
    if (skip_without_zc(z.ctx)) return;
    // A fresh socket per send, so that every send goes zero-copy (each socket copies after its
    // first, on loopback).
    for (int i = 0; i < 16; ++i) {
      test::raw_pair p = test::make_pair(z.ctx, z.l);
      const std::string want = test::pattern(256 * 1024 + static_cast<std::size_t>(i));
      std::string buf = want;
      std::vector<std::byte> got;
      std::thread reader = test::read_on_thread(p.peer, got, want.size());
      const std::uint64_t before = z.ctx.stats().zero_copy_sends;
      CHECK(z.ctx.block_on(send_all(p.server, as_span(buf))) == want.size());
      std::memset(buf.data(), 'X', buf.size());  // ours again
      reader.join();
      CHECK(z.ctx.stats().zero_copy_sends > before);
      CHECK(test::str(got) == want);
    }
    CHECK(z.ctx.pending_operations() == 0);
  }

  TEST_CASE("a zero-copy send waiting for room: a stop completes it once with operation_canceled, a timeout with timed_out; sent bytes are counted") {
    zc_server z;
    if (skip_without_zc(z.ctx)) return;
    for (bool by_timeout : {false, true}) {
      CAPTURE(by_timeout);
      test::raw_pair p = test::make_pair(z.ctx, z.l);
      make_room_scarce(p);
      // The buffers are full before it starts: its first round, zero-copy, is the one that waits.
      const std::size_t prefill = fill_until_full(p.server);
      REQUIRE(prefill > 0);
      const std::uint64_t zc_before = z.ctx.stats().zero_copy_sends;
      const std::string data = test::pattern(16 << 20);  // far more than the buffers hold
      std::stop_source stop;
      int completions = 0;
      io_result<std::size_t> r;
      z.ctx.spawn([](socket& s, const std::string& d, io_options o, int& n,
                     io_result<std::size_t>& out) -> task<void> {
        out = co_await as_result(s.send_all_async(as_span(d), o));
        ++n;
      }(p.server, data, by_timeout ? io_options(100ms) : io_options(stop.get_token()), completions, r));
      z.ctx.run_until([] { return false; }, 50ms);
      CHECK(completions == 0);
      if (!by_timeout) stop.request_stop();
      REQUIRE(z.ctx.run_until([&] { return completions == 1; }, 5s));
      CHECK(r.ec == (by_timeout ? std::errc::timed_out : std::errc::operation_canceled));
      CHECK(r.value < data.size());
      z.ctx.run_until([] { return false; }, 20ms);
      CHECK(completions == 1);
      CHECK(z.ctx.pending_operations() == 0);
      CHECK(z.ctx.stats().zero_copy_sends == zc_before + 1);  // its notification came
      // What went out after the prefill is the head of the data, in order.
      std::vector<std::byte> got;
      std::thread reader = test::read_on_thread(p.peer, got, prefill + r.value);
      reader.join();
      REQUIRE(got.size() == prefill + r.value);
      CHECK(test::str(std::span(got).subspan(prefill)) == data.substr(0, r.value));
    }
  }

  TEST_CASE("a reset storm during large zero-copy sends (bounded at 60 s): every send ends once, nothing leaks") {
    const std::size_t fds = test::open_fds();
    {
      zc_server z;
      if (skip_without_zc(z.ctx)) return;
      const std::string data = test::pattern(4 << 20);
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      int ended = 0, failed = 0, rounds = 0;
      for (; rounds < 60 && std::chrono::steady_clock::now() < deadline; ++rounds) {
        test::raw_pair p = test::make_pair(z.ctx, z.l);
        // The peer reads a little, then resets the connection with the send in flight.
        std::thread peer([fd = std::exchange(p.peer, -1), cut = 1000 + rounds * 4096] {
          std::vector<char> b(static_cast<std::size_t>(cut));
          std::size_t got = 0;
          while (got < b.size()) {
            const ssize_t n = ::recv(fd, b.data() + got, b.size() - got, 0);
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
          }
          const ::linger abort{1, 0};
          ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
          ::close(fd);  // with unread bytes and linger 0: RST
        });
        io_result<std::size_t> r = z.ctx.block_on([](socket& s, const std::string& d) -> task<io_result<std::size_t>> {
          co_return co_await as_result(s.send_all_async(as_span(d)));
        }(p.server, data));
        peer.join();
        ++ended;
        if (r.ec) {
          ++failed;
          CHECK((r.ec == std::errc::connection_reset || r.ec == std::errc::broken_pipe));
        }
        CHECK(z.ctx.pending_operations() == 0);
      }
      const io_stats s = z.ctx.stats();
      MESSAGE("rounds " << rounds << ", sends ended " << ended << ", with an error " << failed
                        << ", zero-copy sends " << s.zero_copy_sends);
      CHECK(ended == rounds);
      CHECK(s.zero_copy_sends >= static_cast<std::uint64_t>(rounds));  // one per fresh socket
      CHECK(s.buffers_lent == 0);
      CHECK(s.buffer_pieces_held == 0);
    }
    CHECK(test::open_fds() == fds);
  }

  TEST_CASE("destroying the context with a zero-copy send in flight leaks nothing") {
    const std::size_t fds = test::open_fds();
    {
      zc_server z;
      if (skip_without_zc(z.ctx)) return;
      test::raw_pair p = test::make_pair(z.ctx, z.l);
      make_room_scarce(p);
      const std::string data = test::pattern(8 << 20);
      z.ctx.spawn([](socket& s, const std::string& d) -> task<void> {
        (void)co_await as_result(s.send_all_async(as_span(d)));
      }(p.server, data));
      z.ctx.run_until([] { return false; }, 30ms);
      CHECK(z.ctx.pending_operations() == 1);
    }
    CHECK(test::open_fds() == fds);
  }
}

}  // namespace rstest
