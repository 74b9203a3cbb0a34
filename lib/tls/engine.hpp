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
#include <utility>
#include <vector>

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

  // Throws std::bad_alloc when OpenSSL cannot make the objects. `fd`: the socket, for the
  // kernel's send keys when `offload` (ktls.hpp; -1: never).
  engine(SSL_CTX* ctx, bool server, int fd = -1, bool offload = false);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  std::span<std::byte> input_window() noexcept;
  void commit_input(std::size_t n) noexcept;
  std::span<const std::byte> output() noexcept;
  void consume_output(std::size_t n) noexcept;
  bool has_output() noexcept { return BIO_ctrl_pending(network_) > 0 || !control_.empty(); }

  // Kernel TLS (ktls.hpp): the socket encrypts what is sent from now on. The pair's output is
  // then always empty; records OpenSSL writes queue here instead, each with its record type.
  bool kernel_send() const noexcept { return kernel_send_; }
  struct control_record {
    unsigned char type;
    std::span<const std::byte> bytes;
  };
  // Under the kernel's keys a peer's KeyUpdate request cannot be answered (OpenSSL 3.0 would
  // answer at its next SSL_write, which this path never calls, and cannot hand the kernel new
  // keys), and RFC 8446 allows no application data from us before the answer: after a read,
  // this refuses further sends (protocol_error); receiving and close_notify go on.
  void refuse_key_update_if_asked() noexcept {
    if (kernel_send_ && !send_refused_ && SSL_get_key_update_type(ssl_) != SSL_KEY_UPDATE_NONE)
      refuse_sends_for_key_update();
  }
  std::error_code send_refused() const noexcept { return send_refused_; }
  // A handshake that failed without a TLS error (timeout, reset, the peer's end): operations
  // after it end with that error too.
  void fail_handshake(std::error_code ec) noexcept {
    if (!fatal_) fatal_ = ec;
  }
  // The first queued record (false: none).
  bool next_control(control_record& out) const noexcept;
  // n bytes of the first record went out (a short send leaves the rest of it first).
  void consume_control(std::size_t n) noexcept;

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
  friend struct kernel_filter;  // ktls.cpp
  // Sends the pair's output now (no ring send may be running): the bytes written under the old
  // keys, before the socket starts encrypting. False when the socket did not take all of it.
  bool send_output_now() noexcept;
  void queue_control(unsigned char type, const void* p, std::size_t n);
  void refuse_sends_for_key_update() noexcept;

  // Translates an OpenSSL failure (SSL_get_error's `e` after `r`) into a step.
  step fail(int r, int e, bool in_handshake) noexcept;

  SSL* ssl_ = nullptr;
  BIO* network_ = nullptr;  // our end of the pair (OpenSSL's end belongs to ssl_)
  std::string detail_;
  std::error_code fatal_;
  std::error_code send_refused_;
  int fd_ = -1;
  bool offload_ = false;      // may still take the kernel's send side
  bool ulp_ = false;          // the socket has the "tls" upper-layer protocol
  bool kernel_send_ = false;  // the socket has the send keys
  int control_type_ = -1;     // the type OpenSSL named for its writes (-1: none yet)
  // Queued control records (type, payload), first first: rare (tickets, alerts), so nothing is
  // allocated until one comes. A record's bytes stay in place while it is sent whatever is
  // queued meanwhile (moving the outer vector moves each payload's buffer, not its bytes).
  std::vector<std::pair<unsigned char, std::vector<std::byte>>> control_;
};

}  // namespace ringsock::tls::detail
