// Lifetime and re-entrancy: an operation never reaches its socket, listener, args or waiter
// through a pointer that can dangle, and re-entering the loop from a callback runs every CQE and
// every posted item exactly once, in order. tests/RELIABILITY.md, "Lifetime and re-entrancy".
//
// These cases run plainly with MALLOC_PERTURB_ (freed memory is scribbled, so a read of it does
// not pass by luck), under ASan+UBSan (stack-use-after-return on) and under TSan.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "compat_support.hpp"

namespace lifetime_test {

using namespace std::chrono_literals;
using namespace ringsock;
using ringsock::socket;  // ::socket() from <sys/socket.h> would make the name ambiguous

namespace {

constexpr std::size_t big_size = 32u << 20;

std::byte pattern_at(std::size_t i) { return static_cast<std::byte>((i * 7 + i / 4096) & 0xff); }

std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = pattern_at(i);
  return v;
}

// A blocking peer on its own thread: reads until end of stream or an error, counting the bytes
// and checking each against the pattern, so bytes of another stream are noticed.
class reader {
 public:
  explicit reader(int fd) : fd_(fd), thread_([this] { loop(); }) {}
  ~reader() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  std::size_t bytes() const { return bytes_.load(); }
  bool mismatch() const { return mismatch_.load(); }

