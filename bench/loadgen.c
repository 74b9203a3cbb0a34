// bench/loadgen: a single-threaded epoll load generator for the echo workloads of README.md "Benchmarks".
//   loadgen pingpong HOST PORT CONNS SIZE SECONDS   -> messages/s, p50/p99 round trip
//   loadgen stream   HOST PORT CONNS CHUNK SECONDS  -> MB/s echoed back
//   loadgen churn    HOST PORT CONCURRENCY SECONDS  -> connections/s (connect, 1 byte, echo, RST)
//   loadgen idle     HOST PORT CONNS SECONDS        -> opens CONNS connections, prints "READY n",
//                                                     holds them SECONDS (or until stdin closes)
// Every echoed byte is checked against what was sent; a mismatch is reported and exits 2.
// Output: one line of key=value pairs, e.g. "mode=pingpong units=123456 seconds=5.00 ...".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct sockaddr_in target;

static int open_conn(int nonblock_connect) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock_connect ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr*)&target, sizeof target) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  if (!nonblock_connect) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void fail(const char* what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

// ---- ping-pong ----
struct pp {
  int fd;
  size_t got;
  size_t sent;
  double start;
  unsigned seq;
};

static void pp_send(struct pp* c, char* out, size_t size) {
  memset(out, (int)(c->seq & 0xff), size);
  c->sent = 0;
  c->start = now();
  while (c->sent < size) {
    ssize_t n = write(c->fd, out + c->sent, size - c->sent);
    if (n > 0) c->sent += (size_t)n;
    else if (n < 0 && errno != EAGAIN) fail("write");
    // A small message fits the empty send buffer; EAGAIN here is not expected but tolerated.
  }
}

static int pingpong(int conns, size_t size, double seconds) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct pp* cs = calloc((size_t)conns, sizeof *cs);
  char* out = malloc(size);
  char* in = malloc(size);
  size_t cap = 1 << 20, nlat = 0;
  double* lat = malloc(cap * sizeof *lat);
  for (int i = 0; i < conns; ++i) {
    cs[i].fd = open_conn(0);
    if (cs[i].fd < 0) fail("connect");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  for (int i = 0; i < conns; ++i) pp_send(&cs[i], out, size);
  long long msgs = 0;
  const double t0 = now(), end = t0 + seconds;
  struct epoll_event evs[256];
  for (;;) {
    double t = now();
    if (t >= end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; ++i) {
      struct pp* c = evs[i].data.ptr;
      for (;;) {
        ssize_t r = read(c->fd, in, size - c->got);
        if (r > 0) {
          for (ssize_t k = 0; k < r; ++k)
            if ((unsigned char)in[k] != (c->seq & 0xff)) {
              fprintf(stderr, "loadgen: echo mismatch\n");
              exit(2);
            }
          c->got += (size_t)r;
          if (c->got == size) {
            double rtt = now() - c->start;
            if (nlat < cap) lat[nlat++] = rtt;
            ++msgs;
            c->got = 0;
            ++c->seq;
            pp_send(c, out, size);
          }
          continue;
        }
        if (r == 0) { fprintf(stderr, "loadgen: server closed\n"); exit(2); }
        if (errno == EAGAIN) break;
        fail("read");
      }
    }
  }
  double elapsed = now() - t0;
  qsort(lat, nlat, sizeof *lat, cmp_double);
  double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)(nlat * 0.99)] : 0;
  printf("mode=pingpong units=%lld seconds=%.3f per_second=%.1f p50_us=%.1f p99_us=%.1f\n", msgs,
         elapsed, msgs / elapsed, p50 * 1e6, p99 * 1e6);
  return 0;
}

// ---- stream ----
struct st {
  int fd;
  unsigned long long written, read;
};

