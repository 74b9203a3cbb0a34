// TLS over a connected ringsock::socket, on OpenSSL 3 (the ringsock_tls library; built when the
// `tls` Meson feature finds OpenSSL). The record layer runs through a fixed pair of memory
// buffers driven by the socket's own receive and send: no blocking call, no thread, no
// allocation per record in steady state.
//
//   tls::context ctx = tls::context::server();
//   ctx.use_certificate_chain_file("cert.pem");
//   ctx.use_private_key_file("key.pem");
//   tls::stream s(std::move(accepted), ctx);
//   co_await s.handshake_async();
//   std::size_t n = co_await s.receive_async(buf);        // 0: the peer's close_notify
//   co_await s.send_all_async(std::span(buf).first(n));
//   co_await s.shutdown_async();                          // close_notify, then half-close
//
// Every operation has the plain form (value or socket_error) and as_result of it
// (io_result<T>{ec, value}, or std::error_code): a TLS failure is an error_code of
// tls::error_category() (tls::errc), a socket failure keeps its errno (connection_reset, ...).
// Misuse throws before anything is sent: std::logic_error for an operation before the handshake
// or while another of its kind is in flight, tls::setup_error for a certificate, key or CA that
// cannot be loaded. A stream whose handshake failed, or that met a TLS error, is over: each
// operation on it then ends with that error.
//
// The path: where the kernel takes TLS keys (kernel_tls_available(): TCP ULP "tls", CONFIG_TLS),
// a stream hands it the send keys after the handshake and the ring's plain sends carry its
// application data, encrypted by the kernel (stream::kernel_offload() says so); receiving, and
// sending where the kernel cannot, run OpenSSL's record layer in user space.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ringsock/io_options.hpp"
#include "ringsock/result.hpp"
#include "ringsock/socket.hpp"
#include "ringsock/task.hpp"

