// tls::stream: the record layer (engine.hpp) driven by the socket's receive and send.
//
// Output is sent by whichever operation finds it waiting and nobody sending it (`flushing`): a
// receive that has to answer the peer (a TLS 1.3 key update) and a send never put bytes on the
// socket at the same time, and the one sending takes everything that is there when it is done.
#include <sys/socket.h>

#include <openssl/ssl.h>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

#include "engine.hpp"
#include "ktls.hpp"
#include "ringsock/detail/access.hpp"
#include "ringsock/detail/socket_awaiters.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/tls.hpp"

namespace ringsock::tls {

using detail::need;

stream::stream(socket s, context& ctx)
    : sock_(std::move(s)),
      eng_(std::make_unique<detail::engine>(
          ctx.native_handle(), ctx.is_server(), sock_.native_handle(),
          ctx.kernel_offload() &&
              (kernel_tls_available() || detail::kernel_tls_hooks().pretend_available.load(std::memory_order_relaxed)))) {}

namespace {
// Operations run in coroutines that refer to the stream: it must not move or go meanwhile.
void check_idle(const std::unique_ptr<detail::engine>& e, const char* what) noexcept {
  if (e && (e->receiving || e->sending || e->flushing || e->handshaking)) {
    std::fprintf(stderr, "ringsock: a tls::stream was %s while one of its operations ran; keep it in "
                 "place until every co_await on it has returned\n", what);
    std::abort();
  }
}
}  // namespace

stream::~stream() { check_idle(eng_, "destroyed"); }
stream::stream(stream&& o) noexcept : sock_(std::move(o.sock_)), eng_(std::move(o.eng_)) {
  check_idle(eng_, "moved");
}
stream& stream::operator=(stream&& o) noexcept {
  check_idle(eng_, "assigned to");
  check_idle(o.eng_, "moved");
  sock_ = std::move(o.sock_);
  eng_ = std::move(o.eng_);
  return *this;
}

void stream::set_host_name(const std::string& name) {
  if (!eng_ || eng_->handshake_done() || eng_->handshaking)
    throw std::logic_error("ringsock: tls: set_host_name after the handshake began");
  SSL* ssl = eng_->ssl();
  // SNI carries DNS names only; an address is checked as an address.
  const bool address = name.find_first_not_of("0123456789.") == std::string::npos ||
                       name.find(':') != std::string::npos;
  if (!address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1)
    throw std::invalid_argument("ringsock: tls: host name not usable for SNI: " + name);
  const int ok = address ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str())
                         : SSL_set1_host(ssl, name.c_str());
  if (ok != 1) throw std::invalid_argument("ringsock: tls: host name not usable: " + name);
  eng_->host_set = true;
}

void stream::set_session(const tls::session& s) {
  if (!eng_ || eng_->handshake_done() || eng_->handshaking)
    throw std::logic_error("ringsock: tls: set_session after the handshake began");
  if (s.s_ && SSL_set_session(eng_->ssl(), s.s_.get()) != 1)
    throw std::invalid_argument("ringsock: tls: the session cannot be used by this stream");
}

namespace {
// Waits until the operation that is sending the output is done with it.
struct flush_turn {
  detail::engine& e;
  bool await_ready() const noexcept { return !e.flushing; }
  void await_suspend(std::coroutine_handle<> h) noexcept { e.flush_waiter = h; }
  void await_resume() const noexcept {}
};

// The sender is done: the operation waiting for its turn goes on, on a later loop turn (which
// a dying context skips: the waiter's frame goes with it).
struct flush_end {
  detail::engine& e;
  io_context& ctx;
  ~flush_end() {
    e.flushing = false;
    if (ringsock::detail::access::draining(ctx)) return;
    if (std::coroutine_handle<> h = std::exchange(e.flush_waiter, {})) {
      try {
        ringsock::detail::access::defer_resume(ctx, h);
      } catch (...) {
        h.resume();  // no room to defer: go on here
      }
    }
  }
};
}  // namespace

namespace detail {
// A TLS operation's bound: its io_options' timeout covers the whole operation (every socket
// receive and send it makes), not each of them, so a peer that trickles bytes cannot stretch it.
struct deadline {
  io_options base;
  std::chrono::steady_clock::time_point end{};
  explicit deadline(io_options o) : base(std::move(o)) {
    if (base.timeout.count() > 0) end = std::chrono::steady_clock::now() + base.timeout;
  }
  // The options for the next socket operation; false when the time is up.
  bool next(io_options& out) const {
    out = base;
    if (base.timeout.count() <= 0) return true;
    const auto left = end - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return false;
    out.timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
    return true;
  }
};
}  // namespace detail