static int stream(int conns, size_t chunk, double seconds) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct st* cs = calloc((size_t)conns, sizeof *cs);
  char* out = malloc(chunk);
  char* in = malloc(chunk);
  for (size_t i = 0; i < chunk; ++i) out[i] = (char)(i % 251);  // the pattern restarts per chunk
  for (int i = 0; i < conns; ++i) {
    cs[i].fd = open_conn(0);
    if (cs[i].fd < 0) fail("connect");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  unsigned long long total = 0;
  const double t0 = now(), end = t0 + seconds;
  struct epoll_event evs[64];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 64, 100);
    for (int i = 0; i < n; ++i) {
      struct st* c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) {
        // Keep at most 4 chunks unechoed: writing without bound would only fill buffers.
        if (c->written - c->read < 4 * chunk) {
          size_t off = (size_t)(c->written % chunk);
          ssize_t w = write(c->fd, out + off, chunk - off);
          if (w > 0) c->written += (unsigned long long)w;
          else if (w < 0 && errno != EAGAIN) fail("write");
        }
      }
      if (evs[i].events & EPOLLIN) {
        ssize_t r = read(c->fd, in, chunk);
        if (r > 0) {
          for (ssize_t k = 0; k < r; ++k)
            if (in[k] != (char)(((c->read + (unsigned long long)k) % chunk) % 251)) {
              fprintf(stderr, "loadgen: stream mismatch\n");
              exit(2);
            }
          c->read += (unsigned long long)r;
          total += (unsigned long long)r;
        } else if (r == 0) {
          fprintf(stderr, "loadgen: server closed\n");
          exit(2);
        } else if (errno != EAGAIN) {
          fail("read");
        }
      }
    }
  }
  double elapsed = now() - t0;
  printf("mode=stream units=%.3f seconds=%.3f per_second=%.2f bytes=%llu\n", total / 1e6, elapsed,
         total / 1e6 / elapsed, total);
  return 0;
}

// ---- churn ----
enum { CONNECTING, WAIT_ECHO };
struct ch {
  int fd;
  int state;
};

static void churn_open(int ep, struct ch* c) {
  c->fd = open_conn(1);
  if (c->fd < 0) fail("connect");
  c->state = CONNECTING;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static int churn(int concurrency, double seconds) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct ch* cs = calloc((size_t)concurrency, sizeof *cs);
  for (int i = 0; i < concurrency; ++i) churn_open(ep, &cs[i]);
  long long done = 0;
  const double t0 = now(), end = t0 + seconds;
  struct epoll_event evs[256];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; ++i) {
      struct ch* c = evs[i].data.ptr;
      if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { errno = err; fail("connect"); }
        char b = 'c';
        if (write(c->fd, &b, 1) != 1) fail("write");
        c->state = WAIT_ECHO;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      } else {
        char b = 0;
        ssize_t r = read(c->fd, &b, 1);
        if (r < 0 && errno == EAGAIN) continue;
        if (r != 1 || b != 'c') { fprintf(stderr, "loadgen: churn echo wrong\n"); exit(2); }
        // Close with RST (SO_LINGER 0): no TIME_WAIT, so ephemeral ports are not exhausted.
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->fd);
        ++done;
        churn_open(ep, c);
      }
    }
  }
  double elapsed = now() - t0;
  printf("mode=churn units=%lld seconds=%.3f per_second=%.1f\n", done, elapsed, done / elapsed);
  return 0;
}

// ---- idle ----
static int idle(int conns, double seconds) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;  // 10,000 connections need more than the usual soft limit
  setrlimit(RLIMIT_NOFILE, &rl);
  int opened = 0;
  for (; opened < conns; ++opened)
    if (open_conn(0) < 0) break;
  printf("READY %d\n", opened);
  fflush(stdout);
  struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  return opened == conns ? 0 : 3;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: loadgen pingpong|stream HOST PORT CONNS SIZE SECONDS\n"
                    "       loadgen churn HOST PORT CONCURRENCY SECONDS\n");
    return 64;
  }
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 64; }
  if (!strcmp(argv[1], "pingpong") && argc == 7)
    return pingpong(atoi(argv[4]), (size_t)atol(argv[5]), atof(argv[6]));
  if (!strcmp(argv[1], "stream") && argc == 7)
    return stream(atoi(argv[4]), (size_t)atol(argv[5]), atof(argv[6]));
  if (!strcmp(argv[1], "churn") && argc == 6) return churn(atoi(argv[4]), atof(argv[5]));
  if (!strcmp(argv[1], "idle") && argc == 6) return idle(atoi(argv[4]), atof(argv[5]));
  fprintf(stderr, "loadgen: bad arguments\n");
  return 64;
}
