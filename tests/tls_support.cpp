#include "tls_support.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace test {

namespace {

struct key_and_cert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~key_and_cert() {
    EVP_PKEY_free(key);
    X509_free(cert);
  }
};

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("tls_support: ") + what);
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext && X509_add_ext(cert, ext, -1) == 1, "extension");
  X509_EXTENSION_free(ext);
}

// An EC P-256 key and a certificate for `cn`, signed by `issuer` (itself when null), valid
// from `from` to `to` seconds relative to now.
void make(key_and_cert& out, const char* cn, const key_and_cert* issuer, long from, long to, bool ca) {
  out.key = EVP_EC_gen("P-256");
  check(out.key, "key");
  out.cert = X509_new();
  X509_set_version(out.cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(out.cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(out.cert), from);
  X509_gmtime_adj(X509_getm_notAfter(out.cert), to);
  X509_set_pubkey(out.cert, out.key);
  X509_NAME* name = X509_get_subject_name(out.cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* signer_cert = issuer ? issuer->cert : out.cert;
  X509_set_issuer_name(out.cert, X509_get_subject_name(signer_cert));
  if (ca) {
    add_ext(out.cert, signer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(out.cert, signer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(out.cert, signer_cert, NID_basic_constraints, "CA:FALSE");
    add_ext(out.cert, signer_cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_ext(out.cert, signer_cert, NID_ext_key_usage, "serverAuth");
  }
  check(X509_sign(out.cert, issuer ? issuer->key : out.key, EVP_sha256()) > 0, "sign");
}

std::string pem_of(X509* c) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, c);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  check(static_cast<bool>(f), "write");
}

}  // namespace

tls_files::tls_files() {
  char tmpl[] = "/tmp/ringsock-tls-XXXXXX";
  check(::mkdtemp(tmpl) != nullptr, "mkdtemp");
  dir = tmpl;
  key_and_cert ca, server, expired, other_ca, stranger;
  make(ca, "ringsock test CA", nullptr, -3600, 86400, true);
  make(server, "localhost", &ca, -3600, 86400, false);
  make(expired, "localhost", &ca, -2 * 86400, -86400, false);
  make(other_ca, "someone else's CA", nullptr, -3600, 86400, true);
  make(stranger, "localhost", &other_ca, -3600, 86400, false);
  ca_pem = pem_of(ca.cert);
  cert_pem = pem_of(server.cert);
  key_pem = pem_of(server.key);
  expired_cert_pem = pem_of(expired.cert);
  expired_key_pem = pem_of(expired.key);
  stranger_cert_pem = pem_of(stranger.cert);
  stranger_key_pem = pem_of(stranger.key);
  ca_file = dir + "/ca.pem";
  cert_file = dir + "/cert.pem";
  key_file = dir + "/key.pem";
  write_file(ca_file, ca_pem);
  write_file(cert_file, cert_pem);
  write_file(key_file, key_pem);
}

tls_files::~tls_files() {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

const tls_files& tls_material() {
  static const tls_files f;
  return f;
}

ringsock::tls::context tls_server_context() {
  ringsock::tls::context c = ringsock::tls::context::server();
  c.use_certificate_chain_pem(tls_material().cert_pem);
  c.use_private_key_pem(tls_material().key_pem);
  return c;
}

ringsock::tls::context tls_client_context() {
  ringsock::tls::context c = ringsock::tls::context::client();
  c.load_verify_file(tls_material().ca_file);
  return c;
}

}  // namespace test
