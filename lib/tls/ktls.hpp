// Kernel TLS on the send side (internal). After the handshake OpenSSL hands the send keys to its
// write BIO (the private BIO_CTRL_SET_KTLS control OpenSSL 3 sends to any BIO); ours is a filter
// over the BIO pair (engine.hpp) that passes them to the socket (TCP ULP "tls", TLS_TX), so the
// ring's plain sends carry application data and the kernel encrypts it. From then on what
// OpenSSL still writes (alerts, session tickets) is queued as control records, each sent by one
// sendmsg naming its record type. Receiving stays in user space.
#pragma once

#include <openssl/bio.h>

#include <atomic>
#include <cstddef>
#include <span>
#include <string>

#include "ringsock/detail/socket_ops.hpp"

namespace ringsock::tls::detail {

class engine;

// The filter BIO over `next` for engine `e` (it asks e for the socket and its state). Null when
// OpenSSL cannot make it.
BIO* make_kernel_filter(engine& e, BIO* next) noexcept;

// One control record (type, payload) as one sendmsg with a TLS_SET_RECORD_TYPE message: the
// kernel encrypts it as a record of that type. A short send leaves the rest for another.
struct control_record_op {
  static constexpr const char* name = "tls send";
  static constexpr const char* what = "ringsock: tls: send";
  std::span<const std::byte> buf;
  unsigned char type = 0;
  iovec iov{};
  msghdr msg{};
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(1)]{};
  void check() const noexcept {}
  void prep(io_uring_sqe* sqe, int fd) noexcept;
  std::size_t value(const ringsock::detail::io_request& r) const noexcept {
    return static_cast<std::size_t>(r.res_);
  }
};

// Tests on a kernel without TLS. pretend_available: attempt the offload anyway, skipping the
// ULP (the send-key step then fails as it would where the kernel refuses a cipher), so the
// fallback runs. pretend_taken: also report the keys taken without giving them to the socket,
// so what would be encrypted by the kernel goes out in plaintext (plain TCP ignores the record
// type's control message): a test reads the plumbing's output raw. Counts: how often the keys
// were offered to the socket, and how often that worked.
struct kernel_tls_testing {
  std::atomic<bool> pretend_available{false}, pretend_taken{false};
  std::atomic<unsigned> offered{0}, taken{0};  // streams of any thread count here
  std::string queued_types;  // with pretend_taken (one thread): each control record's type
};
kernel_tls_testing& kernel_tls_hooks() noexcept;

}  // namespace ringsock::tls::detail
