#include "engine.hpp"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "ktls.hpp"
#include "ringsock/tls.hpp"

namespace ringsock::tls::detail {

engine::engine(SSL_CTX* ctx, bool server, int fd, bool offload)
    : fd_(fd), offload_(offload && fd >= 0) {
  ssl_ = SSL_new(ctx);
  BIO* inner = nullptr;
  if (!ssl_ || BIO_new_bio_pair(&inner, output_size, &network_, input_size) != 1) {
    if (ssl_) SSL_free(ssl_);
    ERR_clear_error();
    throw std::bad_alloc();
  }
  BIO* top = inner;
  if (offload_) {  // OpenSSL offers the keys to its BIO only with this option
    if (BIO* f = make_kernel_filter(*this, inner)) {
      top = f;
      SSL_set_options(ssl_, SSL_OP_ENABLE_KTLS);
    } else {
      offload_ = false;
      ERR_clear_error();
    }
  }
  SSL_set_bio(ssl_, top, top);  // the SSL owns its end (and the filter over it)
  // A write returns after each record that fit, so a full output buffer is sent and the rest
  // written next, never the same bytes twice.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

engine::~engine() {
  SSL_free(ssl_);
  BIO_free(network_);
}

std::span<std::byte> engine::input_window() noexcept {
  char* p = nullptr;
  const ossl_ssize_t n = BIO_nwrite0(network_, &p);
  if (n <= 0) return {};
  return {reinterpret_cast<std::byte*>(p), static_cast<std::size_t>(n)};
}

void engine::commit_input(std::size_t n) noexcept {
  char* p = nullptr;
  BIO_nwrite(network_, &p, static_cast<int>(n));
}

std::span<const std::byte> engine::output() noexcept {
  char* p = nullptr;
  const ossl_ssize_t n = BIO_nread0(network_, &p);
  if (n <= 0) return {};
  return {reinterpret_cast<const std::byte*>(p), static_cast<std::size_t>(n)};
}

void engine::consume_output(std::size_t n) noexcept {
  char* p = nullptr;
  BIO_nread(network_, &p, static_cast<int>(n));
}

bool engine::next_control(control_record& out) const noexcept {
  if (control_.empty()) return false;
  out = {control_.front().first, control_.front().second};
  return true;
}

void engine::consume_control(std::size_t n) noexcept {
  std::vector<std::byte>& v = control_.front().second;
  if (n < v.size()) {  // the rest stays a record of its type
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    return;
  }
  control_.erase(control_.begin());  // a few at most
}

void engine::queue_control(unsigned char type, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  control_.emplace_back(type, std::vector<std::byte>(b, b + n));
}

void engine::refuse_sends_for_key_update() noexcept {
  send_refused_ = make_error_code(errc::protocol_error);
  detail_ = "the peer asked for a TLS 1.3 key update, which the kernel's send keys cannot follow";
}

bool engine::send_output_now() noexcept {
  for (std::span<const std::byte> out = output(); !out.empty(); out = output()) {
    const ssize_t n = ::send(fd_, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      consume_output(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;  // full (or failing): the ring sends the rest later, as without the offload
  }
  return true;
}

step engine::handshake() noexcept {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return {need::done};
  return fail(r, SSL_get_error(ssl_, r), true);
}

step engine::read(std::span<std::byte> buf) noexcept {
  ERR_clear_error();
  std::size_t n = 0;
  const int r = SSL_read_ex(ssl_, buf.data(), buf.size(), &n);
  if (r == 1) return {need::done, n};
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_ZERO_RETURN) return {need::done, 0};  // close_notify
  return fail(r, e, false);
}

step engine::write(std::span<const std::byte> buf) noexcept {
  ERR_clear_error();
  std::size_t n = 0;
  const int r = SSL_write_ex(ssl_, buf.data(), buf.size(), &n);
  if (r == 1) return {need::done, n};
  return fail(r, SSL_get_error(ssl_, r), false);
}

step engine::shutdown() noexcept {
  ERR_clear_error();
  const int r = SSL_shutdown(ssl_);
  if (r >= 0) return {need::done};  // 0: ours is written, the peer's has not come (not awaited)
  return fail(r, SSL_get_error(ssl_, r), false);
}

std::error_code engine::end_of_input() noexcept {
  return peer_closed() ? std::error_code{} : make_error_code(errc::truncated);
}

step engine::fail(int, int e, bool in_handshake) noexcept {
  if (e == SSL_ERROR_WANT_READ) return {need::input};
  if (e == SSL_ERROR_WANT_WRITE) return {need::output};
  // The first error on OpenSSL's queue says why; keep its text for the logs.
  const unsigned long err = ERR_peek_error();
  char text[256] = {};
  if (err != 0) ERR_error_string_n(err, text, sizeof text);
  const int reason = ERR_GET_REASON(err);
  errc code = in_handshake ? errc::handshake_failed : errc::protocol_error;
  if (in_handshake && SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE &&
      SSL_get_verify_result(ssl_) != X509_V_OK) {
    code = errc::certificate_rejected;
    detail_ = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
  } else {
    switch (reason) {
      case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
      case SSL_R_DATA_LENGTH_TOO_LONG:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_EXCESSIVE_MESSAGE_SIZE:
        code = errc::record_too_large;
        break;
      case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        code = errc::truncated;
        break;
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
        code = errc::certificate_rejected;
        break;
      default:
        break;
    }
    detail_ = err != 0 ? text : "TLS error without a reason (SSL_get_error " + std::to_string(e) + ")";
  }
  ERR_clear_error();
  if (!fatal_) fatal_ = make_error_code(code);
  return {need::error, 0, make_error_code(code)};
}

}  // namespace ringsock::tls::detail