 private:
  void loop() {
    std::array<std::byte, 65536> buf;
    for (;;) {
      ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      std::size_t at = bytes_.load();
      for (ssize_t i = 0; i < n; ++i)
        if (buf[static_cast<std::size_t>(i)] != pattern_at(at + static_cast<std::size_t>(i)))
          mismatch_ = true;
      bytes_ += static_cast<std::size_t>(n);
    }
  }
  int fd_;
  std::atomic<std::size_t> bytes_{0};
  std::atomic<bool> mismatch_{false};
  std::thread thread_;
};

int connect_small(const endpoint& ep) {
  int fd = test::blocking_connect(ep);
  int small = 16 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  return fd;
}

socket accept_small(io_context& ctx, socket& l) {
  socket s = ctx.block_on(test::accept_one(l));
  s.set_send_buffer_size(16 * 1024);
  return s;
}

struct send_outcome {
  bool done = false;
  std::error_code ec;
  std::size_t sent = 0;
};

// send_all on `s` (a reference the test may invalidate: the operation must not depend on it).
task<void> send_all_plain(socket& s, std::span<const std::byte> data, send_outcome& out,
                          io_options o) {
  try {
    out.sent = co_await s.send_all_async(data, std::move(o));
  } catch (const socket_error& e) {
    out.ec = e.code();
  }
  out.done = true;
}

task<void> send_all_args(socket& s, socket_args& args, send_outcome& out, io_options o) {
  out.ec = co_await s.send_all_async(args, std::move(o));
  out.sent = args.bytes_transferred();
  out.done = true;
}

void start_send_all(io_context& ctx, socket& s, bool args_form, socket_args& args,
                    std::vector<std::byte>& data, send_outcome& out, io_options o = {}) {
  if (args_form) {
    args.set_buffer(data);
    ctx.spawn(send_all_args(s, args, out, std::move(o)));
  } else {
    ctx.spawn(send_all_plain(s, data, out, std::move(o)));
  }
}

// Lets the peer drain the socket without entering the ring, so that the send in flight has
// completed in the kernel (its completion waits for our next io_uring_enter) when the test acts.
void let_kernel_complete() { std::this_thread::sleep_for(5ms); }

// Whether `fd` reaches end of stream (or a reset) within `limit`.
bool sees_end(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

}  // namespace

TEST_SUITE("lifetime") {
  // ---- 1. a send_all outlives its socket object ----

  TEST_CASE("1: destroying a socket mid-send_all ends it once with operation_canceled; its "
            "stream never continues on the connection that reuses its memory") {
    auto data = pattern(big_size);
    for (int round = 0; round < 12; ++round) {
      const bool args_form = round % 2 == 1;
      CAPTURE(round);
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      int c1 = connect_small(l.local_endpoint());
      reader r1(c1);
      auto s1 = std::make_unique<socket>(accept_small(ctx, l));
      // The next connection is accepted now; its socket object is created after s1 is freed.
      int c2 = connect_small(l.local_endpoint());
      reader r2(c2);
      socket s2_stack = accept_small(ctx, l);
      std::unique_ptr<socket> s2;

      socket_args args;
      send_outcome out;
      start_send_all(ctx, *s1, args_form, args, data, out);
      bool destroyed = false;
      // Destroyed from inside the loop, between two rounds' completions: the next round's CQE
      // may be in the same batch, or its SQE already prepared.
      ctx.spawn([](io_context& ctx, reader& r, std::unique_ptr<socket>& s1,
                   std::unique_ptr<socket>& s2, socket& s2_stack, bool& destroyed) -> task<void> {
        while (r.bytes() < (1u << 20)) co_await sleep_for(ctx, 0ns);
        s1.reset();
        s2 = std::make_unique<socket>(std::move(s2_stack));  // may take s1's freed memory
        destroyed = true;
      }(ctx, r1, s1, s2, s2_stack, destroyed));

      REQUIRE(ctest::drive(ctx, [&] { return out.done && destroyed; }));
      CHECK(out.ec == std::errc::operation_canceled);
      ctest::settle(ctx, 30ms);
      CHECK(ctx.pending_operations() == 0);
      s2.reset();
      ctest::settle(ctx, 5ms);
      r1.join();
      r2.join();
      CHECK_FALSE(r1.mismatch());
      CHECK(r1.bytes() < big_size);
      CHECK(r2.bytes() == 0);  // nothing was ever sent on the second connection
      ::close(c1);
      ::close(c2);
    }
  }

  TEST_CASE("1: a socket moved mid-send_all keeps its operation: every byte arrives, once") {
    for (bool args_form : {false, true}) {
      CAPTURE(args_form);
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      auto data = pattern(big_size);
      int c = connect_small(l.local_endpoint());
      reader r(c);
      auto s = std::make_unique<socket>(accept_small(ctx, l));
      socket_args args;
      send_outcome out;
      start_send_all(ctx, *s, args_form, args, data, out);
      REQUIRE(ctest::drive(ctx, [&] { return r.bytes() >= (1u << 20); }));
      let_kernel_complete();
      auto moved = std::make_unique<socket>(std::move(*s));
      s.reset();  // the moved-from object dies; the operation belongs to `moved`
      REQUIRE(ctest::drive(ctx, [&] { return out.done; }, 20s));
      CHECK_FALSE(out.ec);
      CHECK(out.sent == big_size);
      CHECK(moved->is_open());
      moved.reset();
      r.join();
      CHECK(r.bytes() == big_size);
      CHECK_FALSE(r.mismatch());
      ::close(c);
    }
  }

  TEST_CASE("1: close() mid-send_all, then a new socket on the same descriptor number: the "
            "old stream never reaches it") {
    auto data = pattern(big_size);
    for (int round = 0; round < 6; ++round) {
      CAPTURE(round);
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      int c1 = connect_small(l.local_endpoint());
      reader r1(c1);
      socket s1 = accept_small(ctx, l);
      send_outcome out;
      socket_args args;
      start_send_all(ctx, s1, false, args, data, out);
      int c2 = -1;
      ctx.spawn([](io_context& ctx, reader& r, socket& s1, int& c2, socket& l) -> task<void> {
        while (r.bytes() < (1u << 20)) co_await sleep_for(ctx, 0ns);
        s1.close();
        c2 = connect_small(l.local_endpoint());
      }(ctx, r1, s1, c2, l));
      REQUIRE(ctest::drive(ctx, [&] { return out.done && c2 >= 0; }));
      reader r2(c2);
      socket s2 = accept_small(ctx, l);  // the kernel may hand out s1's old number
      CHECK(out.ec == std::errc::operation_canceled);
      ctest::settle(ctx, 30ms);
      s2.close();
      ctest::settle(ctx, 5ms);
      r1.join();
      r2.join();
      CHECK(r2.bytes() == 0);
      ::close(c1);
      ::close(c2);
    }
  }

  // ---- 2. a listener disposed inside its own accept handler ----

  TEST_CASE("2: a listener disposed in its Completed handler, which then drives the loop, while "
            "the same CQE batch holds more of its connections") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    const std::size_t fds_before = test::open_fds();
    ctest::SocketAsyncEventArgs e;
    std::shared_ptr<ctest::Socket> accepted;
    int received = -1;
    bool handled = false;
    e.Completed += [&](ctest::Socket& sender, ctest::SocketAsyncEventArgs& a) {
      accepted = a.AcceptSocket();
      sender.Dispose();  // the listener, inside its own accept's completion
      std::array<std::byte, 8> buf{};
      auto ar = accepted->BeginReceive(buf, 0, 8, ctest::SocketFlags::None, nullptr, {});
      received = accepted->EndReceive(ar);  // drives the loop from inside the handler
      handled = true;
    };
    REQUIRE(l->AcceptAsync(e));  // pending: the multishot accept goes out with the next turn
    // Eight connections wait in the backlog, so the multishot accept takes them in one batch.
    std::vector<int> clients;
    for (int i = 0; i < 8; ++i) {
      clients.push_back(test::blocking_connect(ctest::endpoint_of(l)));
      REQUIRE(::send(clients.back(), "x", 1, 0) == 1);
    }
    REQUIRE(ctest::drive(ctx, [&] { return handled; }));
    CHECK(received == 1);
    REQUIRE(accepted);
    CHECK(accepted->Connected());
    ctest::settle(ctx, 50ms);
    // The seven that nobody claimed were closed by the listener: their clients see the end.
    int ended = 0;
    for (std::size_t i = 1; i < clients.size(); ++i) ended += sees_end(clients[i], 1000ms);
    CHECK(ended == 7);
    accepted->Dispose();
    ctest::settle(ctx, 20ms);
    for (int fd : clients) ::close(fd);
    CHECK(ctx.pending_operations() == 0);
    CHECK(test::open_fds() == fds_before - 1);  // the listener's descriptor is gone too
  }

