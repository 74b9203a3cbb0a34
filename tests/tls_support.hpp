// Test certificates, made at test time (never committed keys): a CA, a server certificate it
// signed for localhost and 127.0.0.1, one that expired, and one from a CA nobody trusts; PEM
// text and files in a fresh directory (removed with the object).
#pragma once

#include <string>

#include "ringsock/tls.hpp"

namespace test {

struct tls_files {
  std::string dir;
  std::string ca_pem, ca_file;                   // the trusted CA
  std::string cert_pem, key_pem, cert_file, key_file;  // localhost / 127.0.0.1, signed by it
  std::string expired_cert_pem, expired_key_pem;       // the same names, expired yesterday
  std::string stranger_cert_pem, stranger_key_pem;     // signed by another CA
  tls_files();
  ~tls_files();
  tls_files(const tls_files&) = delete;
  tls_files& operator=(const tls_files&) = delete;
};

// One set per test program.
const tls_files& tls_material();

// Contexts on that set: a server with its localhost certificate and key; a client that
// trusts its CA (and verifies, the default).
ringsock::tls::context tls_server_context();
ringsock::tls::context tls_client_context();

}  // namespace test
