// bench peer "raw-uring": hand-written C on liburing, the ceiling an io_uring library can reach
// (README.md, "Benchmarks"): SINGLE_ISSUER|DEFER_TASKRUN, a registered ring fd, multishot accept, multishot
// recv into a provided-buffer ring (256 x 32 KiB), echo straight from those buffers with one send
// in flight per connection, one submit_and_wait per loop turn. Modes: echo and http
// (http_min.h; responses are sent from static memory). Prints "PORT <n>" once listening on
// 127.0.0.1.   raw_uring echo|http [port]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_min.h"

#define NBUF 256
#define BUFSZ (32 * 1024)
#define BGID 7
#define QMAX NBUF
#define MAXFD 65536

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

struct conn {
  unsigned short q_bid[QMAX];
  unsigned q_off[QMAX], q_len[QMAX];
  int q_head, q_count;
  int sending, recv_done, starved;
  // http mode
  unsigned responses;    // keep-alive answers still to send
  int close_response;    // then one last answer (1: "Connection: close", 2: 431), then shutdown
  size_t resp_off;       // progress in the answer being sent
  size_t in_len;
  char in[2 * HTTP_MAX_HEADER];
};

static int http_mode;

static struct io_uring ring;
static struct io_uring_buf_ring* br;
static char* bufs;
static struct conn* conns[MAXFD];
static int starved[MAXFD], nstarved;

static struct io_uring_sqe* sqe_get(void) {
  struct io_uring_sqe* s;
  while (!(s = io_uring_get_sqe(&ring))) io_uring_submit(&ring);
  return s;
}

// liburing 2.3 has no io_uring_setup_buf_ring: map the ring ourselves and register it.
static void setup_buffers(void) {
  size_t size = NBUF * sizeof(struct io_uring_buf);
  br = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED) { perror("mmap"); exit(1); }
  struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUF, .bgid = BGID};
  int r = io_uring_register_buf_ring(&ring, &reg, 0);
  if (r) { fprintf(stderr, "register_buf_ring: %s\n", strerror(-r)); exit(1); }
  io_uring_buf_ring_init(br);
  bufs = aligned_alloc(4096, (size_t)NBUF * BUFSZ);
  for (int i = 0; i < NBUF; ++i)
    io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i,
                          io_uring_buf_ring_mask(NBUF), i);
  io_uring_buf_ring_advance(br, NBUF);
}

static void arm_recv(int fd) {
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = BGID;
  io_uring_sqe_set_data64(s, ((unsigned long long)fd << 8) | OP_RECV);
}

static void recycle(unsigned short bid) {
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUF), 0);
  io_uring_buf_ring_advance(br, 1);
  // Connections whose multishot recv ended with ENOBUFS get it back now.
  while (nstarved > 0) {
    int fd = starved[--nstarved];
    if (conns[fd] && conns[fd]->starved) {
      conns[fd]->starved = 0;
      arm_recv(fd);
    }
  }
}

static void start_send(int fd, struct conn* c) {
  int i = c->q_head;
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_send(s, fd, bufs + (size_t)c->q_bid[i] * BUFSZ + c->q_off[i], c->q_len[i], MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, ((unsigned long long)fd << 8) | OP_SEND);
  c->sending = 1;
}

// The answer being sent: a keep-alive one while any are owed, then the last one.
static const char* http_answer_of(const struct conn* c, size_t* n) {
  if (c->responses) { *n = sizeof http_ok - 1; return http_ok; }
  if (c->close_response == 2) { *n = sizeof http_431 - 1; return http_431; }
  *n = sizeof http_ok_close - 1;
  return http_ok_close;
}

static void http_send(int fd, struct conn* c) {
  size_t n;
  const char* r = http_answer_of(c, &n);
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_send(s, fd, r + c->resp_off, n - c->resp_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, ((unsigned long long)fd << 8) | OP_SEND);
  c->sending = 1;
}

