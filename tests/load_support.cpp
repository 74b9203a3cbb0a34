#include "load_support.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <random>
#include <thread>
#include <vector>

namespace test {

using namespace ringsock;

std::size_t server_log::session_errors_of(std::errc e) const {
  auto it = session_errors.find(static_cast<int>(e));
  return it == session_errors.end() ? 0 : it->second;
}
std::size_t server_log::accept_errors_of(std::errc e) const {
  auto it = accept_errors.find(static_cast<int>(e));
  return it == accept_errors.end() ? 0 : it->second;
}

namespace {

bool transient(const std::error_code& ec) {
  return ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
}

task<void> logged_session(ringsock::socket s, server_log& log) {
  s.set_no_delay(true);  // an echo split in two must not wait for the client's delayed ACK
  std::array<std::byte, 4096> buf;
  for (;;) {
    std::size_t n = 0;
    std::error_code ec;
    try {
      n = co_await s.receive_async(buf);
    } catch (const socket_error& e) {
      ec = e.code();
    }
    if (ec) {
      ++log.session_errors[ec.value()];
      if (transient(ec)) {
        ++log.receive_retries;
        continue;  // the connection is intact: nothing was read
      }
      break;
    }
    if (n == 0) break;
    try {
      co_await s.send_all_async({buf.data(), n});
    } catch (const socket_error& e) {
      ++log.session_errors[e.code().value()];
      break;
    }
  }
  ++log.sessions_ended;
}

// Moves exactly n bytes with a blocking call (recv or send), retrying EINTR; false on end of
// stream, error or timeout.
template <class Byte, class Call>
bool move_exactly(Byte* p, std::size_t n, Call call) {
  while (n > 0) {
    ssize_t r = call(p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool read_exactly(int fd, std::byte* p, std::size_t n) {
  return move_exactly(p, n, [fd](std::byte* b, std::size_t k) { return ::recv(fd, b, k, 0); });
}

bool write_all(int fd, const std::byte* p, std::size_t n) {
  return move_exactly(
      p, n, [fd](const std::byte* b, std::size_t k) { return ::send(fd, b, k, MSG_NOSIGNAL); });
}

void client_thread(const endpoint& ep, const load_shape& shape, int index,
                   const std::atomic<bool>* stop_early, load_result& out) {
  std::mt19937 rng(shape.seed * 7919u + static_cast<unsigned>(index));
  std::uniform_int_distribution<std::size_t> size(1, shape.max_message);
  std::vector<std::byte> msg(shape.max_message), back(shape.max_message);
  for (int c = 0; c < shape.connections; ++c) {
    if (stop_early && stop_early->load()) break;
    ++out.connections;
    int fd = ::socket(static_cast<int>(ep.family()), SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{shape.timeout_ms / 1000, (shape.timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, ep.data(), ep.size()) != 0) {
      ++out.refused;
      ::close(fd);
      continue;
    }
    bool ok = true, bad = false;
    int echoed = 0;
    for (int m = 0; m < shape.messages && ok; ++m) {
      const std::size_t n = size(rng);
      for (std::size_t i = 0; i < n; ++i) msg[i] = static_cast<std::byte>(rng());
      if (!write_all(fd, msg.data(), n) || !read_exactly(fd, back.data(), n)) {
        ok = false;
        break;
      }
      if (std::equal(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n), back.begin())) {
        ++out.messages;
        ++echoed;
        out.bytes += n;
      } else {
        bad = true;
        ok = false;
      }
    }
    if (ok) {
      // Half-close and wait for the server's end of stream: the session ended cleanly.
      ::shutdown(fd, SHUT_WR);
      std::byte extra{};
      ssize_t r = ::recv(fd, &extra, 1, 0);
      if (r == 0)
        ++out.completed;
      else if (r > 0)
        bad = true;  // bytes nobody sent
      else
        ++out.affected, ++out.affected_after_echo;
    } else if (!bad) {
      ++out.affected;
      if (echoed > 0) ++out.affected_after_echo;
    }
    if (bad) ++out.corrupt;
    ::close(fd);
  }
}

}  // namespace

task<void> logged_accept_loop(io_context& ctx, ringsock::socket& listener, server_log& log) {
  accept_args args;
  for (;;) {
    std::error_code ec = co_await listener.accept_async(args);
    if (ec) {
      if (is_fatal(ec)) {
        log.accept_end = ec;
        co_return;
      }
      ++log.accept_errors[ec.value()];
      continue;
    }
    ++log.accepted;
    ctx.spawn(logged_session(std::move(args.accept_socket()), log));
  }
}

load_result run_clients(const endpoint& ep, const load_shape& shape,
                        const std::atomic<bool>* stop_early) {
  std::vector<load_result> parts(static_cast<std::size_t>(shape.threads));
  std::vector<std::thread> threads;
  for (int i = 0; i < shape.threads; ++i)
    threads.emplace_back(client_thread, std::cref(ep), std::cref(shape), i, stop_early,
                         std::ref(parts[static_cast<std::size_t>(i)]));
  for (auto& t : threads) t.join();
  load_result sum;
  for (const auto& p : parts) {
    sum.connections += p.connections;
    sum.completed += p.completed;
    sum.affected += p.affected;
    sum.affected_after_echo += p.affected_after_echo;
    sum.refused += p.refused;
    sum.corrupt += p.corrupt;
    sum.messages += p.messages;
    sum.bytes += p.bytes;
  }
  return sum;
}

load_result load_while_serving(io_context& ctx, const endpoint& ep, const load_shape& shape) {
  load_result result;
  std::atomic<bool> done{false};
  std::thread t([&] {
    result = run_clients(ep, shape);
    done.store(true);
    ctx.post([] {});  // wakes the loop to look at `done`
  });
  ctx.run_until([&] { return done.load(); });
  t.join();
  return result;
}

load_result serve_while(io_context& ctx, ringsock::socket& listener, server_log& log,
                        const load_shape& shape) {
  ctx.spawn(logged_accept_loop(ctx, listener, log));
  load_result result = load_while_serving(ctx, listener.local_endpoint(), shape);
  listener.close();
  ctx.run();  // the accept loop ends (operation_canceled), sessions end at end of stream
  return result;
}

}  // namespace test