task<std::error_code> stream::flush(const detail::deadline& d, bool wait_turn,
                                    std::span<const std::byte> plain, std::size_t* sent) {
  detail::engine& e = *eng_;
  // One sender at a time, so that records reach the socket in the order they were written. A
  // send waits for its turn and then sends what is left (maybe nothing); a receive does not
  // wait: the operation sending takes its bytes too (it sends until the output is empty).
  if (e.flushing && !wait_turn) co_return std::error_code{};
  while (e.flushing) co_await flush_turn{e};
  if (!e.has_output() && plain.empty()) co_return std::error_code{};
  e.flushing = true;
  flush_end end{e, sock_.context()};
  // What the record layer wrote first (records, or with the kernel's keys control records),
  // then `plain`, then what was written meanwhile.
  for (bool plain_done = plain.empty();;) {
    io_options o;
    detail::engine::control_record rec{};
    if (std::span<const std::byte> out = e.output(); !out.empty()) {
      if (!d.next(o)) co_return make_error_code(std::errc::timed_out);
      auto [err, n] = co_await as_result(sock_.send_all_async(out, o));
      e.consume_output(n);  // also what went before an error: never sent twice
      if (err) co_return err;
    } else if (e.next_control(rec)) {
      if (!d.next(o)) co_return make_error_code(std::errc::timed_out);
      auto [err, n] = co_await as_result(ringsock::detail::op_awaiter<detail::control_record_op>(
          sock_, detail::control_record_op{rec.bytes, rec.type}, o));
      if (err) co_return err;
      e.consume_control(n);
    } else if (!plain_done) {
      plain_done = true;
      if (!d.next(o)) co_return make_error_code(std::errc::timed_out);
      auto [err, n] = co_await as_result(sock_.send_all_async(plain, o));
      *sent = n;
      if (err) co_return err;
    } else {
      co_return std::error_code{};
    }
  }
}

task<std::error_code> stream::fill(const detail::deadline& d) {
  detail::engine& e = *eng_;
  std::span<std::byte> room = e.input_window();
  if (room.empty()) co_return make_error_code(errc::protocol_error);  // OpenSSL wants more than it holds
  io_options o;
  if (!d.next(o)) co_return make_error_code(std::errc::timed_out);
  auto [err, n] = co_await as_result(sock_.receive_async(room, o));
  if (err) co_return err;
  if (n == 0) co_return e.end_of_input();
  e.commit_input(n);
  co_return std::error_code{};
}

task<std::error_code> stream::run_handshake(io_options o) {
  detail::engine& e = *eng_;
  const detail::deadline d(std::move(o));
  for (;;) {
    const detail::step s = e.handshake();
    // What it wrote goes out first, also before an error: the peer then learns why (alert).
    const std::error_code sent = co_await flush(d, true);
    if (s.what == need::error) co_return s.ec;
    if (sent) {
      e.fail_handshake(sent);
      co_return sent;
    }
    if (s.what == need::done) {
      if (e.kernel_send()) {  // the kernel's record layer takes no zero-copy sends
        ringsock::detail::socket_core* c = ringsock::detail::access::core(sock_);
        c->send_known = true;
        c->send_copies = true;
      }
      co_return std::error_code{};
    }
    if (s.what == need::input) {
      const std::error_code ec = co_await fill(d);
      if (ec) {
        e.fail_handshake(ec);
        co_return ec;
      }
    }
  }
}

task<io_result<std::size_t>> stream::run_receive(std::span<std::byte> buf, io_options o) {
  detail::engine& e = *eng_;
  const detail::deadline d(std::move(o));
  if (const std::error_code f = e.fatal()) co_return {f, 0};
  for (;;) {
    const detail::step s = e.read(buf);
    e.refuse_key_update_if_asked();
    if (e.has_output()) {  // a reply the record layer owes the peer (a key update)
      const std::error_code ec = co_await flush(d, false);
      // Bytes already decrypted are the caller's; the send side meets that error next.
      if (ec && !(s.what == need::done && s.value > 0)) co_return {ec, 0};
    }
    if (s.what == need::done) co_return {std::error_code{}, s.value};
    if (s.what == need::error) co_return {s.ec, 0};
    if (s.what == need::input) {
      const std::error_code ec = co_await fill(d);
      if (ec) co_return {ec, 0};
    }
  }
}

task<io_result<std::size_t>> stream::run_send(std::span<const std::byte> buf, io_options o) {
  detail::engine& e = *eng_;
  const detail::deadline d(std::move(o));
  if (const std::error_code f = e.fatal()) co_return {f, 0};
  if (const std::error_code f = e.send_refused()) co_return {f, 0};
  if (e.kernel_send()) {  // the kernel encrypts: the bytes go as they are
    std::size_t sent = 0;
    const std::error_code ec = co_await flush(d, true, buf, &sent);
    co_return {ec, sent};
  }
  std::size_t done = 0;
  while (done < buf.size()) {
    // Records until the output buffer is full (need::output) or all is written, then one send.
    detail::step s{need::done};
    while (done < buf.size()) {
      s = e.write(buf.subspan(done));
      if (s.what != need::done) break;
      done += s.value;
    }
    if (s.what == need::error) co_return {s.ec, done};
    if (s.what == need::input) {  // must read first: not with TLS 1.2/1.3 without renegotiation
      if (e.receiving) co_return {make_error_code(errc::protocol_error), done};
      const std::error_code ec = co_await fill(d);
      if (ec) co_return {ec, done};
      continue;
    }
    const std::error_code ec = co_await flush(d, true);
    if (ec) co_return {ec, done};
  }
  co_return {std::error_code{}, done};
}

