// Fault injection (built with -Dfault_injection=true; tests/run's sanitizer pass): an echo server
// written with the public API serves several client threads while a fault plan rewrites chosen
// operations. Each case checks that the loop kept serving, that unaffected connections got every
// byte back, that the affected ones saw the documented error, and that no descriptor or
// operation is left (LeakSanitizer checks the memory).
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <thread>
#include <map>
#include <string>
#include <utility>
#include <memory>
#include <vector>

#include "compat_support.hpp"
#include "load_support.hpp"
#include "ringsock/compat.hpp"
#include "ringsock/testing/fault_plan.hpp"
#include "runtime_support.hpp"
#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;
using testing::fault_plan;
using testing::fault_schedule;
using testing::fault_target;

namespace {

struct fault_run {
  test::server_log log;
  test::load_result load;
  std::size_t pending_after = 0;
  std::size_t fds_before = 0, fds_after = 0;
};

fault_run serve_under(fault_plan& plan, test::load_shape shape = {}) {
  fault_run out;
  out.fds_before = test::open_fds();
  {
    io_context ctx;
    socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    testing::fault_scope scope(ctx, plan);
    out.load = test::serve_while(ctx, listener, out.log, shape);
    out.pending_after = ctx.pending_operations();
  }
  out.fds_after = test::open_fds();
  return out;
}

// What every run must show, whatever was injected.
void check_invariants(const fault_run& r) {
  CHECK(r.load.corrupt == 0);
  CHECK(r.load.refused == 0);
  CHECK(r.load.completed + r.load.affected == r.load.connections);
  CHECK(r.log.accepted == r.load.connections);      // the listener kept serving
  CHECK(r.log.live_sessions() == 0);                // every session ended
  CHECK(r.log.accept_end == std::errc::operation_canceled);  // by closing the listener, at the end
  CHECK(r.pending_after == 0);
  CHECK(r.fds_after == r.fds_before);
  MESSAGE("connections " << r.load.connections << ", completed " << r.load.completed
                         << ", affected " << r.load.affected << ", bytes echoed " << r.load.bytes);
}


// The same echo server in the .NET shape (ringsock::compat): SocketAsyncEventArgs, Completed,
// and the classic "while (!XAsync(e)) Process(e)" loops. Errors are recorded as SocketError.
class compat_echo {
 public:
  using SocketError = compat::SocketError;
  std::map<SocketError, std::size_t> accept_errors, session_errors;
  std::size_t accepted = 0, ended = 0, receive_retries = 0;
  bool accept_ended = false;

  explicit compat_echo(io_context& ctx) : listener_(ctest::listener(ctx)) {
    accept_.Completed += [this](compat::Socket&, compat::SocketAsyncEventArgs&) {
      if (accepted_one()) accept_loop();
    };
  }
  endpoint local() const { return ctest::endpoint_of(listener_); }
  void start() { accept_loop(); }
  void close() { listener_->Close(); }

 private:
  struct session {
    std::shared_ptr<compat::Socket> s;
    compat::SocketAsyncEventArgs rx, tx;
    std::array<std::byte, 4096> buf{};
  };

