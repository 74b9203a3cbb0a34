// The TLS record layer without I/O: an OpenSSL SSL object whose network side is a BIO pair of
// fixed buffers. The stream (lib/tls/stream.cpp) moves bytes between that pair and the socket;
// the fuzz harness (tests/fuzz/fuzz_tls.cpp) feeds it directly. Internal.
//
//   input    input_window() is where received bytes go (commit_input(n) hands them over)
//   output   output() is what the record layer wrote for the peer (consume_output(n) after sending)
//   steps    handshake(), read(), write(), shutdown() each run OpenSSL once and say what they
//            need: done (with a value), more input, room for output, or an error
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <coroutine>
#include <cstddef>
#include <span>
#include <string>
#include <system_error>

namespace ringsock::tls::detail {

enum class need { done, input, output, error };

struct step {
  need what;
  std::size_t value = 0;  // done: bytes read (0: close_notify) or taken
  std::error_code ec{};   // error
};

class engine {
 public:
  // Sizes of the two fixed buffers: what the peer sent and OpenSSL has not read yet, and what
  // OpenSSL wrote and the socket has not sent yet (four full records).
  static constexpr std::size_t input_size = 32 * 1024, output_size = 64 * 1024;

  // Throws std::bad_alloc when OpenSSL cannot make the objects.
  engine(SSL_CTX* ctx, bool server);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  std::span<std::byte> input_window() noexcept;
  void commit_input(std::size_t n) noexcept;
  std::span<const std::byte> output() noexcept;
  void consume_output(std::size_t n) noexcept;
  bool has_output() noexcept { return BIO_ctrl_pending(network_) > 0; }

  step handshake() noexcept;
  step read(std::span<std::byte> buf) noexcept;
  step write(std::span<const std::byte> buf) noexcept;
  // Writes close_notify (done once it is in the output).
  step shutdown() noexcept;
  // The peer ended the TCP stream: what that means now (truncated, unless close_notify came).
  std::error_code end_of_input() noexcept;

  bool handshake_done() const noexcept { return SSL_is_init_finished(ssl_) == 1; }
  bool peer_closed() const noexcept { return (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0; }
  SSL* ssl() const noexcept { return ssl_; }
  const std::string& last_error_detail() const noexcept { return detail_; }
  // The first fatal TLS error this stream met (empty: none); after it OpenSSL writes nothing.
  std::error_code fatal() const noexcept { return fatal_; }

  // Flags the stream keeps here (one operation of each kind at a time).
  bool receiving = false, sending = false, flushing = false, shut = false, handshaking = false;
  bool host_set = false;  // a client's set_host_name came (the name its check needs)
  std::coroutine_handle<> flush_waiter{};  // an operation waiting for its turn to send

 private:
  // Translates an OpenSSL failure (SSL_get_error's `e` after `r`) into a step.
  step fail(int r, int e, bool in_handshake) noexcept;

  SSL* ssl_ = nullptr;
  BIO* network_ = nullptr;  // our end of the pair (OpenSSL's end belongs to ssl_)
  std::string detail_;
  std::error_code fatal_;
};

}  // namespace ringsock::tls::detail