task<std::error_code> stream::run_shutdown(io_options o) {
  detail::engine& e = *eng_;
  const detail::deadline d(std::move(o));
  e.shut = true;
  // After a fatal error OpenSSL may not write close_notify: only the half-close goes, and the
  // error stays the answer.
  std::error_code result = e.fatal();
  while (!result) {
    const detail::step s = e.shutdown();
    if (s.what == need::error) {
      result = s.ec;
      break;
    }
    const std::error_code ec = co_await flush(d, true);
    if (ec) co_return ec;
    if (s.what == need::done) break;
  }
  // Our close_notify is out; the half-close tells the peer no more bytes follow. (Under the
  // kernel's keys a completed send may leave the tail of a record in the kernel's TLS layer when
  // TCP was full; whether the FIN can overtake it is unverified: this machine has no
  // CONFIG_TLS. The test with 8 MiB each way then shutdown, in test_ktls.cpp, checks it where
  // the kernel has TLS.)
  try {
    sock_.shutdown(shutdown_how::send);
  } catch (const socket_error& x) {
    co_return result ? result : x.code();  // ENOTCONN: the peer already reset
  }
  co_return result;
}

detail::op<void> stream::handshake_async(io_options o) {
  if (!eng_ || !sock_.is_open()) throw socket_closed_error("tls handshake_async");
  if (eng_->handshaking || eng_->handshake_done())
    throw std::logic_error("ringsock: tls: handshake_async: a handshake is running or done");
  SSL* ssl = eng_->ssl();
  if (!SSL_is_server(ssl) && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && !eng_->host_set)
    throw std::logic_error(
        "ringsock: tls: handshake_async: a client that verifies the server needs set_host_name "
        "first (or the context's set_verify_peer(false)): any valid certificate would pass");
  return detail::op<void>(run_handshake(std::move(o)), eng_->handshaking);
}

namespace {
// A stream that met a fatal error (a failed handshake too) takes operations, which end with
// that error: the outcome is the connection's, not a misuse.
void check_after_handshake(const detail::engine& e, const char* what) {
  if (e.handshaking || (!e.handshake_done() && !e.fatal()))
    throw std::logic_error(std::string("ringsock: tls: ") + what + " before the handshake finished");
}
}  // namespace

detail::op<std::size_t> stream::receive_async(std::span<std::byte> buf, io_options o) {
  if (!eng_ || !sock_.is_open()) throw socket_closed_error("tls receive_async");
  if (buf.empty()) throw std::invalid_argument("ringsock: tls: receive_async: empty buffer");
  check_after_handshake(*eng_, "receive_async");
  if (eng_->receiving) throw std::logic_error("ringsock: tls: receive_async while another receive runs");
  return detail::op<std::size_t>(run_receive(buf, std::move(o)), eng_->receiving);
}

detail::op<std::size_t> stream::send_all_async(std::span<const std::byte> buf, io_options o) {
  if (!eng_ || !sock_.is_open()) throw socket_closed_error("tls send_all_async");
  check_after_handshake(*eng_, "send_all_async");
  if (eng_->shut) throw std::logic_error("ringsock: tls: send_all_async after shutdown_async");
  if (eng_->sending) throw std::logic_error("ringsock: tls: send_all_async while another send runs");
  return detail::op<std::size_t>(run_send(buf, std::move(o)), eng_->sending);
}

detail::op<void> stream::shutdown_async(io_options o) {
  if (!eng_ || !sock_.is_open()) throw socket_closed_error("tls shutdown_async");
  check_after_handshake(*eng_, "shutdown_async");
  if (eng_->sending) throw std::logic_error("ringsock: tls: shutdown_async while a send runs");
  if (eng_->shut) throw std::logic_error("ringsock: tls: shutdown_async twice");
  return detail::op<void>(run_shutdown(std::move(o)), eng_->sending);
}

std::string_view stream::alpn() const noexcept {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(eng_->ssl(), &p, &n);
  return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view();
}

std::string_view stream::server_name() const noexcept {
  const char* n = SSL_get_servername(eng_->ssl(), TLSEXT_NAMETYPE_host_name);
  return n ? std::string_view(n) : std::string_view();
}

bool stream::session_reused() const noexcept { return SSL_session_reused(eng_->ssl()) == 1; }

std::string_view stream::version() const noexcept { return SSL_get_version(eng_->ssl()); }

tls::session stream::session() const {
  tls::session s;
  SSL_SESSION* p = SSL_get1_session(eng_->ssl());
  if (p && SSL_SESSION_is_resumable(p) == 1)
    s.s_.reset(p, SSL_SESSION_free);
  else if (p)
    SSL_SESSION_free(p);
  return s;
}

const std::string& stream::last_error_detail() const noexcept { return eng_->last_error_detail(); }

bool stream::kernel_offload() const noexcept { return eng_ && eng_->kernel_send(); }

}  // namespace ringsock::tls