  TEST_CASE("2: a listener closed by the coroutine its accept resumed, with more connections "
            "in the same batch") {
    io_context ctx;
    auto l = std::make_unique<socket>(socket::listen(ctx, endpoint::loopback(address_family::ipv4)));
    const endpoint ep = l->local_endpoint();
    bool done = false;
    std::error_code ec;
    ctx.spawn([](std::unique_ptr<socket>& l, bool& done, std::error_code& ec) -> task<void> {
      socket_args a;
      ec = co_await l->accept_async(a);
      l.reset();  // the listener dies under the dispatch of its own batch
      done = true;
    }(l, done, ec));
    ctest::settle(ctx, 5ms);
    std::vector<int> clients;
    for (int i = 0; i < 8; ++i) clients.push_back(test::blocking_connect(ep));
    REQUIRE(ctest::drive(ctx, [&] { return done; }));
    CHECK_FALSE(ec);
    ctest::settle(ctx, 20ms);
    CHECK(ctx.pending_operations() == 0);
    for (int fd : clients) ::close(fd);
  }

  // ---- 3. posted work runs exactly once, in order ----

  TEST_CASE("3: a posted function that re-enters the loop: every posted item runs once, in order") {
    io_context ctx;
    std::string order;
    ctx.post([&] {
      order += 'A';
      ctx.post([&] { order += 'D'; });
      ctx.run_until([&] { return order.find('D') != std::string::npos; });  // nested loop
      order += 'a';
    });
    ctx.post([&] { order += 'B'; });
    ctx.post([&] { order += 'C'; });
    ctx.run();
    CHECK(order == "ABCDa");
    ctx.post([&] { order += 'E'; });
    ctx.run();
    CHECK(order == "ABCDaE");
  }

  TEST_CASE("3: posted functions that call EndReceive (driving the loop) while other threads "
            "post: each runs exactly once") {
    ringsock::io_context ctx;
    auto [l, c, s] = ctest::accept_pair(ctx);
    static constexpr int per_thread = 200;
    std::vector<int> runs(2 * per_thread + 1, 0);
    std::array<std::byte, 1> buf{};
    std::atomic<bool> go{false};
    ctx.post([&] {  // the first item: waits for a byte, driving the loop meanwhile
      if (++runs[2 * per_thread] > 1) return;  // run again: do not wait for a second byte
      go = true;
      auto ar = s->BeginReceive(buf, 0, 1, ctest::SocketFlags::None, nullptr, {});
      CHECK(s->EndReceive(ar) == 1);
    });
    std::vector<std::thread> posters;
    for (int t = 0; t < 2; ++t)
      posters.emplace_back([&, t] {
        while (!go) std::this_thread::yield();
        for (int i = 0; i < per_thread; ++i) ctx.post([&runs, t, i] { ++runs[static_cast<std::size_t>(t * per_thread + i)]; });
      });
    std::thread sender([&] {
      while (!go) std::this_thread::yield();
      std::this_thread::sleep_for(20ms);
      ::send(c, "x", 1, 0);
    });
    const bool all_ran = ctest::drive(ctx, [&] {
      return std::all_of(runs.begin(), runs.end(), [](int n) { return n >= 1; });
    });
    for (auto& p : posters) p.join();
    sender.join();
    REQUIRE(all_ran);
    ctest::settle(ctx, 20ms);
    CHECK(std::all_of(runs.begin(), runs.end(), [](int n) { return n == 1; }));
    ::close(c);
  }

