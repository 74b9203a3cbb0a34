// tls::context: OpenSSL's SSL_CTX with the library's defaults.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <new>
#include <utility>

#include "ringsock/tls.hpp"

namespace ringsock::tls {

namespace {
[[noreturn]] void fail(const std::string& what) {
  const unsigned long err = ERR_peek_last_error();
  char text[256] = {};
  if (err != 0) ERR_error_string_n(err, text, sizeof text);
  ERR_clear_error();
  throw setup_error("ringsock: tls: " + what + (err != 0 ? std::string(": ") + text : std::string()));
}

SSL_CTX* make(const SSL_METHOD* m) {
  SSL_CTX* c = SSL_CTX_new(m);
  if (!c) fail("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // Renegotiation is a source of attacks and of writes in the middle of a read: refused.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  return c;
}

// ALPN (server): the first of ours, in our order, that the client offered.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned>(ours->size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

std::string wire(const std::vector<std::string>& protocols) {
  std::string w;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw std::invalid_argument("ringsock: tls: an ALPN protocol name must have 1 to 255 bytes");
    w += static_cast<char>(p.size());
    w += p;
  }
  return w;
}
}  // namespace

context::context(ssl_ctx_st* c, bool server) noexcept : ctx_(c), server_(server) {}

context context::server() {
  context c(make(TLS_server_method()), true);
  static const unsigned char id[] = "ringsock";
  SSL_CTX_set_session_id_context(c.ctx_, id, sizeof id - 1);
  return c;
}

context context::client() {
  context c(make(TLS_client_method()), false);
  SSL_CTX_set_verify(c.ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(c.ctx_) != 1) ERR_clear_error();  // none: load_verify_file
  SSL_CTX_set_session_cache_mode(c.ctx_, SSL_SESS_CACHE_CLIENT);
  return c;
}

context::~context() {
  if (ctx_) SSL_CTX_free(ctx_);
}

context::context(context&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)),
      server_(o.server_),
      offload_(o.offload_),
      alpn_wire_(std::move(o.alpn_wire_)) {
  if (server_ && ctx_ && !alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx_, select_alpn, &alpn_wire_);
}

context& context::operator=(context&& o) noexcept {
  if (this != &o) {
    if (ctx_) SSL_CTX_free(ctx_);
    ctx_ = std::exchange(o.ctx_, nullptr);
    server_ = o.server_;
    offload_ = o.offload_;
    alpn_wire_ = std::move(o.alpn_wire_);
    if (server_ && ctx_ && !alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx_, select_alpn, &alpn_wire_);
  }
  return *this;
}

void context::use_certificate_chain_file(const std::string& path) {
  if (SSL_CTX_use_certificate_chain_file(ctx_, path.c_str()) != 1) fail("certificate chain " + path);
}

void context::use_private_key_file(const std::string& path) {
  if (SSL_CTX_use_PrivateKey_file(ctx_, path.c_str(), SSL_FILETYPE_PEM) != 1) fail("private key " + path);
  if (SSL_CTX_check_private_key(ctx_) != 1) fail("private key " + path + " does not match the certificate");
}

void context::use_certificate_chain_pem(std::string_view pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!b) throw std::bad_alloc();
  X509* leaf = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  const bool ok = leaf && SSL_CTX_use_certificate(ctx_, leaf) == 1;
  X509_free(leaf);
  if (ok) {
    SSL_CTX_clear_chain_certs(ctx_);
    while (X509* ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr))
      if (SSL_CTX_add0_chain_cert(ctx_, ca) != 1) X509_free(ca);
    ERR_clear_error();  // the end of the PEM text
  }
  BIO_free(b);
  if (!ok) fail("certificate chain (PEM text)");
}

void context::use_private_key_pem(std::string_view pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!b) throw std::bad_alloc();
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  const bool ok = k && SSL_CTX_use_PrivateKey(ctx_, k) == 1;
  EVP_PKEY_free(k);
  if (!ok) fail("private key (PEM text)");
  if (SSL_CTX_check_private_key(ctx_) != 1) fail("the private key does not match the certificate");
}

void context::load_verify_file(const std::string& path) {
  if (SSL_CTX_load_verify_locations(ctx_, path.c_str(), nullptr) != 1) fail("CA file " + path);
}

void context::set_default_verify_paths() {
  if (SSL_CTX_set_default_verify_paths(ctx_) != 1) fail("the system's CA paths");
}

void context::set_verify_peer(bool on) {
  const int mode = !on ? SSL_VERIFY_NONE
                       : server_ ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;
  SSL_CTX_set_verify(ctx_, mode, nullptr);
}

void context::set_alpn(const std::vector<std::string>& protocols) {
  std::string w = wire(protocols);
  if (server_) {
    alpn_wire_ = std::move(w);
    SSL_CTX_set_alpn_select_cb(ctx_, select_alpn, &alpn_wire_);
    return;
  }
  // 0 is success here (OpenSSL's one inverted return).
  if (SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(w.data()),
                              static_cast<unsigned>(w.size())) != 0)
    fail("ALPN protocols");
}

}  // namespace ringsock::tls
