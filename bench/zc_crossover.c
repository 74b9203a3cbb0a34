// Where zero-copy sends start to pay on this machine's path (README "Benchmarks", the
// io_context::params::send_zc_threshold contract): one TCP connection over loopback, a reader
// thread draining it, and a sender that sends SIZE bytes at a time with IORING_OP_SEND or
// IORING_OP_SEND_ZC (waiting for the notification, as ringsock's send does), for every size,
// copy and zero-copy interleaved over ROUNDS rounds. Prints per size: the process's CPU per MB
// (sender and reader together) for each, their ratio, and the share of zero-copy sends whose
// notification said the kernel copied after all (loopback: all of them).
//   zc_crossover [MiB per run = 256] [rounds = 3]
// Numbers are reported, never asserted.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_SEND_ZC_REPORT_USAGE  // liburing 2.3's header lacks them (kernel 6.2)
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

static void* drain(void* arg) {
  int fd = *(int*)arg;
  static char buf[1 << 20];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  return NULL;
}

static double process_cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct outcome {
  double cpu_us_per_mb;
  long sends, copied;
};

// One run: a fresh connection, `total` bytes in sends of `size`. Exits on any error.
static struct outcome run(struct io_uring* ring, size_t size, int zc, size_t total) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (l < 0 || bind(l, (void*)&a, sizeof a) || listen(l, 1) || getsockname(l, (void*)&a, &al)) {
    perror("zc_crossover: listen");
    exit(1);
  }
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (void*)&a, sizeof a)) {
    perror("zc_crossover: connect");
    exit(1);
  }
  int s = accept(l, NULL, NULL);
  pthread_t reader;
  pthread_create(&reader, NULL, drain, &s);
  char* buf = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
  memset(buf, 'x', size);
  struct outcome o = {0, 0, 0};
  size_t sent = 0;
  double c0 = process_cpu();
  while (sent < total) {
    struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (zc) {
      io_uring_prep_send_zc(sqe, c, buf, size, MSG_NOSIGNAL, 0);
      sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    } else {
      io_uring_prep_send(sqe, c, buf, size, MSG_NOSIGNAL);
    }
    io_uring_submit(ring);
    for (int due = 1; due > 0;) {
      struct io_uring_cqe* cqe;
      if (io_uring_wait_cqe(ring, &cqe)) {
        fprintf(stderr, "zc_crossover: wait failed\n");
        exit(1);
      }
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        if ((unsigned)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) ++o.copied;
      } else {
        if (cqe->res < 0) {
          fprintf(stderr, "zc_crossover: send: %s\n", strerror(-cqe->res));
          exit(1);
        }
        sent += (size_t)cqe->res;
        ++o.sends;
        if (cqe->flags & IORING_CQE_F_MORE) ++due;
      }
      --due;
      io_uring_cqe_seen(ring, cqe);
    }
  }
  shutdown(c, SHUT_WR);
  pthread_join(reader, NULL);  // the reader's share of the bytes counts too
  o.cpu_us_per_mb = (process_cpu() - c0) * 1e6 / (double)(total >> 20);
  close(c);
  close(s);
  close(l);
  free(buf);
  return o;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 256;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (mib == 0 || rounds < 1 || rounds > 16) {
    fprintf(stderr, "usage: zc_crossover [MiB per run] [rounds 1-16]\n");
    return 2;
  }
  struct io_uring ring;
  if (io_uring_queue_init(8, &ring, 0)) {
    fprintf(stderr, "zc_crossover: no io_uring\n");
    return 1;
  }
  struct io_uring_probe* p = io_uring_get_probe_ring(&ring);
  if (!p || !io_uring_opcode_supported(p, IORING_OP_SEND_ZC)) {
    printf("zc_crossover: this kernel has no IORING_OP_SEND_ZC: skipped\n");
    return 0;
  }
  io_uring_free_probe(p);
  const size_t sizes[] = {4096, 16384, 65536, 262144, 1048576};
  printf("| send size | copy CPU us/MB | zero-copy CPU us/MB | zero-copy / copy | copied by the kernel |\n");
  printf("|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    double ratio[16], copy[16], zc[16];
    long sends = 0, copied = 0;
    for (int r = 0; r < rounds; ++r) {  // interleaved: the VM's drift hits both alike
      struct outcome a = run(&ring, sizes[i], 0, mib << 20);
      struct outcome b = run(&ring, sizes[i], 1, mib << 20);
      copy[r] = a.cpu_us_per_mb;
      zc[r] = b.cpu_us_per_mb;
      ratio[r] = b.cpu_us_per_mb / a.cpu_us_per_mb;
      sends += b.sends;
      copied += b.copied;
    }
    qsort(copy, rounds, sizeof(double), by_value);
    qsort(zc, rounds, sizeof(double), by_value);
    qsort(ratio, rounds, sizeof(double), by_value);
    printf("| %zu KiB | %.0f | %.0f | %.2f | %.0f%% |\n", sizes[i] >> 10, copy[rounds / 2], zc[rounds / 2],
           ratio[rounds / 2], sends ? 100.0 * (double)copied / (double)sends : 0.0);
    fflush(stdout);
  }
  io_uring_queue_exit(&ring);
  return 0;
}