  // ---- 4. WaitOne(timeout) on the loop thread ----

  TEST_CASE("4: WaitOne(timeout) inside the loop that the operation wins leaves nothing behind "
            "that could fire into its frame") {
    ringsock::io_context ctx;
    auto [l, c, s] = ctest::accept_pair(ctx);
    REQUIRE(::send(c, "x", 1, 0) == 1);
    std::array<std::byte, 1> buf{};
    bool waited = false, won = false;
    std::size_t pending_before = 0, pending_after = 99;
    ctx.post([&] {
      pending_before = ctx.pending_operations();  // the drive's own alarm
      auto ar = s->BeginReceive(buf, 0, 1, ctest::SocketFlags::None, nullptr, {});
      won = ar->AsyncWaitHandle().WaitOne(30ms);
      pending_after = ctx.pending_operations();
      // Past the timeout without entering the ring: a timer still armed would expire now.
      std::this_thread::sleep_for(60ms);
      CHECK(s->EndReceive(ar) == 1);
      waited = true;
    });
    REQUIRE(ctest::drive(ctx, [&] { return waited; }));
    ctest::settle(ctx, 50ms);  // an old timer's CQE would arrive (and write) here
    CHECK(won);
    CHECK(pending_after == pending_before);
    ::close(c);
  }

