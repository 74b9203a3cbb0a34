// Kernel TLS on the send side: the filter BIO OpenSSL offers its send keys to (ktls.hpp).
//
// OpenSSL 3 (built with KTLS, as Debian's) calls BIO_ctrl(wbio, BIO_CTRL_SET_KTLS, is_tx,
// crypto_info) when a connection's keys change to the application keys and SSL_OP_ENABLE_KTLS
// is set; crypto_info starts with the kernel's struct tls_crypto_info (<linux/tls.h>). A 1
// answer makes OpenSSL stop encrypting: it then writes plaintext, after
// BIO_CTRL_SET_KTLS_SEND_CTRL_MSG(type) for anything but application data. These controls are
// OpenSSL's own (its socket BIO answers them); their numbers are in <openssl/bio.h>.
#include "ktls.hpp"

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <new>

#include "engine.hpp"
#include "ringsock/tls.hpp"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace ringsock::tls::detail {

namespace {
// OpenSSL's private BIO controls (bio.h lists them in a comment; GET_* are public).
constexpr int ctrl_set_ktls = 72, ctrl_set_ktls_send_ctrl_msg = 74, ctrl_clear_ktls_ctrl_msg = 75;

// The length of the kernel's crypto_info for a cipher (0: not one the kernel takes here).
std::size_t crypto_info_size(const tls_crypto_info& i) noexcept {
  if (i.version != TLS_1_2_VERSION && i.version != TLS_1_3_VERSION) return 0;
  switch (i.cipher_type) {
    case TLS_CIPHER_AES_GCM_128: return sizeof(tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256: return sizeof(tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_AES_CCM_128: return sizeof(tls12_crypto_info_aes_ccm_128);
    case TLS_CIPHER_CHACHA20_POLY1305: return sizeof(tls12_crypto_info_chacha20_poly1305);
    default: return 0;
  }
}
}  // namespace

// The BIO's functions; a struct so that engine can befriend them.
struct kernel_filter {
  static engine& of(BIO* b) noexcept { return *static_cast<engine*>(BIO_get_data(b)); }

  // Offered keys: the receive side stays in user space; the send side moves into the kernel once
  // what was written under the old keys has left (sent here and now: a handshake's last flight
  // fits an empty socket buffer; when it does not, the offload is declined and nothing is lost).
  static long take_keys(engine& e, long is_tx, const void* info) noexcept {
    if (!is_tx || !e.offload_ || e.kernel_send_) return 0;
    // Declined once, declined for good: the keys never move in the middle of a stream.
    e.offload_ = false;
    if (e.flushing) return 0;
    const auto& ci = *static_cast<const tls_crypto_info*>(info);
    const std::size_t len = crypto_info_size(ci);
    if (len == 0) return 0;
    if (!e.ulp_ && !kernel_tls_hooks().pretend_available.load(std::memory_order_relaxed)) {
      if (::setsockopt(e.fd_, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") != 0) return 0;
      e.ulp_ = true;
    }
    if (!e.send_output_now()) return 0;
    kernel_tls_hooks().offered.fetch_add(1, std::memory_order_relaxed);
    if (!kernel_tls_hooks().pretend_taken.load(std::memory_order_relaxed) &&
        ::setsockopt(e.fd_, SOL_TLS, TLS_TX, info, static_cast<socklen_t>(len)) != 0)
      return 0;  // the kernel refused this cipher or these keys
    kernel_tls_hooks().taken.fetch_add(1, std::memory_order_relaxed);
    e.kernel_send_ = true;
    return 1;
  }

  static long ctrl(BIO* b, int cmd, long num, void* ptr) {
    engine& e = of(b);
    switch (cmd) {
      case ctrl_set_ktls: return take_keys(e, num, ptr);
      case BIO_CTRL_GET_KTLS_SEND: return e.kernel_send_ ? 1 : 0;
      case BIO_CTRL_GET_KTLS_RECV: return 0;
      case ctrl_set_ktls_send_ctrl_msg:
        // Until the next one: OpenSSL names the type before each record (after a flush), and a
        // buffering BIO over ours may hand one record on in several writes.
        e.control_type_ = static_cast<int>(num);
        return 0;
      case ctrl_clear_ktls_ctrl_msg:
        e.control_type_ = -1;
        return 0;
      default: return BIO_ctrl(BIO_next(b), cmd, num, ptr);
    }
  }

  static int write(BIO* b, const char* p, std::size_t n, std::size_t* written) {
    engine& e = of(b);
    BIO_clear_retry_flags(b);
    if (e.kernel_send_) {  // plaintext: queued as one record of its type (23: application data)
      const auto type = static_cast<unsigned char>(e.control_type_ >= 0 ? e.control_type_ : 23);
      // A KeyUpdate of our own (handshake message 24) would leave the kernel on the old keys
      // while the peer moves on. OpenSSL 3.0 writes one only at an SSL_write, which this path
      // never makes; should another version write it here, the sends stop as for the peer's
      // request (engine::refuse_key_update_if_asked).
      if (type == 22 && n > 0 && static_cast<unsigned char>(p[0]) == 24) {
        e.refuse_sends_for_key_update();
        return 0;
      }
      try {
        e.queue_control(type, p, n);
        if (kernel_tls_hooks().pretend_taken.load(std::memory_order_relaxed))
          kernel_tls_hooks().queued_types += static_cast<char>(type);
      } catch (const std::bad_alloc&) {
        return 0;
      }
      *written = n;
      return 1;
    }
    const int r = BIO_write_ex(BIO_next(b), p, n, written);
    BIO_copy_next_retry(b);
    return r;
  }

  static int read(BIO* b, char* p, std::size_t n, std::size_t* got) {
    BIO_clear_retry_flags(b);
    const int r = BIO_read_ex(BIO_next(b), p, n, got);
    BIO_copy_next_retry(b);
    return r;
  }

  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
};

kernel_tls_testing& kernel_tls_hooks() noexcept {
  static kernel_tls_testing hooks;
  return hooks;
}

BIO* make_kernel_filter(engine& e, BIO* next) noexcept {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "ringsock kernel TLS send");
    if (m && (BIO_meth_set_write_ex(m, kernel_filter::write) != 1 ||
              BIO_meth_set_read_ex(m, kernel_filter::read) != 1 ||
              BIO_meth_set_ctrl(m, kernel_filter::ctrl) != 1 ||
              BIO_meth_set_create(m, kernel_filter::create) != 1)) {
      BIO_meth_free(m);
      m = nullptr;
    }
    return m;
  }();
  if (!method) return nullptr;
  BIO* b = BIO_new(method);
  if (!b) return nullptr;
  BIO_set_data(b, &e);
  return BIO_push(b, next);
}

void control_record_op::prep(io_uring_sqe* sqe, int fd) noexcept {
  iov = {const_cast<std::byte*>(buf.data()), buf.size()};  // sendmsg only reads it
  msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = type;
  io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
}

}  // namespace ringsock::tls::detail
