// The ring layer: one io_uring instance and nothing above it (no coroutines, no sockets, no
// listeners). Internal: users reach it only through io_context.
//
//   setup      newest setup flags first, stepping down on EINVAL (the fallback table in ring.cpp)
//   SQEs       reserve_sqes(n) makes room for n consecutive SQEs (submitting, and reaping when the
//              CQ is full) and returns the first; next_sqe() takes the others
//   submit     flush() hands prepared SQEs to the kernel; enter()/enter_for() also wait
//   reap       every CQE is dispatched to the operation its user_data names (operation::done),
//              in the kernel's order, exactly once, also when a callback re-enters the loop
//   counters   ring_counters; cqes_due() = CQEs still to come that refer to live memory
//   buffers    the provided-buffer ring (detail/buffer_ring.hpp) receives take their bytes from
//   faults     the test-only fault plan sees every SQE before the kernel does
#pragma once

#include <liburing.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <thread>

#include "ringsock/detail/buffer_ring.hpp"
#include "ringsock/detail/operation.hpp"
#ifdef RINGSOCK_FAULT_INJECTION
#include "ringsock/testing/fault_plan.hpp"
#endif

namespace ringsock {

// What the kernel accepted at setup (probed once; fallbacks are taken silently).
struct ring_features {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool registered_ring_fd = false;
  bool buffer_ring = false;          // receives take their buffers from a provided-buffer ring
  bool incremental_buffers = false;  // ... consumed incrementally (IOU_PBUF_RING_INC, 6.12+)
  bool multishot_receive = false;    // stream receives run as one persistent multishot (6.0+)
  bool msg_ring = false;             // rings message each other (IORING_OP_MSG_RING, 5.18+)
  bool send_zc = false;  // large sends go zero-copy (io_context::params::send_zc_threshold > 0,
                         // and the kernel has IORING_OP_SEND_ZC with usage reports, 6.2+)
};

}  // namespace ringsock

namespace ringsock::detail {

// Zero-copy send flags newer than liburing 2.3's header (the kernel's values).
#ifdef IORING_SEND_ZC_REPORT_USAGE
inline constexpr unsigned send_zc_report_usage = IORING_SEND_ZC_REPORT_USAGE;
inline constexpr unsigned notif_usage_zc_copied = IORING_NOTIF_USAGE_ZC_COPIED;
#else
inline constexpr unsigned send_zc_report_usage = 1U << 3;   // 6.2: the notification says
inline constexpr unsigned notif_usage_zc_copied = 1U << 31;  // ... whether the kernel copied
#endif

struct ring_counters {
  std::uint64_t sqes_submitted = 0;  // SQEs handed to the kernel
  std::uint64_t enter_calls = 0;     // io_uring_enter system calls
  std::uint64_t cqes = 0;            // completions reaped
};

class ring {
 public:
  // Throws ring_setup_error (cause and remedy in what()) when io_uring is unavailable.
  // `send_zc`: asks the kernel whether it takes zero-copy sends that report a copy (one SQE,
  // waited for, before anything else is submitted); features().send_zc says the answer.
  ring(unsigned sq_entries, unsigned cq_entries, bool send_zc = false);
  ~ring();
  // Registers the provided-buffer ring (count buffers of size bytes; count 0: none). A refusal
  // is not an error: receives then go without it, and features() says so.
  void setup_buffers(unsigned count, unsigned size) noexcept;
  buffer_ring& buffers() noexcept { return buffers_; }
  const buffer_ring& buffers() const noexcept { return buffers_; }
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;

  const ring_features& features() const noexcept { return features_; }
  const ring_counters& counters() const noexcept { return counters_; }

  // Room for n consecutive SQEs (a linked pair goes to the kernel in one submission); returns
  // the first. Submits what is queued when the SQ is full, reaping when the CQ is full too.
  io_uring_sqe* reserve_sqes(unsigned n = 1);
  // One of the SQEs reserve_sqes(n) made room for, after the first.
  io_uring_sqe* next_sqe() noexcept { return take_sqe(); }
  // `n` more CQEs will refer to live memory: the owner drains them before freeing it.
  void expect_cqes(unsigned n = 1) noexcept { cqes_due_ += n; }
  std::size_t cqes_due() const noexcept { return cqes_due_; }