  TEST_CASE("4: WaitOne(timeout) that times out returns false after the timeout; the operation "
            "goes on and completes later") {
    ringsock::io_context ctx;
    auto [l, c, s] = ctest::accept_pair(ctx);
    std::array<std::byte, 1> buf{};
    auto ar = s->BeginReceive(buf, 0, 1, ctest::SocketFlags::None, nullptr, {});
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(ar->AsyncWaitHandle().WaitOne(40ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
    CHECK(ctx.pending_operations() == 1);  // the receive only
    REQUIRE(::send(c, "y", 1, 0) == 1);
    CHECK(ar->AsyncWaitHandle().WaitOne(2000));
    CHECK(s->EndReceive(ar) == 1);
    CHECK(buf[0] == std::byte{'y'});
    ::close(c);
  }

  // ---- 5. destroying the context wakes threads blocked on its operations ----

  TEST_CASE("5: destroying the context wakes a thread blocked in EndReceive (OperationAborted) "
            "and one blocked in AsyncWaitHandle().WaitOne()") {
    auto ctx = std::make_unique<ringsock::io_context>();
    auto [l, c, s] = ctest::accept_pair(*ctx);
    std::array<std::byte, 4> b1{}, b2{};
    auto ar1 = s->BeginReceive(b1, 0, 4, ctest::SocketFlags::None, nullptr, {});
    auto ar2 = s->BeginReceive(b2, 0, 4, ctest::SocketFlags::None, nullptr, {});
    std::promise<std::string> end_outcome, wait_outcome;
    auto end_f = end_outcome.get_future();
    auto wait_f = wait_outcome.get_future();
    // Each thread holds the socket, so it outlives the context and dies on that thread.
    std::thread ender([s, ar1, p = std::move(end_outcome)]() mutable {
      try {
        s->EndReceive(ar1);
        p.set_value("returned");
      } catch (const ctest::SocketException& ex) {
        p.set_value(ex.SocketErrorCode() == ctest::SocketError::OperationAborted ? "aborted"
                                                                                 : "other");
      } catch (const ctest::ObjectDisposedException&) {
        p.set_value("disposed");
      }
    });
    std::thread waiter([s, ar2, p = std::move(wait_outcome)]() mutable {
      bool ok = ar2->AsyncWaitHandle().WaitOne();
      bool threw = false;
      try {
        s->EndReceive(ar2);
      } catch (const std::exception&) {
        threw = true;
      }
      p.set_value(ok && threw && ar2->IsCompleted() ? "woken" : "wrong");
    });
    std::this_thread::sleep_for(50ms);  // both threads are blocked now
    s.reset();
    l.reset();
    ctx.reset();  // the context dies with both receives pending
    const bool ended = end_f.wait_for(3s) == std::future_status::ready;
    const bool woke = wait_f.wait_for(3s) == std::future_status::ready;
    CHECK(ended);
    CHECK(woke);
    if (!ended || !woke) {  // stranded: do not hang the suite on them
      ender.detach();
      waiter.detach();
      ::close(c);
      return;
    }
    ender.join();
    waiter.join();
    CHECK(end_f.get() == "aborted");
    CHECK(wait_f.get() == "woken");
    CHECK(sees_end(c, 1000ms));  // the socket was closed with its context
    ::close(c);
  }

  TEST_CASE("5: a core socket that outlives its context is closed with it; using it then "
            "throws socket_closed_error") {
    std::optional<socket> kept;
    int c = -1;
    {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      c = test::blocking_connect(l.local_endpoint());
      kept = ctx.block_on(test::accept_one(l));
      std::array<std::byte, 4> buf{};
      ctx.spawn([](socket& s, std::span<std::byte> b) -> task<void> {
        co_await s.receive_async(b);  // pending when the context dies
      }(*kept, buf));
      ctest::settle(ctx, 10ms);
    }
    CHECK_FALSE(kept->is_open());
    CHECK_THROWS_AS(kept->local_endpoint(), socket_closed_error);
    CHECK(sees_end(c, 1000ms));
    kept.reset();
    ::close(c);
  }

  // 5: a compat Socket no shared_ptr owns, destroyed with an operation pending, aborts with a
  // message instead of completing into freed memory: crash_main.cpp
  // (compat_socket_destroyed_with_pending_operation, a should_fail test).

  TEST_CASE("5: a shared compat Socket whose last owner lets go while an operation is pending "
            "lives until that operation completed") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    ctest::SocketAsyncEventArgs e;
    bool completed = false;
    ctest::SocketError seen = ctest::SocketError::Success;
    e.Completed += [&](ctest::Socket& sender, ctest::SocketAsyncEventArgs& a) {
      completed = true;
      seen = a.SocketError();
      CHECK(sender.disposed());  // alive, and disposed
    };
    REQUIRE(l->AcceptAsync(e));
    l->Dispose();
    l.reset();  // only the pending operation holds it now
    REQUIRE(ctest::drive(ctx, [&] { return completed; }));
    CHECK(seen == ctest::SocketError::OperationAborted);
  }

  // ---- the same pattern elsewhere: sockets destroyed or replaced by their own completions ----

  TEST_CASE_FIXTURE(test::listening, "a socket destroyed inside its own completion, with a second operation pending") {
    int c = test::blocking_connect(l.local_endpoint());
    auto s = std::make_unique<socket>(ctx.block_on(test::accept_one(l)));
    std::array<std::byte, 4> rb{};
    std::error_code rec;
    std::size_t sent = 0;
    bool rdone = false, sdone = false;
    // The sender's completion destroys the socket the receive is still pending on.
    ctx.spawn([](std::unique_ptr<socket>& s, std::size_t& sent, bool& sdone) -> task<void> {
      sent = co_await s->send_async(test::bytes("ping"));
      s.reset();
      sdone = true;
    }(s, sent, sdone));
    ctx.spawn([](socket& s, std::span<std::byte> b, std::error_code& ec, bool& done) -> task<void> {
      try {
        co_await s.receive_async(b);
      } catch (const socket_error& e) {
        ec = e.code();
      }
      done = true;
    }(*s, rb, rec, rdone));
    REQUIRE(ctest::drive(ctx, [&] { return sdone && rdone; }));
    ctest::settle(ctx, 10ms);
    CHECK(sent == 4);
    CHECK(rec == std::errc::operation_canceled);
    CHECK(ctx.pending_operations() == 0);
    std::array<char, 8> got{};  // the peer got the 4 bytes, then the end
    CHECK(::recv(c, got.data(), got.size(), 0) == 4);
    CHECK(sees_end(c, 1000ms));
    ::close(c);
  }

  TEST_CASE_FIXTURE(test::listening, "move-assigning onto a socket with a pending receive cancels that receive only") {
    int c1 = test::blocking_connect(l.local_endpoint());
    socket a = ctx.block_on(test::accept_one(l));
    int c2 = test::blocking_connect(l.local_endpoint());
    socket b = ctx.block_on(test::accept_one(l));
    std::array<std::byte, 4> ba{}, bb{};
    std::error_code ea, eb;
    std::size_t nb = 0;
    bool da = false, db = false;
    auto recv_task = [](socket& s, std::span<std::byte> buf, std::error_code& ec, std::size_t& n,
                        bool& done) -> task<void> {
      try {
        n = co_await s.receive_async(buf);
      } catch (const socket_error& e) {
        ec = e.code();
      }
      done = true;
    };
    std::size_t na = 0;
    ctx.spawn(recv_task(a, ba, ea, na, da));
    ctx.spawn(recv_task(b, bb, eb, nb, db));
    ctest::settle(ctx, 10ms);
    a = std::move(b);  // a's receive is cancelled; b's goes on, now on `a`
    REQUIRE(ctest::drive(ctx, [&] { return da; }));
    CHECK(ea == std::errc::operation_canceled);
    CHECK_FALSE(db);
    REQUIRE(::send(c2, "pong", 4, 0) == 4);
    REQUIRE(ctest::drive(ctx, [&] { return db; }));
    CHECK_FALSE(eb);
    CHECK(nb == 4);
    CHECK(test::str(std::span<const std::byte>(bb.data(), 4)) == "pong");
    CHECK(sees_end(c1, 1000ms));
    ::close(c1);
    ::close(c2);
  }

  // ---- found by a hostile review of the fix ----

  TEST_CASE("a callback that re-enters the loop for a completion of its own batch gets it at "
            "once") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    int c1 = test::blocking_connect(ctest::endpoint_of(l));
    int c2 = test::blocking_connect(ctest::endpoint_of(l));
    auto s1 = l->EndAccept(l->BeginAccept(nullptr, {}));
    auto s2 = l->EndAccept(l->BeginAccept(nullptr, {}));
    REQUIRE(::send(c1, "1", 1, 0) == 1);
    REQUIRE(::send(c2, "2", 1, 0) == 1);
    std::array<std::byte, 1> b1{}, b2{};
    std::shared_ptr<ctest::IAsyncResult> ar2;
    int n2 = -1;
    std::chrono::steady_clock::duration took{};
    bool done = false;
    // Both receives complete at submission, so both CQEs are posted before one reap: the first
    // one's callback waits for the second, which is already in the completion queue, not to come.
    auto ar1 = s1->BeginReceive(b1, 0, 1, ctest::SocketFlags::None,
                                [&](std::shared_ptr<ctest::IAsyncResult>) {
                                  const auto t0 = std::chrono::steady_clock::now();
                                  n2 = s2->EndReceive(ar2);
                                  took = std::chrono::steady_clock::now() - t0;
                                  done = true;
                                },
                                {});
    ar2 = s2->BeginReceive(b2, 0, 1, ctest::SocketFlags::None, nullptr, {});
    REQUIRE(ctest::drive(ctx, [&] { return done; }));
    CHECK(n2 == 1);
    CHECK(took < 500ms);
    CHECK(s1->EndReceive(ar1) == 1);
    ::close(c1);
    ::close(c2);
  }

