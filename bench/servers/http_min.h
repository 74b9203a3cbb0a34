/* The minimal HTTP/1.1 of the http mode of README.md "Benchmarks", shared by the bench servers (C and C++):
 * every request (headers end at CRLFCRLF, no body) is answered with "Hello, World!";
 * keep-alive unless the request says "Connection: close". When the headers pending on a
 * connection reach HTTP_MAX_HEADER bytes without ending, the server answers 431 (http_431) and
 * closes the connection; nothing of the oversized request is kept. */
#ifndef RINGSOCK_BENCH_HTTP_MIN_H
#define RINGSOCK_BENCH_HTTP_MIN_H

#include <stddef.h>
#include <string.h>

#define HTTP_MAX_HEADER 8192

static const char http_ok[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static const char http_431[] =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char http_ok_close[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
    "Hello, World!";

/* Length of the first complete request in buf[0, len), or 0 while it is incomplete. */
static inline size_t http_request_end(const char* buf, size_t len) {
  for (size_t i = 3; i < len; ++i)
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
      return i + 1;
  return 0;
}

/* Does the request ask to close ("Connection: close", any case)? */
static inline int http_wants_close(const char* req, size_t n) {
  static const char key[] = "\nconnection:";
  const size_t k = sizeof key - 1;
  for (size_t i = 0; i + k < n; ++i) {
    size_t j = 0;
    while (j < k) {
      char c = req[i + j];
      if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
      if (c != key[j]) break;
      ++j;
    }
    if (j < k) continue;
    size_t v = i + k;
    while (v < n && req[v] == ' ') ++v;
    return n - v >= 5 && (req[v] == 'c' || req[v] == 'C') && (req[v + 1] == 'l' || req[v + 1] == 'L');
  }
  return 0;
}

#endif