// http: takes the received block (recycling its buffer at once), answers complete requests.
static void http_receive(int fd, struct conn* c, unsigned short bid, int len) {
  size_t room = sizeof c->in - c->in_len;
  size_t n = (size_t)len < room ? (size_t)len : room;
  memcpy(c->in + c->in_len, bufs + (size_t)bid * BUFSZ, n);
  c->in_len += n;
  recycle(bid);
  size_t end;
  while (!c->close_response && (end = http_request_end(c->in, c->in_len)) > 0) {
    if (http_wants_close(c->in, end)) c->close_response = 1;
    else c->responses++;
    memmove(c->in, c->in + end, c->in_len - end);
    c->in_len -= end;
  }
  if (!c->close_response && c->in_len >= HTTP_MAX_HEADER) {  // headers too long: 431, close
    c->close_response = 2;
    c->in_len = 0;
  }
  if (c->close_response) c->in_len = 0;  // nothing after the last answer is read
  if (!c->sending && (c->responses || c->close_response)) http_send(fd, c);
}

static void maybe_close(int fd, struct conn* c) {
  if (c->recv_done && !c->sending) {
    while (c->q_count > 0) {
      recycle(c->q_bid[c->q_head]);
      c->q_head = (c->q_head + 1) % QMAX;
      c->q_count--;
    }
    close(fd);
  }
}

static void arm_accept(int lfd) {
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, OP_ACCEPT);
}

int main(int argc, char** argv) {
  http_mode = argc > 1 && !strcmp(argv[1], "http");
  int port = argc > 2 ? atoi(argv[2]) : 0;
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
            IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = 16384;
  int r = io_uring_queue_init_params(512, &ring, &p);
  if (r) { fprintf(stderr, "queue_init: %s\n", strerror(-r)); return 1; }
  io_uring_register_ring_fd(&ring);
  setup_buffers();

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr*)&sa, sizeof sa) || listen(lfd, 4096)) { perror("listen"); return 1; }
  socklen_t len = sizeof sa;
  getsockname(lfd, (struct sockaddr*)&sa, &len);
  printf("PORT %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  arm_accept(lfd);

  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      unsigned long long ud = cqe->user_data;
      int op = (int)(ud & 0xff), fd = (int)(ud >> 8), res = cqe->res;
      int more = cqe->flags & IORING_CQE_F_MORE;
      if (op == OP_ACCEPT) {
        if (res >= 0 && res < MAXFD) {
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (!conns[res]) conns[res] = malloc(sizeof(struct conn));
          memset(conns[res], 0, offsetof(struct conn, in));  // not the 16 KiB input buffer
          arm_recv(res);
        } else if (res >= 0) {
          close(res);
        }
        if (!more) arm_accept(lfd);
      } else if (op == OP_RECV) {
        struct conn* c = conns[fd];
        if (res > 0 && http_mode) {
          http_receive(fd, c, (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT), res);
          if (!more) arm_recv(fd);
        } else if (res > 0) {
          int tail = (c->q_head + c->q_count) % QMAX;
          c->q_bid[tail] = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
          c->q_off[tail] = 0;
          c->q_len[tail] = (unsigned)res;
          c->q_count++;
          if (!c->sending) start_send(fd, c);
          if (!more) arm_recv(fd);
        } else if (res == -ENOBUFS) {
          c->starved = 1;  // healthy connection, no buffer: re-armed when one returns
          starved[nstarved++] = fd;
        } else {
          c->recv_done = 1;
          maybe_close(fd, c);
        }
      } else if (op == OP_SEND) {
        struct conn* c = conns[fd];
        c->sending = 0;
        if (res <= 0) {
          shutdown(fd, SHUT_RDWR);  // the recv ends, then maybe_close
          while (c->q_count > 0) {
            recycle(c->q_bid[c->q_head]);
            c->q_head = (c->q_head + 1) % QMAX;
            c->q_count--;
          }
          maybe_close(fd, c);
          continue;
        }
        if (http_mode) {
          size_t n;
          http_answer_of(c, &n);
          c->resp_off += (size_t)res;
          if (c->resp_off < n) { http_send(fd, c); continue; }
          c->resp_off = 0;
          if (c->responses) c->responses--;
          else { c->close_response = 0; shutdown(fd, SHUT_RDWR); }  // the recv then ends
          if (c->responses || c->close_response) http_send(fd, c);
          else maybe_close(fd, c);
          continue;
        }
        int i = c->q_head;
        c->q_off[i] += (unsigned)res;
        c->q_len[i] -= (unsigned)res;
        if (c->q_len[i] == 0) {
          recycle(c->q_bid[i]);
          c->q_head = (c->q_head + 1) % QMAX;
          c->q_count--;
        }
        if (c->q_count > 0) start_send(fd, c);
        else maybe_close(fd, c);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