  void accept_loop() {
    for (;;) {
      accept_.AcceptSocket(nullptr);
      if (listener_->AcceptAsync(accept_)) return;  // Completed comes later
      if (!accepted_one()) return;
    }
  }
  bool accepted_one() {  // false: stop accepting
    if (accept_.SocketError() != SocketError::Success) {
      if (accept_.SocketError() == SocketError::OperationAborted) {
        accept_ended = true;  // the listener was closed
        return false;
      }
      ++accept_errors[accept_.SocketError()];
      return true;
    }
    ++accepted;
    auto& x = *sessions_.emplace_back(std::make_unique<session>());
    x.s = accept_.AcceptSocket();
    x.s->NoDelay(true);  // an echo split in two must not wait for the client's delayed ACK
    x.rx.SetBuffer(x.buf, 0, static_cast<int>(x.buf.size()));
    x.tx.SetBuffer(x.buf, 0, 0);
    x.rx.Completed += [this, &x](compat::Socket&, compat::SocketAsyncEventArgs&) {
      if (received(x)) serve(x);
    };
    x.tx.Completed += [this, &x](compat::Socket&, compat::SocketAsyncEventArgs&) {
      if (sent(x)) serve(x);
    };
    serve(x);
    return true;
  }
  void serve(session& x) {
    for (;;) {
      x.rx.SetBuffer(0, static_cast<int>(x.buf.size()));
      if (x.s->ReceiveAsync(x.rx)) return;
      if (!received(x)) return;
    }
  }
  bool received(session& x) {  // true: receive again now
    if (x.rx.SocketError() == SocketError::NoBufferSpaceAvailable) {
      ++session_errors[SocketError::NoBufferSpaceAvailable];
      ++receive_retries;
      return true;  // nothing was read: the connection is intact
    }
    if (x.rx.SocketError() != SocketError::Success) return end(x, x.rx.SocketError());
    if (x.rx.BytesTransferred() == 0) return end(x, SocketError::Success);
    x.tx.SetBuffer(0, x.rx.BytesTransferred());
    if (x.s->SendAsync(x.tx)) return false;
    return sent(x);
  }
  bool sent(session& x) {
    if (x.tx.SocketError() != SocketError::Success) return end(x, x.tx.SocketError());
    return true;
  }
  bool end(session& x, SocketError e) {
    if (e != SocketError::Success) ++session_errors[e];
    x.s->Close();
    ++ended;
    return false;
  }

  std::shared_ptr<compat::Socket> listener_;
  compat::SocketAsyncEventArgs accept_;
  std::vector<std::unique_ptr<session>> sessions_;
};

// A compat run: the shared counts in `base` (its server_log filled from the compat server), the
// SocketError values apart.
struct compat_run {
  fault_run base;
  std::map<compat::SocketError, std::size_t> accept_errors, session_errors;
  std::size_t receive_retries = 0;
  std::size_t session_errors_of(compat::SocketError e) const {
    auto it = session_errors.find(e);
    return it == session_errors.end() ? 0 : it->second;
  }
};

compat_run serve_compat_under(fault_plan& plan) {
  compat_run out;
  out.base.fds_before = test::open_fds();
  {
    io_context ctx;
    {
      compat_echo server(ctx);
      const endpoint ep = server.local();
      testing::fault_scope scope(ctx, plan);
      server.start();
      out.base.load = test::load_while_serving(ctx, ep, test::load_shape{});
      server.close();
      ctest::drive(ctx, [&] { return server.accept_ended && server.ended == server.accepted; });
      out.base.log.accepted = server.accepted;
      out.base.log.sessions_ended = server.ended;
      if (server.accept_ended) out.base.log.accept_end = std::make_error_code(std::errc::operation_canceled);
      out.accept_errors = server.accept_errors;
      out.session_errors = server.session_errors;
      out.receive_retries = server.receive_retries;
    }
    ctest::settle(ctx);  // the closes go out
    out.base.pending_after = ctx.pending_operations();
  }
  out.base.fds_after = test::open_fds();
  return out;
}

// Runs the load under `plan` (core view), checks the invariants and that `hits` faults in all
// were injected.
fault_run expect_faults(fault_plan& plan, unsigned hits, test::load_shape shape = {}) {
  fault_run r = serve_under(plan, shape);
  check_invariants(r);
  CHECK(plan.injected() == hits);
  return r;
}

// The same through the .NET view.
compat_run expect_compat_faults(fault_plan& plan, unsigned hits) {
  compat_run r = serve_compat_under(plan);
  check_invariants(r.base);
  CHECK(plan.injected() == hits);
  return r;
}

}  // namespace

