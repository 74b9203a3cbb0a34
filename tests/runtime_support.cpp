#include "runtime_support.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "support.hpp"

namespace rstest {
using namespace ringsock;
using ringsock::socket;

task<void> echo_counted(socket s, tally& t) {
  const unsigned me = runtime::this_index();
  t.connections[me].fetch_add(1);
  for (;;) {
    auto [ec, b] = co_await as_result(s.receive_borrowed_async());
    if (ec || b.empty()) co_return;
    t.bytes[me].fetch_add(static_cast<long>(b.size()));
    auto sent = co_await as_result(s.send_all_async(b.data()));
    if (sent.ec) co_return;
  }
}

task<void> serve_all(runtime& rt, io_context& ctx, tally& t) {
  socket l = rt.listen(ctx, endpoint::loopback(address_family::ipv4));
  t.listening.fetch_add(1);
  accept_args args;
  for (;;) {
    std::error_code ec = co_await l.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) co_return;
      continue;
    }
    ctx.spawn(echo_counted(std::move(args.accept_socket()), t));
  }
}

long echo_blocking(int fd, std::size_t n) {
  std::vector<char> out(n), in(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(i * 7 + static_cast<std::size_t>(fd));
  std::size_t sent = 0, got = 0;
  while (got < n) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < n ? POLLOUT : 0)), 0};
    const int ready = ::poll(&p, 1, 5000);
    if (ready == 0) return -2;
    if (ready != 1) break;
    if ((p.revents & POLLOUT) && sent < n) {
      const ssize_t k = ::send(fd, out.data() + sent, n - sent, MSG_NOSIGNAL);
      if (k <= 0) break;
      sent += static_cast<std::size_t>(k);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t k = ::recv(fd, in.data() + got, n - got, 0);
      if (k <= 0) break;
      got += static_cast<std::size_t>(k);
    }
  }
  return got == n && std::memcmp(in.data(), out.data(), n) == 0 ? static_cast<long>(n) : -1;
}

long echo_clients(const endpoint& ep, int conns, std::size_t size) {
  std::vector<int> fds;
  for (int i = 0; i < conns; ++i) fds.push_back(test::blocking_connect(ep));
  std::atomic<long> echoed{0};
  std::vector<std::thread> ts;
  for (int fd : fds) ts.emplace_back([fd, size, &echoed] {
    const long n = echo_blocking(fd, size);
    if (n > 0) echoed.fetch_add(n);
    ::close(fd);
  });
  for (auto& th : ts) th.join();
  return echoed.load();
}

int try_connect(const endpoint& ep) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, ep.data(), ep.size()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool wait_for(const std::atomic<int>& v, int want) {
  using namespace std::chrono_literals;
  for (int i = 0; i < 500 && v.load() < want; ++i) std::this_thread::sleep_for(10ms);
  return v.load() >= want;
}

}  // namespace rstest