struct ssl_ctx_st;      // OpenSSL's SSL_CTX
struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace ringsock::tls {

// What ended a TLS operation, besides the socket's own errors.
enum class errc {
  handshake_failed = 1,  // no agreement (garbage instead of a ClientHello, no shared cipher,
                         // an alert from the peer)
  certificate_rejected,  // the peer's certificate failed verification (unknown issuer, expired,
                         // not for the host name asked)
  truncated,             // the peer closed the connection without close_notify (an attacker
                         // may have cut the stream: never a clean end of stream)
  record_too_large,      // a record longer than TLS allows
  protocol_error,        // any other failure of the record layer (bad MAC, unexpected message)
};
const std::error_category& error_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// A certificate, key or CA file could not be loaded; what() carries OpenSSL's reason.
class setup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// True when this kernel takes TLS keys (the "tls" TCP upper-layer protocol, CONFIG_TLS): a
// probe on an unconnected TCP socket, once per process.
bool kernel_tls_available() noexcept;

// A resumable session (client side), from stream::session(); shared, cheap to copy.
class session {
 public:
  session() noexcept = default;
  explicit operator bool() const noexcept { return static_cast<bool>(s_); }

 private:
  friend class stream;
  std::shared_ptr<ssl_session_st> s_;
};

// The settings streams are made with (OpenSSL's SSL_CTX): TLS 1.2 and 1.3 only, no
// renegotiation. Configure it before the first stream; it must outlive its streams.
class context {
 public:
  // A server context: give it a certificate chain and its key. A session cache is on.
  static context server();
  // A client context: verifies the peer against the system's CAs (set_default_verify_paths).
  static context client();
  ~context();
  context(context&& o) noexcept;
  context& operator=(context&& o) noexcept;
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  // PEM files or PEM text. Throws setup_error (OpenSSL's reason) when they do not load, or when
  // the key does not match the certificate.
  void use_certificate_chain_file(const std::string& path);
  void use_private_key_file(const std::string& path);
  void use_certificate_chain_pem(std::string_view pem);
  void use_private_key_pem(std::string_view pem);
  // The CAs a peer's certificate is checked against (client side: on by default).
  void load_verify_file(const std::string& path);
  void set_default_verify_paths();
  // Client: check the server's certificate (default true). Server: ask clients for one and
  // check it (default false).
  void set_verify_peer(bool on);
  // ALPN. Client: the protocols offered, in order. Server: the protocols accepted, in order of
  // preference; the first one the client also offered is chosen, none when nothing matches.
  void set_alpn(const std::vector<std::string>& protocols);
  // Kernel TLS on the send side, for streams made from now on (default true): used where the
  // kernel and the negotiated cipher allow it (AES-GCM, ChaCha20-Poly1305; AES-CCM with TLS 1.2
  // only: OpenSSL 3.0 does not offload it for TLS 1.3), user space
  // otherwise. A stream whose peer asks for a TLS 1.3 key update while the kernel holds the send
  // keys can send no more data (its sends end with protocol_error; OpenSSL 3.0 cannot hand the
  // kernel new keys); it still receives, and shutdown_async still sends close_notify.
  void set_kernel_offload(bool on) noexcept { offload_ = on; }
  bool kernel_offload() const noexcept { return offload_; }

  bool is_server() const noexcept { return server_; }
  ssl_ctx_st* native_handle() const noexcept { return ctx_; }

 private:
  context(ssl_ctx_st* c, bool server) noexcept;
  ssl_ctx_st* ctx_ = nullptr;
  bool server_ = false;
  bool offload_ = true;
  std::string alpn_wire_;  // server: the accepted protocols, in ALPN's wire format
};

class stream;

namespace detail {
class engine;     // the record layer (lib/tls/engine.hpp)
struct deadline;  // an operation's timeout over all its socket operations (lib/tls/stream.cpp)

// What a TLS operation's coroutine gives: io_result<T>, or std::error_code for no value.
template <class T>
struct result_for {
  using type = io_result<T>;
};
template <>
struct result_for<void> {
  using type = std::error_code;
};
template <class T>
using result_t = typename result_for<T>::type;

// A TLS operation's awaiter: runs its coroutine; await_resume gives the value or throws
// socket_error, and as_result takes the result instead (result.hpp). `busy` is the stream's
// flag for its kind of operation: set from the call until its result is taken (or the awaiter
// is gone unawaited), so a second one made before the first is awaited is refused too.
template <class T>
class op {
 public:
  op(task<result_t<T>> t, bool& busy) noexcept
      : t_(std::move(t)), aw_(t_.operator co_await()), busy_(&busy) {
    busy = true;
  }
  ~op() { done(); }
  op(const op&) = delete;
  op& operator=(const op&) = delete;
  bool await_ready() { return aw_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return aw_.await_suspend(h); }
  T await_resume() {
    result_t<T> r = aw_.await_resume();
    done();
    if constexpr (std::is_void_v<T>) {
      if (r) throw socket_error(r, "ringsock: tls");
    } else {
      if (r.ec) throw socket_error(r.ec, "ringsock: tls");
      return std::move(r.value);
    }
  }
  result_t<T> take_result() {
    result_t<T> r = aw_.await_resume();
    done();
    return r;
  }

 private:
  // The operation is over: its kind is free again (the stream may go after this).
  void done() noexcept {
    if (busy_) *std::exchange(busy_, nullptr) = false;
  }
  task<result_t<T>> t_;
  typename task<result_t<T>>::awaiter aw_;
  bool* busy_;
};
}  // namespace detail

// A TLS connection over a connected socket, which it owns. Operations of one stream: one
// handshake, then at most one receive and one send in flight at a time (a receive and a send
// may overlap). An operation's timeout bounds all of it (every receive and send of the socket
// underneath); its stop token cancels the one running. The stream must not move or be
// destroyed while one of its operations exists, from the call until its co_await has returned
// (that aborts with a message).
class stream {
 public:
  // Takes the socket; the role is the context's (server() or client()).
  stream(socket s, context& ctx);
  ~stream();
  stream(stream&&) noexcept;
  stream& operator=(stream&&) noexcept;

  // Client, before the handshake: the name sent as SNI and checked against the server's
  // certificate (DNS name or IP address).
  void set_host_name(const std::string& name);
  // Client, before the handshake: try to resume `s` (from an earlier stream's session()).
  void set_session(const session& s);

  // handshake_async: the TLS handshake, as the context's role.
  //   errors  tls::errc::handshake_failed, certificate_rejected, truncated (the peer closed in
  //           the middle), record_too_large; the socket's (connection_reset, timed_out ...).
  //           A failed handshake sends its alert before it completes.
  //   misuse  a client that verifies the server (the default) without set_host_name:
  //           std::logic_error (any valid certificate for any name would pass)
  detail::op<void> handshake_async(io_options o = {});
  // receive_async: decrypted bytes into buf (at least 1, or 0 once the peer sent close_notify).
  //   errors  tls::errc::truncated (the connection ended without close_notify),
  //           record_too_large, protocol_error; the socket's.
  //   misuse  an empty buffer: std::invalid_argument; before the handshake, or with another
  //           receive in flight: std::logic_error
  detail::op<std::size_t> receive_async(std::span<std::byte> buf, io_options o = {});
  // send_all_async: encrypts and sends every byte of buf (records of up to 16 KiB).
  //   returns buf.size()   errors as the socket's send_all_async
  //   misuse  before the handshake, after shutdown_async, or with another send in flight:
  //           std::logic_error
  detail::op<std::size_t> send_all_async(std::span<const std::byte> buf, io_options o = {});
  // shutdown_async: sends close_notify, then half-closes the socket (SHUT_WR); the peer's
  // close_notify, if it sends one, reaches receive_async as 0. After a TLS error (which ends
  // the stream) only the half-close goes, and that error is the result.
  detail::op<void> shutdown_async(io_options o = {});

  // After the handshake: the ALPN protocol chosen ("" when none), the name the client asked for
  // (SNI; "" when none), whether the session was resumed, the protocol version ("TLSv1.3").
  std::string_view alpn() const noexcept;
  std::string_view server_name() const noexcept;
  bool session_reused() const noexcept;
  std::string_view version() const noexcept;
  // Client: the session to resume later (TLS 1.3 sends it after the handshake: it is there
  // once a receive has read past it); empty when none has come.
  tls::session session() const;
  // OpenSSL's reason for the last TLS error of this stream ("" when none), for logs.
  const std::string& last_error_detail() const noexcept;
  // After the handshake: true when the kernel encrypts what this stream sends (kernel TLS);
  // false when OpenSSL does it in user space (no kernel TLS, a cipher the kernel lacks, or the
  // context's set_kernel_offload(false)). Receiving is always in user space.
  bool kernel_offload() const noexcept;

  socket& lowest_layer() noexcept { return sock_; }

 private:
  task<std::error_code> run_handshake(io_options o);
  task<io_result<std::size_t>> run_receive(std::span<std::byte> buf, io_options o);
  task<io_result<std::size_t>> run_send(std::span<const std::byte> buf, io_options o);
  task<std::error_code> run_shutdown(io_options o);
  // Sends what the record layer has written (`wait_turn`: after the operation sending it now);
  // with the kernel's send keys, then `plain` as it is (its bytes sent counted in *sent).
  task<std::error_code> flush(const detail::deadline& d, bool wait_turn,
                              std::span<const std::byte> plain = {}, std::size_t* sent = nullptr);
  // Receives more bytes for the record layer (truncated at the end of the stream).
  task<std::error_code> fill(const detail::deadline& d);

  socket sock_;
  std::unique_ptr<detail::engine> eng_;
};

}  // namespace ringsock::tls

template <>
struct std::is_error_code_enum<ringsock::tls::errc> : std::true_type {};