  TEST_CASE("WaitOne(0) on the loop thread polls: a result the kernel already has counts") {
    ringsock::io_context ctx;
    auto [l, c, s] = ctest::accept_pair(ctx);
    REQUIRE(::send(c, "z", 1, 0) == 1);
    std::array<std::byte, 1> buf{};
    auto ar = s->BeginReceive(buf, 0, 1, ctest::SocketFlags::None, nullptr, {});
    CHECK(ar->AsyncWaitHandle().WaitOne(0));
    CHECK(s->EndReceive(ar) == 1);
    ::close(c);
  }

  TEST_CASE("a compat Socket no shared_ptr owns may be destroyed once EndX returned, also "
            "for operations that completed synchronously") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    int c0 = test::blocking_connect(ctest::endpoint_of(l));
    auto first = l->EndAccept(l->BeginAccept(nullptr, {}));  // arms the multishot accept
    int c = test::blocking_connect(ctest::endpoint_of(l));
    ctest::settle(ctx, 10ms);  // the connection waits in the listener's queue
    auto ar = l->BeginAccept(nullptr, {});
    CHECK(ar->CompletedSynchronously());
    std::shared_ptr<ctest::Socket> accepted = l->EndAccept(ar);
    auto* raw = new ctest::Socket(ctx, ctest::AddressFamily::InterNetwork, ctest::SocketType::Stream,
                                  ctest::ProtocolType::Tcp);
    raw->Connect(ctest::IPEndPoint(ctest::IPAddress::Loopback, ctest::port_of(l)));
    bool called = false;
    auto dar = raw->BeginDisconnect(false, [&](std::shared_ptr<ctest::IAsyncResult>) { called = true; }, {});
    raw->EndDisconnect(dar);
    delete raw;  // the callback is still to come: it must not need the socket
    REQUIRE(ctest::drive(ctx, [&] { return called; }));
    ::close(c);
    ::close(c0);
  }

  TEST_CASE("EndReceive and EndAccept on a worker thread, which then destroys the sockets, while "
            "the loop keeps accepting") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    const ringsock::endpoint ep = ctest::endpoint_of(l);
    auto* raw = new ctest::Socket(ctx, ctest::AddressFamily::InterNetwork, ctest::SocketType::Stream,
                                  ctest::ProtocolType::Tcp);
    raw->Connect(ctest::IPEndPoint(ctest::IPAddress::Loopback, ctest::port_of(l)));
    auto peer = l->EndAccept(l->BeginAccept(nullptr, {}));
    std::array<std::byte, 1> buf{};
    auto rar = raw->BeginReceive(buf, 0, 1, ctest::SocketFlags::None, nullptr, {});
    std::vector<std::shared_ptr<ctest::IAsyncResult>> accepts;
    for (int i = 0; i < 8; ++i) accepts.push_back(l->BeginAccept(nullptr, {}));
    std::atomic<int> worker_done{0};
    std::thread worker([&] {
      CHECK(raw->EndReceive(rar) == 1);
      delete raw;  // on the worker: its core goes back to the loop through the mailbox
      for (auto& a : accepts) {
        std::shared_ptr<ctest::Socket> s = l->EndAccept(a);
        s.reset();  // the last owner, on the worker
      }
      worker_done = 1;
    });
    std::vector<int> clients;
    std::thread connector([&] {
      for (int i = 0; i < 8; ++i) clients.push_back(test::blocking_connect(ep));
    });
    REQUIRE(::send(peer->Handle(), "w", 1, 0) == 1);
    const bool ok = ctest::drive(ctx, [&] { return worker_done.load() == 1; });
    connector.join();
    worker.join();
    CHECK(ok);
    ctest::settle(ctx, 20ms);
    CHECK(ctx.pending_operations() == 0);
    for (int fd : clients) ::close(fd);
  }

  TEST_CASE_FIXTURE(test::listening, "an accept awaiter made before its listener was closed throws socket_closed_error "
            "when awaited") {
    bool threw = false;
    ctx.block_on([](socket& l, bool& threw) -> task<void> {
      auto aw = l.accept_async();
      l.close();
      try {
        (void)co_await aw;
      } catch (const socket_closed_error&) {
        threw = true;
      }
    }(l, threw));
    CHECK(threw);
  }

  TEST_CASE("a Completed handler that disposes its own socket with a send pending on it, then "
            "re-enters the loop") {
    ringsock::io_context ctx;
    auto [l, c, s] = ctest::accept_pair(ctx);
    std::vector<std::byte> big(8u << 20);  // the client reads nothing: this send stays pending
    std::array<std::byte, 1> one{};
    ctest::SocketAsyncEventArgs rx, tx;
    rx.SetBuffer(one, 0, 1);
    tx.SetBuffer(big, 0, static_cast<int>(big.size()));
    bool tx_done = false, rx_done = false;
    ctest::SocketError tx_error = ctest::SocketError::Success;
    tx.Completed += [&](ctest::Socket&, ctest::SocketAsyncEventArgs& e) {
      tx_error = e.SocketError();
      tx_done = true;
    };
    rx.Completed += [&](ctest::Socket& sender, ctest::SocketAsyncEventArgs&) {
      sender.Dispose();  // its own socket, inside its own completion
      ctest::settle(ctx, 10ms);  // re-enters the loop: the send's cancellation arrives here
      rx_done = true;
    };
    REQUIRE(s->SendAsync(tx));
    REQUIRE(s->ReceiveAsync(rx));
    REQUIRE(::send(c, "x", 1, 0) == 1);
    REQUIRE(ctest::drive(ctx, [&] { return rx_done && tx_done; }));
    CHECK(tx_error == ctest::SocketError::OperationAborted);
    ctest::settle(ctx, 10ms);
    CHECK(ctx.pending_operations() == 0);
    ::close(c);
  }

  // ---- 6. the Completed event against its own handlers ----

  TEST_CASE("6: a handler that removes itself does not make the next one be skipped") {
    ctest::Event<int> ev;
    std::string ran;
    ctest::Event<int>::token t1 = 0;
    t1 = ev += [&](int) {
      ran += '1';
      ev -= t1;
    };
    ev += [&](int) { ran += '2'; };
    ev += [&](int) { ran += '3'; };
    ev(0);
    CHECK(ran == "123");
    ev(0);
    CHECK(ran == "12323");
    CHECK(ev.size() == 2);
  }

  TEST_CASE("6: the handlers present when raising started run, each once (removed or added "
            "meanwhile)") {
    ctest::Event<int> ev;
    std::string ran;
    ctest::Event<int>::token t2 = 0;
    ev += [&](int) {
      ran += '1';
      ev -= t2;  // .NET: the invocation list was taken when raising started
      ev += [&](int) { ran += 'n'; };
    };
    t2 = ev += [&](int) { ran += '2'; };
    ev(0);
    CHECK(ran == "12");
    ran.clear();
    ev(0);
    CHECK(ran == "1n");
  }

  TEST_CASE("6: a handler that adds many handlers while running does not run in freed memory") {
    // Small closures (one reference): std::function keeps them inside itself, so a handler
    // list that reallocates under a running handler frees that handler's captures.
    static int added_ran = 0, first_ran = 0;
    added_ran = first_ran = 0;
    ctest::Event<int> ev;
    ev += [&ev](int) {
      ++first_ran;
      for (int i = 0; i < 64; ++i) ev += [](int) { ++added_ran; };
      ev += [&ev](int) { (void)ev.size(); };
      ++first_ran;
    };
    ev(0);
    CHECK(first_ran == 2);
    CHECK(added_ran == 0);
    CHECK(ev.size() == 66);
    ev(0);
    CHECK(added_ran == 64);
  }

  TEST_CASE("6: Completed handlers that remove themselves and add others, on a real accept") {
    ringsock::io_context ctx;
    auto l = ctest::listener(ctx);
    ctest::SocketAsyncEventArgs e;
    std::string ran;
    decltype(e.Completed)::token self = 0;
    self = e.Completed += [&](ctest::Socket&, ctest::SocketAsyncEventArgs& a) {
      ran += 'a';
      a.Completed -= self;
      for (int i = 0; i < 16; ++i) a.Completed += [&](ctest::Socket&, ctest::SocketAsyncEventArgs&) { ran += 'x'; };
    };
    e.Completed += [&](ctest::Socket&, ctest::SocketAsyncEventArgs&) { ran += 'b'; };
    REQUIRE(l->AcceptAsync(e));
    int c = test::blocking_connect(ctest::endpoint_of(l));
    REQUIRE(ctest::drive(ctx, [&] { return !ran.empty(); }));
    CHECK(ran == "ab");
    CHECK(e.Completed.size() == 17);
    ::close(c);
  }

  // ---- 7. cross-thread cancellation is race-free ----

  TEST_CASE("7: request_stop() from another thread while send_all rounds run on the loop") {
    for (int round = 0; round < 3; ++round) {
      io_context ctx;
      socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
      auto data = pattern(big_size);
      int c = connect_small(l.local_endpoint());
      reader r(c);
      socket s = accept_small(ctx, l);
      std::stop_source stop;
      send_outcome out;
      socket_args args;
      start_send_all(ctx, s, round == 1, args, data, out, stop.get_token());
      std::thread stopper([&] {
        while (r.bytes() < (1u << 20)) std::this_thread::yield();
        stop.request_stop();
      });
      REQUIRE(ctest::drive(ctx, [&] { return out.done; }, 20s));
      stopper.join();
      CHECK(out.ec == std::errc::operation_canceled);
      s.close();
      ctest::settle(ctx, 10ms);
      r.join();
      CHECK_FALSE(r.mismatch());
      ::close(c);
    }
  }

  TEST_CASE_FIXTURE(test::listening, "7: request_stop() from another thread on an accept with a first receive") {
    int c = test::blocking_connect(l.local_endpoint());  // connects, sends nothing
    std::stop_source stop;
    std::array<std::byte, 16> buf{};
    socket_args a;
    a.set_buffer(buf);
    std::error_code ec;
    bool done = false;
    ctx.spawn([](socket& l, socket_args& a, std::stop_token t, std::error_code& ec,
                 bool& done) -> task<void> {
      ec = co_await l.accept_async(a, t);
      done = true;
    }(l, a, stop.get_token(), ec, done));
    ctest::settle(ctx, 20ms);  // accepted; the first receive waits
    std::thread stopper([&] { stop.request_stop(); });
    REQUIRE(ctest::drive(ctx, [&] { return done; }));
    stopper.join();
    CHECK(ec == std::errc::operation_canceled);
    ::close(c);
  }
}

}  // namespace lifetime_test