  // Fire-and-forget SQEs (user_data 0: their CQEs are dropped).
  void prep_cancel(const void* target) noexcept;  // by user_data
  void prep_cancel_fd(int fd) noexcept;            // every request on fd
  void prep_cancel_all() noexcept;                 // every request in the kernel
  void prep_close(int fd) noexcept;
  // A message to another ring (IORING_OP_MSG_RING, 5.18+): that ring gets a CQE with user_data
  // `data` and res `value`; this ring gets one with user_data `self` (res 0, or -errno when
  // nothing was posted there). The caller expects both.
  void prep_message(int target_ring_fd, std::uint64_t data, std::uint32_t value, void* self) noexcept;
  // This ring's descriptor, for other rings' messages (not the registered index).
  int fd() const noexcept { return uring_.ring_fd; }

  // Submits what is prepared (nothing when nothing is) and runs the task work it queued; the
  // CQEs are reaped by the next enter.
  void flush() noexcept;
  // Submits and, with `wait`, blocks for at least one CQE; then reaps.
  void enter(bool wait) noexcept;
  // Submits and blocks for at most `limit` for one CQE; then reaps.
  void enter_for(std::chrono::nanoseconds limit) noexcept;
  // Dispatches every CQE (see the header comment).
  void reap() noexcept;

#ifdef RINGSOCK_FAULT_INJECTION
  void set_fault_plan(testing::fault_plan* p) noexcept { faults_ = p; }
#endif

 private:
  void before_submit() noexcept;
  void probe_send_zc() noexcept;
  // The next SQE, where reserve_sqes made room (io_uring_get_sqe would check for room again).
  // No SQE128 or SQPOLL here: one slot per SQE, and the kernel moves the head only in our enter.
  // The fields a slot's last user may have set are cleared as liburing 2.6+'s get_sqe does: its
  // prep helpers no longer clear them (2.3's do; the stores are then twice, on one cache line).
  io_uring_sqe* take_sqe() noexcept {
    io_uring_sqe* sqe = &uring_.sq.sqes[uring_.sq.sqe_tail++ & uring_.sq.ring_mask];
    sqe->flags = 0;
    sqe->ioprio = 0;
    sqe->rw_flags = 0;
    sqe->buf_index = 0;
    sqe->personality = 0;
    sqe->file_index = 0;
    sqe->addr3 = 0;
    sqe->__pad2[0] = 0;
    return sqe;
  }
  void count_enter(int r) noexcept {
    ++counters_.enter_calls;
    if (r > 0) counters_.sqes_submitted += static_cast<unsigned>(r);
  }

  io_uring uring_{};
  buffer_ring buffers_;  // after uring_: its memory outlives the io_uring
  std::thread::id owner_ = std::this_thread::get_id();  // SQEs are prepared on this thread only
  ring_features features_{};
  ring_counters counters_{};
  std::size_t cqes_due_ = 0;
#ifdef RINGSOCK_FAULT_INJECTION
  testing::fault_plan* faults_ = nullptr;
#endif
};

// ---- inline hot path ----

#ifdef RINGSOCK_FAULT_INJECTION
inline void ring::before_submit() noexcept {
  if (faults_) faults_->before_submit(uring_);
}
#else
inline void ring::before_submit() noexcept {}
#endif

inline io_uring_sqe* ring::reserve_sqes(unsigned n) {
  assert(std::this_thread::get_id() == owner_ && "an SQE prepared off the context's thread");
#ifdef RINGSOCK_FAULT_INJECTION
  if (faults_) faults_->before_acquire(uring_);
#endif
  while (uring_.sq.ring_entries - (uring_.sq.sqe_tail - __atomic_load_n(uring_.sq.khead, __ATOMIC_RELAXED)) < n)
      [[unlikely]] {
    before_submit();
    int r = io_uring_submit(&uring_);
    count_enter(r);
    if (r < 0 && r != -EBUSY && r != -EAGAIN && r != -EINTR) std::terminate();
    if (r <= 0) reap();  // the CQ is full: make room, then try again
  }
  return take_sqe();
}

}  // namespace ringsock::detail
