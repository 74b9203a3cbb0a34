// bench peer "epoll": hand-written C, nonblocking accept4 + level-triggered epoll, one thread.
// Modes: echo (every byte back until EOF) and http (http_min.h). Prints "PORT <n>" once
// listening on 127.0.0.1.   epoll_server echo|http [port]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_min.h"

#define BUF (64 * 1024)

static int http_mode;

struct conn {
  int fd;
  int close_after;                  // http: close once the pending bytes are out
  size_t pending_off, pending_len;  // bytes to write back (echo: what was read)
  size_t in_len;                    // http: request bytes not yet answered
  char buf[BUF];
  char in[2 * HTTP_MAX_HEADER];
};

static void drop(int ep, struct conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

// Writes what is pending; returns 0 when all went out, 1 when the socket is full, -1 on error.
static int flush_pending(struct conn* c) {
  while (c->pending_len > 0) {
    ssize_t w = send(c->fd, c->buf + c->pending_off, c->pending_len, MSG_NOSIGNAL);
    if (w > 0) {
      c->pending_off += (size_t)w;
      c->pending_len -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      return 1;
    } else {
      return -1;
    }
  }
  return 0;
}

// http: answers every complete request in c->in; returns -1 when the headers are too long.
static int http_answer(struct conn* c) {
  size_t end;
  while ((end = http_request_end(c->in, c->in_len)) > 0) {
    int close_it = http_wants_close(c->in, end);
    const char* r = close_it ? http_ok_close : http_ok;
    size_t n = close_it ? sizeof http_ok_close - 1 : sizeof http_ok - 1;
    if (c->pending_off + c->pending_len + n > BUF) return -1;
    memcpy(c->buf + c->pending_off + c->pending_len, r, n);
    c->pending_len += n;
    memmove(c->in, c->in + end, c->in_len - end);
    c->in_len -= end;
    if (close_it) {
      c->close_after = 1;
      return 0;
    }
  }
  if (c->in_len >= HTTP_MAX_HEADER) {  // headers too long: answer 431, then close
    if (c->pending_off + c->pending_len + sizeof http_431 - 1 > BUF) return -1;
    memcpy(c->buf + c->pending_off + c->pending_len, http_431, sizeof http_431 - 1);
    c->pending_len += sizeof http_431 - 1;
    c->in_len = 0;
    c->close_after = 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  http_mode = argc > 1 && !strcmp(argv[1], "http");
  int port = argc > 2 ? atoi(argv[2]) : 0;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr*)&sa, sizeof sa) || listen(lfd, 4096)) { perror("listen"); return 1; }
  socklen_t len = sizeof sa;
  getsockname(lfd, (struct sockaddr*)&sa, &len);
  printf("PORT %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    for (int i = 0; i < n; ++i) {
      struct conn* c = evs[i].data.ptr;
      if (!c) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;  // EAGAIN, or EMFILE: try again on the next readiness
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn* nc = malloc(sizeof *nc);
          nc->fd = fd;
          nc->pending_off = nc->pending_len = nc->in_len = 0;
          nc->close_after = 0;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (c->pending_len > 0) {  // writable again
        int r = flush_pending(c);
        if (r < 0) { drop(ep, c); continue; }
        if (r > 0) continue;
        if (c->close_after) { drop(ep, c); continue; }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      ssize_t r = http_mode ? recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0)
                            : recv(c->fd, c->buf, BUF, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) { drop(ep, c); continue; }
      if (r < 0) continue;
      c->pending_off = 0;
      if (http_mode) {
        c->pending_len = 0;
        c->in_len += (size_t)r;
        if (http_answer(c) < 0) { drop(ep, c); continue; }
      } else {
        c->pending_len = (size_t)r;
      }
      int f = flush_pending(c);
      if (f < 0 || (f == 0 && c->close_after)) { drop(ep, c); continue; }
      if (f > 0) {  // the peer is slow: wait for writability before reading more
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      }
    }
  }
}
