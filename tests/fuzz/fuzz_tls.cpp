// libFuzzer: the TLS record layer's server side (lib/tls/engine.hpp) fed arbitrary bytes as the
// client's: it never reads or writes out of bounds, never leaks, and every input ends in a
// handshake still waiting for bytes, a named error, or a finished handshake.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../../lib/tls/engine.hpp"
#include "../tls_support.hpp"
#include "ringsock/tls.hpp"

namespace {
SSL_CTX* server_context() {
  static ringsock::tls::context c = [] {
    ringsock::tls::context x = ringsock::tls::context::server();
    x.use_certificate_chain_pem(test::tls_material().cert_pem);
    x.use_private_key_pem(test::tls_material().key_pem);
    x.set_alpn({"http/1.1"});
    return x;
  }();
  return c.native_handle();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using ringsock::tls::detail::need;
  ringsock::tls::detail::engine e(server_context(), true);
  std::byte plain[4096];
  std::size_t off = 0;
  for (int turn = 0; turn < 256; ++turn) {
    const ringsock::tls::detail::step s = e.handshake_done() ? e.read(plain) : e.handshake();
    for (auto out = e.output(); !out.empty(); out = e.output()) e.consume_output(out.size());
    if (s.what == need::error) {
      if (!s.ec || s.ec.category() != ringsock::tls::error_category()) std::abort();
      break;
    }
    if (s.what == need::done && (!e.handshake_done() || s.value > sizeof plain)) std::abort();
    if (s.what == need::done && e.handshake_done() && s.value == 0 && e.peer_closed()) break;
    if (s.what == need::input || s.what == need::done) {
      if (off == size) break;
      const auto room = e.input_window();
      if (room.empty()) std::abort();  // OpenSSL asked for bytes it has no room for
      const std::size_t n = std::min(room.size(), size - off);
      std::memcpy(room.data(), data + off, n);
      e.commit_input(n);
      off += n;
    }
  }
  return 0;
}