TEST_SUITE("faults") {
  TEST_CASE("accept EMFILE: reported to the waiting accept, the listener backs off and recovers") {
    fault_plan plan;
    plan.fail(fault_target::accept, EMFILE, {0, 1, 3});
    fault_run r = expect_faults(plan, 3);
    CHECK(r.log.accept_errors_of(std::errc::too_many_files_open) == 3);
    CHECK(r.load.completed == r.load.connections);  // nothing was taken, nothing lost
  }

  TEST_CASE("accept ENFILE: the same as EMFILE") {
    fault_plan plan;
    plan.fail(fault_target::accept, ENFILE, {0, 1, 3});
    fault_run r = expect_faults(plan, 3);
    CHECK(r.log.accept_errors_of(std::errc::too_many_files_open_in_system) == 3);
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("accept ECONNABORTED: skipped without a word, the accept keeps waiting") {
    fault_plan plan;
    plan.fail(fault_target::accept, ECONNABORTED, {0, 1, 5});
    fault_run r = expect_faults(plan, 5);
    CHECK(r.log.accept_errors.empty());
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("a multishot accept that ends without F_MORE is re-armed") {
    fault_plan plan;
    plan.end_multishot({0, 1, 20});
    fault_run r = expect_faults(plan, 20);
    CHECK(r.log.accept_errors.empty());
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("receive ECONNRESET ends only the session it hits") {
    fault_plan plan;
    plan.fail(fault_target::receive, ECONNRESET, {4, 9, 6});  // one multishot receive per session
    fault_run r = expect_faults(plan, 6);
    CHECK(r.log.session_errors_of(std::errc::connection_reset) == 6);
    // A reset that hit the receive after a client's last message costs that client nothing.
    CHECK(r.load.affected <= 6);
    CHECK(r.load.completed >= r.load.connections - 6);
  }

  TEST_CASE("receive ENOBUFS is transient: the multishot re-arms, no receive hears of it, nothing is lost") {
    fault_plan plan;
    plan.fail(fault_target::receive, ENOBUFS, {2, 9, 6});
    fault_run r = expect_faults(plan, 6);
    CHECK(r.log.session_errors.empty());
    CHECK(r.log.receive_retries == 0);
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("a multishot receive that ends without F_MORE is re-armed: nothing is lost") {
    fault_plan plan;
    plan.end_multishot(fault_target::receive, {0, 1, 40});
    fault_run r = expect_faults(plan, 40);
    CHECK(r.log.session_errors.empty());
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("a refused buffer-ring registration falls back to one SQE per receive") {
    testing::refuse_next_buffer_ring(ENOMEM);
    io_context ctx;
    CHECK_FALSE(ctx.features().buffer_ring);
    CHECK_FALSE(ctx.features().multishot_receive);
    CHECK(ctx.stats().buffers_total == 0);
    socket listener = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    ctx.spawn(test::echo_server(ctx, listener, 1));
    const std::string msg(100000, 'r');
    CHECK(ctx.block_on(test::echo_client(ctx, listener.local_endpoint(), msg)) == msg);
    io_context next;  // the refusal was for one context only
    CHECK(next.features().buffer_ring);
  }

  TEST_CASE("short writes: send_all sends the rest, every byte arrives once") {
    fault_plan plan;
    plan.short_write({5, 3, 50});
    fault_run r = expect_faults(plan, 50);
    CHECK(r.log.session_errors.empty());
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("send EPIPE ends only the session it hits; its client sees the end of stream") {
    fault_plan plan;
    plan.fail(fault_target::send, EPIPE, {15, 41, 6});
    fault_run r = expect_faults(plan, 6);
    CHECK(r.log.session_errors_of(std::errc::broken_pipe) == 6);
    CHECK(r.load.affected == 6);  // each was waiting for the echo that failed
  }

  TEST_CASE("a full SQ when an operation starts: the loop flushes and goes on") {
    fault_plan plan;
    plan.full_sq({10, 7, 30});
    fault_run r = expect_faults(plan, 30);
    CHECK(r.log.session_errors.empty());
    CHECK(r.load.completed == r.load.connections);
  }

  TEST_CASE("all of them in one run") {
    fault_plan plan;
    plan.fail(fault_target::accept, EMFILE, {0, 1, 2})
        .fail(fault_target::accept, ECONNABORTED, {0, 1, 2})
        .end_multishot({0, 1, 10})
        .fail(fault_target::receive, ENOBUFS, {5, 11, 5})
        .fail(fault_target::receive, ECONNRESET, {40, 13, 4})
        .short_write({3, 5, 40})
        .fail(fault_target::send, EPIPE, {30, 67, 3})
        .full_sq({1, 11, 20});
    test::load_shape shape;
    shape.threads = 6;
    fault_run r = expect_faults(plan, 86, shape);
    const unsigned expect[] = {2, 2, 10, 5, 4, 40, 3, 20};
    for (std::size_t i = 0; i < 8; ++i) CHECK(plan.injected(i) == expect[i]);
    CHECK(r.log.accept_errors_of(std::errc::too_many_files_open) == 2);
    CHECK(r.log.receive_retries == 0);  // ENOBUFS re-arms the multishot: no receive hears of it
    CHECK(r.log.session_errors_of(std::errc::connection_reset) == 4);
    CHECK(r.log.session_errors_of(std::errc::broken_pipe) == 3);
    CHECK(r.load.affected <= 7);
  }

  TEST_CASE("spawn_on: a message the kernel refuses goes through the target's mailbox; every task runs there") {
    using namespace std::chrono_literals;
    fault_plan plan;
    plan.fail(fault_target::message, EOVERFLOW, {0, 2, 50});
    constexpr int tasks = 200;
    runtime rt({.threads = 2});
    std::atomic<int> ran{0}, wrong{0};
    auto job = [&]() -> task<void> {
      (runtime::this_index() == 1 ? ran : wrong).fetch_add(1);
      co_return;
    };
    runtime_report rep = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
      io_context::work_guard keep(ctx);
      if (index == 0) {
        ctx.set_fault_plan(&plan);
        // One at a time, each after the last has run: every task finds the inbox empty, so each
        // sends a wake of its own (a task behind another rides on that one's wake).
        for (int i = 0; i < tasks; ++i) {
          rt.spawn_on(1, job());
          for (int k = 0; k < 2000 && ran.load() + wrong.load() <= i; ++k) co_await sleep_for(ctx, 100us);
        }
      }
      for (int i = 0; i < 2000 && ran.load() + wrong.load() < tasks; ++i) co_await sleep_for(ctx, 1ms);
      if (index == 0) {
        ctx.set_fault_plan(nullptr);
        rt.stop();
      }
    });
    CHECK(plan.injected() == 50);
    CHECK(ran.load() == tasks);
    CHECK(wrong.load() == 0);
    CHECK(rep.threads[1].spawned_in == static_cast<std::uint64_t>(tasks));
  }

  TEST_CASE("hand-off: a connection whose message the kernel refuses is served by the accepting thread") {
    using namespace std::chrono_literals;
    const std::size_t fds_before = test::open_fds();
    fault_plan plan;
    plan.fail(fault_target::message, EOVERFLOW, {0, 2, 10});
    rstest::tally t;
    constexpr int conns = 40;
    constexpr std::size_t size = 16 * 1024;
    std::atomic<long> echoed{0};
    runtime_report rep;
    {
      runtime rt({.threads = 2, .spread = spread_mode::hand_off});
      std::thread clients([&] {
        if (rstest::wait_for(t.listening, 2)) {
          const endpoint ep = endpoint::loopback(address_family::ipv4,
                                                 rt.bound_port(endpoint::loopback(address_family::ipv4)));
          echoed.store(rstest::echo_clients(ep, conns, size));
        }
        rt.stop();
      });
      rep = rt.run([&](io_context& ctx, unsigned index) -> task<void> {
        if (index == 0) {
          ctx.set_fault_plan(&plan);  // thread 0 listens first: it accepts for both
        } else {
          while (t.listening.load() < 1) co_await sleep_for(ctx, 1ms);
        }
        co_await rstest::serve_all(rt, ctx, t);
        if (index == 0) ctx.set_fault_plan(nullptr);
      });
      clients.join();
    }
    CHECK(echoed.load() == static_cast<long>(conns * size));
    CHECK(plan.injected() == 10);
    CHECK(rep.threads[0].kept >= 10);  // the refused ones came back and were served here
    CHECK(rep.threads[0].handed_out == rep.threads[1].handed_in);
    CHECK(t.connections[0].load() + t.connections[1].load() == conns);
    CHECK(test::open_fds() == fds_before);
  }

  TEST_CASE("compat: accept EMFILE completes AcceptAsync with TooManyOpenSockets; nothing lost") {
    fault_plan plan;
    plan.fail(fault_target::accept, EMFILE, {0, 1, 3});
    compat_run r = expect_compat_faults(plan, 3);
    CHECK(r.accept_errors[compat::SocketError::TooManyOpenSockets] == 3);
    CHECK(r.base.load.completed == r.base.load.connections);
  }

  TEST_CASE("compat: receive ECONNRESET is SocketError.ConnectionReset on that session only") {
    fault_plan plan;
    plan.fail(fault_target::receive, ECONNRESET, {4, 9, 6});
    compat_run r = expect_compat_faults(plan, 6);
    CHECK(r.session_errors_of(compat::SocketError::ConnectionReset) == 6);
    CHECK(r.base.load.affected <= 6);
  }

  TEST_CASE("compat: a receive ENOBUFS never reaches ReceiveAsync (the multishot re-arms); nothing lost") {
    fault_plan plan;
    plan.fail(fault_target::receive, ENOBUFS, {2, 9, 6});
    compat_run r = expect_compat_faults(plan, 6);
    CHECK(r.receive_retries == 0);
    CHECK(r.session_errors.empty());
    CHECK(r.base.load.completed == r.base.load.connections);
  }

  TEST_CASE("compat: short writes: SendAsync on a stream completes only when every byte went") {
    fault_plan plan;
    plan.short_write({5, 3, 50});
    compat_run r = expect_compat_faults(plan, 50);
    CHECK(r.session_errors.empty());
    CHECK(r.base.load.completed == r.base.load.connections);
  }

  TEST_CASE("compat: send EPIPE is SocketError.Shutdown on that session only") {
    fault_plan plan;
    plan.fail(fault_target::send, EPIPE, {15, 41, 6});
    compat_run r = expect_compat_faults(plan, 6);
    CHECK(r.session_errors_of(compat::SocketError::Shutdown) == 6);
    CHECK(r.base.load.affected == 6);
  }

  TEST_CASE("zero-copy sends: short rounds send the rest in order; a failed one reaches that send only, and the socket still sends zero-copy") {
    io_context::params prm;
    prm.send_zc_threshold = 16 * 1024;
    io_context ctx(prm);
    if (!ctx.features().send_zc) {
      MESSAGE("skipped: this kernel has no IORING_OP_SEND_ZC with usage reports (6.2+)");
      return;
    }
    socket l = socket::listen(ctx, endpoint::loopback(address_family::ipv4));
    const std::string data = test::pattern(512 * 1024);
    auto send = [&](test::raw_pair& p) {
      std::vector<std::byte> got;
      std::thread reader = test::read_on_thread(p.peer, got, data.size());
      io_result<std::size_t> r = ctx.block_on([](socket& s, const std::string& d) -> task<io_result<std::size_t>> {
        co_return co_await as_result(s.send_all_async(test::bytes(d)));
      }(p.server, data));
      if (r.ec) ::shutdown(p.peer, SHUT_RD), ::shutdown(p.server.native_handle(), SHUT_WR);
      reader.join();
      return std::pair{r, test::str(got)};
    };
    {
      fault_plan plan;
      plan.short_write({0, 1, 6});
      testing::fault_scope scope(ctx, plan);
      for (int i = 0; i < 3; ++i) {  // the first round of each socket goes zero-copy
        test::raw_pair p = test::make_pair(ctx, l);
        auto [r, got] = send(p);
        CHECK_FALSE(r.ec);
        CHECK(r.value == data.size());
        CHECK(got == data);
      }
      CHECK(plan.injected() == 6);
      CHECK(ctx.stats().zero_copy_sends >= 3);
    }
    {
      test::raw_pair p = test::make_pair(ctx, l);
      const std::uint64_t before = ctx.stats().zero_copy_sends;
      {
        fault_plan plan;
        plan.fail(fault_target::send, EPIPE, {0, 1, 1});
        testing::fault_scope scope(ctx, plan);
        io_result<std::size_t> r = ctx.block_on([](socket& s, const std::string& d) -> task<io_result<std::size_t>> {
          co_return co_await as_result(s.send_all_async(test::bytes(d)));
        }(p.server, data));
        CHECK(r.ec == std::errc::broken_pipe);
        CHECK(r.value == 0);
        CHECK(plan.injected() == 1);
      }
      CHECK(ctx.stats().zero_copy_sends == before);  // the kernel never had it
      auto [r, got] = send(p);  // the socket is intact and still tries zero-copy
      CHECK_FALSE(r.ec);
      CHECK(got == data);
      CHECK(ctx.stats().zero_copy_sends > before);
    }
    CHECK(ctx.pending_operations() == 0);
  }
}

}  // namespace rstest
