#include "support.hpp"

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <new>
#include <utility>

namespace {
std::atomic<std::size_t> g_new_calls{0};
std::atomic<std::size_t> g_delete_calls{0};
std::atomic<std::size_t> g_new_bytes{0};
void counted_free(void* p) noexcept {
  if (p) g_delete_calls.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}
}

// Counting replacements of the global allocation functions.
void* operator new(std::size_t n) {
  g_new_calls.fetch_add(1, std::memory_order_relaxed);
  g_new_bytes.fetch_add(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace test {

std::size_t new_calls() { return g_new_calls.load(std::memory_order_relaxed); }
std::size_t new_bytes() { return g_new_bytes.load(std::memory_order_relaxed); }
std::size_t delete_calls() { return g_delete_calls.load(std::memory_order_relaxed); }

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory's own descriptor
}

std::thread read_on_thread(int fd, std::vector<std::byte>& got, std::size_t want) {
  return std::thread([fd, &got, want] {
    std::array<std::byte, 65536> chunk;
    while (got.size() < want) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) break;
      const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
      if (n <= 0) break;
      got.insert(got.end(), chunk.begin(), chunk.begin() + n);
    }
  });
}

raw_pair::raw_pair(raw_pair&& o) noexcept
    : server(std::move(o.server)), peer(std::exchange(o.peer, -1)) {}
raw_pair::~raw_pair() {
  if (peer >= 0) ::close(peer);
}

raw_pair make_pair(ringsock::io_context& ctx, ringsock::socket& listener) {
  raw_pair p;
  p.peer = blocking_connect(listener.local_endpoint());
  p.server = ctx.block_on(accept_one(listener));
  return p;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

int blocking_connect(const ringsock::endpoint& ep) {
  int fd = ::socket(static_cast<int>(ep.family()), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, ep.data(), ep.size()) != 0) std::abort();
  return fd;
}

ringsock::task<ringsock::socket> accept_one(ringsock::socket& listener) {
  co_return co_await listener.accept_async();
}

ringsock::task<socket_pair> connected_pair(ringsock::io_context& ctx, ringsock::socket& listener) {
  auto [s, c] = co_await ringsock::when_all(
      accept_one(listener), ringsock::socket::connect_async(ctx, listener.local_endpoint()));
  co_return socket_pair{std::move(s), std::move(c)};
}

ringsock::task<void> echo_session(ringsock::socket s) {
  std::array<std::byte, 4096> buf;
  for (;;) {
    std::size_t n = co_await s.receive_async(buf);
    if (n == 0) break;
    co_await s.send_all_async({buf.data(), n});
  }
}

ringsock::task<void> echo_server(ringsock::io_context& ctx, ringsock::socket& listener,
                                 int count) {
  for (int i = 0; i < count; ++i) ctx.spawn(echo_session(co_await listener.accept_async()));
}

ringsock::task<std::string> echo_client(ringsock::io_context& ctx, ringsock::endpoint ep,
                                        std::string msg) {
  ringsock::socket s = co_await ringsock::socket::connect_async(ctx, ep);
  co_await s.send_all_async(bytes(msg));
  s.shutdown(ringsock::shutdown_how::send);
  std::string got;
  std::array<std::byte, 4096> buf;
  for (;;) {
    std::size_t n = co_await s.receive_async(buf);
    if (n == 0) break;
    got += str({buf.data(), n});
  }
  co_return got;
}

std::string temp_socket_path(const char* tag) {
  return "/tmp/ringsock-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".sock";
}

}  // namespace test
