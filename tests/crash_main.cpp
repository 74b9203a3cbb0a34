// The aborts the library promises, one scenario per run (meson: should_fail). The scenario runs
// in a child; the run aborts only when the child died of SIGABRT *and* printed the message the
// library promises. Every other outcome exits 0 and so fails the test: a scenario that survives
// its misuse, throws, dies of another signal, or aborts for another reason (a sanitizer report,
// a failed assert, an abort of a different check).
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "ringsock/compat.hpp"
#include "ringsock/ringsock.hpp"
#include "support.hpp"
#ifdef RINGSOCK_CRASH_TLS  // the crash_tls build (with ringsock_tls)
#include "ringsock/tls.hpp"
#include "tls_support.hpp"
#endif

namespace {

namespace cn = ringsock::compat;
using namespace std::chrono_literals;

[[noreturn]] void not_aborted(const char* why) {
  std::fprintf(stderr, "crash test: no abort (%s)\n", why);
  std::_Exit(0);
}

// A socket_args destroyed while an operation using it is pending (the kernel still owns the
// memory of its request).
void args_destroyed_in_use() {
  ringsock::io_context ctx;
  auto l = ringsock::socket::listen(ctx, ringsock::endpoint::loopback(ringsock::address_family::ipv4));
  const int c = test::blocking_connect(l.local_endpoint());
  auto args = std::make_unique<ringsock::socket_args>();
  std::byte buf[16];
  ringsock::socket server = ctx.block_on(test::accept_one(l));
  args->set_buffer(buf);
  ctx.spawn([](ringsock::socket& s, ringsock::socket_args& a) -> ringsock::task<void> {
    co_await s.receive_async(a);
  }(server, *args));
  ctx.run_until([&] { return args->in_use(); }, 1s);
  if (!args->in_use()) not_aborted("the receive did not start");
  args.reset();  // must abort here
  ::close(c);
  not_aborted("socket_args destroyed in use");
}

// A SocketAsyncEventArgs destroyed while its AcceptAsync is pending.
void event_args_destroyed_in_use() {
  ringsock::io_context ctx;
  auto l = std::make_shared<cn::Socket>(ctx, cn::AddressFamily::InterNetwork, cn::SocketType::Stream,
                                        cn::ProtocolType::Tcp);
  l->Bind(cn::IPEndPoint(cn::IPAddress::Loopback, 0));
  l->Listen(4);
  auto e = std::make_unique<cn::SocketAsyncEventArgs>();
  if (!l->AcceptAsync(*e)) not_aborted("the accept completed synchronously");
  e.reset();  // must abort here
  not_aborted("SocketAsyncEventArgs destroyed in use");
}

// A compat Socket that no shared_ptr owns, destroyed with an operation it started pending.
void compat_socket_destroyed_with_pending_operation() {
  ringsock::io_context ctx;
  auto* l = new cn::Socket(ctx, cn::AddressFamily::InterNetwork, cn::SocketType::Stream,
                           cn::ProtocolType::Tcp);
  l->Bind(cn::IPEndPoint(cn::IPAddress::Loopback, 0));
  l->Listen(4);
  cn::SocketAsyncEventArgs e;
  if (!l->AcceptAsync(e)) not_aborted("the accept completed synchronously");
  delete l;  // must abort here
  not_aborted("compat Socket destroyed with a pending operation");
}

// The default exception policy: an exception other than socket_error escaping a spawned task is
// a bug, reported and terminated on.
void spawned_task_throws_a_bug() {
  ringsock::io_context ctx;
  ctx.spawn([]() -> ringsock::task<void> {
    throw std::logic_error("a bug");
    co_return;
  }());
  ctx.run();  // must terminate here
  not_aborted("the loop survived a logic_error escaping a spawned task");
}

// A received_buffer kept past its io_context: the ring's memory is about to be unmapped.
void received_buffer_outlives_context() {
  ringsock::received_buffer kept;
  {
    ringsock::io_context ctx;
    auto l = ringsock::socket::listen(ctx, ringsock::endpoint::loopback(ringsock::address_family::ipv4));
    const int c = test::blocking_connect(l.local_endpoint());
    ringsock::socket server = ctx.block_on(test::accept_one(l));
    if (::send(c, "kept", 4, 0) != 4) not_aborted("the peer could not send");
    kept = ctx.block_on([](ringsock::socket& s) -> ringsock::task<ringsock::received_buffer> {
      co_return co_await s.receive_borrowed_async();
    }(server));
    if (kept.empty()) not_aborted("nothing was lent");
    ::close(c);
  }  // must abort here
  not_aborted("an io_context destroyed while a received_buffer held its buffer");
}

#ifdef RINGSOCK_CRASH_TLS
// A tls::stream destroyed while its receive waits (the operation's coroutine refers to it).
void tls_stream_destroyed_in_use() {
  namespace tls = ringsock::tls;
  ringsock::io_context ctx;
  auto l = ringsock::socket::listen(ctx, ringsock::endpoint::loopback(ringsock::address_family::ipv4));
  tls::context srv = test::tls_server_context();
  tls::context cli = test::tls_client_context();
  std::unique_ptr<tls::stream> server, client;
  auto accept_side = [&]() -> ringsock::task<void> {
    server = std::make_unique<tls::stream>(co_await l.accept_async(), srv);
    co_await server->handshake_async(5s);
  };
  auto connect_side = [&]() -> ringsock::task<void> {
    client = std::make_unique<tls::stream>(co_await ringsock::socket::connect_async(ctx, l.local_endpoint()), cli);
    client->set_host_name("localhost");
    co_await client->handshake_async(5s);
  };
  ctx.block_on(ringsock::when_all(accept_side(), connect_side()));
  bool started = false;
  ctx.spawn([](tls::stream& t, bool& started) -> ringsock::task<void> {
    std::byte b[16];
    started = true;
    (void)co_await ringsock::as_result(t.receive_async(b));
  }(*server, started));
  ctx.run_until([&] { return started; }, 1s);
  if (!started) not_aborted("the receive did not start");
  server.reset();  // must abort here
  not_aborted("tls::stream destroyed in use");
}
#endif

struct scenario {
  const char* name;
  void (*run)();
  const char* message;  // what the library must print before it aborts
};
constexpr scenario scenarios[] = {
    {"args_destroyed_in_use", &args_destroyed_in_use,
     "ringsock: a socket_args was destroyed while an operation using it was pending"},
    {"event_args_destroyed_in_use", &event_args_destroyed_in_use,
     "ringsock::compat: a SocketAsyncEventArgs was destroyed while an operation using it was "
     "pending"},
    {"compat_socket_destroyed_with_pending_operation",
     &compat_socket_destroyed_with_pending_operation,
     "ringsock::compat: a Socket was destroyed with 1 operation(s) it started still pending"},
    {"spawned_task_throws_a_bug", &spawned_task_throws_a_bug,
     "ringsock: exception escaped a spawned task: a bug"},
    {"received_buffer_outlives_context", &received_buffer_outlives_context,
     "ringsock: an io_context was destroyed while a received_buffer still held one of its receive "
     "buffers"},
#ifdef RINGSOCK_CRASH_TLS
    {"tls_stream_destroyed_in_use", &tls_stream_destroyed_in_use,
     "ringsock: a tls::stream was destroyed while one of its operations ran"},
#endif
};

[[noreturn]] void run_child(const scenario& s) {
  // Only SIGABRT may end a scenario with a failure status.
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    std::signal(sig, [](int) { std::_Exit(0); });
  try {
    s.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash test: exception %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "crash test: unknown exception\n");
  }
  not_aborted("the scenario returned");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) not_aborted("usage: crash <scenario>");
  const scenario* s = nullptr;
  for (const scenario& c : scenarios)
    if (std::strcmp(argv[1], c.name) == 0) s = &c;
  if (!s) not_aborted("unknown scenario");
  int out[2];
  if (::pipe(out) != 0) not_aborted("pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) not_aborted("fork");
  if (pid == 0) {
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::close(out[1]);
    run_child(*s);
  }
  ::close(out[1]);
  std::string said;
  char buf[512];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) said.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) not_aborted("waitpid");
  std::fputs(said.c_str(), stderr);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) not_aborted("the child did not abort");
  if (said.find(s->message) == std::string::npos) not_aborted("the abort did not say the promised message");
  std::signal(SIGABRT, SIG_DFL);
  std::abort();  // the promised abort happened: fail, as should_fail expects
}
