// The aborts the library promises, one scenario per run (meson: should_fail). Every other way
// out of a scenario exits 0, so a test passes only when the promised abort happened: a scenario
// that survives its misuse, throws, or dies of another signal counts as a failure.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "ringsock/compat.hpp"
#include "ringsock/ringsock.hpp"
#include "support.hpp"

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

struct scenario {
  const char* name;
  void (*run)();
};
constexpr scenario scenarios[] = {
    {"args_destroyed_in_use", &args_destroyed_in_use},
    {"event_args_destroyed_in_use", &event_args_destroyed_in_use},
    {"compat_socket_destroyed_with_pending_operation", &compat_socket_destroyed_with_pending_operation},
    {"spawned_task_throws_a_bug", &spawned_task_throws_a_bug},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) not_aborted("usage: crash <scenario>");
  // Only SIGABRT may end a scenario with a failure status.
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL})
    std::signal(sig, [](int) { std::_Exit(0); });
  for (const scenario& s : scenarios) {
    if (std::strcmp(argv[1], s.name) != 0) continue;
    try {
      s.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "crash test: exception %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "crash test: unknown exception\n");
    }
    not_aborted("the scenario returned");
  }
  not_aborted("unknown scenario");
}
