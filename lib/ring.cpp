#include "ringsock/detail/ring.hpp"

#include "ringsock/error.hpp"

#include <atomic>

namespace ringsock::detail {

namespace {
// liburing maps and unmaps a ring's memory with raw system calls, so a thread sanitizer never
// learns that a new ring on another thread reuses the pages of one that is gone, and reports the
// first SQE written there as a race. One read-modify-write when a ring is made and when it goes
// orders the two (a cost paid twice per context, never on the data path).
std::atomic<unsigned> g_ring_lifetimes{0};
}  // namespace

ring::ring(unsigned sq_entries, unsigned cq_entries, bool send_zc) {
  // Newest first; older kernels refuse unknown flags with EINVAL and we step down.
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  const unsigned tries[] = {
      base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      base,
      IORING_SETUP_CQSIZE,
  };
  int r = -EINVAL;
  for (unsigned flags : tries) {
    io_uring_params prm{};
    prm.flags = flags;
    prm.cq_entries = cq_entries;
    r = io_uring_queue_init_params(sq_entries, &uring_, &prm);
    if (r == 0) {
      features_.single_issuer = flags & IORING_SETUP_SINGLE_ISSUER;
      features_.defer_taskrun = flags & IORING_SETUP_DEFER_TASKRUN;
      features_.coop_taskrun = flags & IORING_SETUP_COOP_TASKRUN;
      break;
    }
    if (r != -EINVAL) break;
  }
  if (r < 0) throw ring_setup_error(-r);
  g_ring_lifetimes.fetch_add(1, std::memory_order_acq_rel);
  features_.registered_ring_fd = io_uring_register_ring_fd(&uring_) == 1;
  if (io_uring_probe* p = io_uring_get_probe_ring(&uring_)) {
    features_.msg_ring = io_uring_opcode_supported(p, IORING_OP_MSG_RING);
    io_uring_free_probe(p);
  }
  if (send_zc) probe_send_zc();
}

ring::~ring() {
  buffers_.unregister(uring_);
  g_ring_lifetimes.fetch_add(1, std::memory_order_acq_rel);  // before the pages go
  io_uring_queue_exit(&uring_);
}

void ring::setup_buffers(unsigned count, unsigned size) noexcept {
  if (count == 0) return;
  // Multishot receive came with 6.0, as did IORING_OP_SEND_ZC, which the probe can see.
  if (io_uring_probe* p = io_uring_get_probe_ring(&uring_)) {
    features_.multishot_receive = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
    io_uring_free_probe(p);
  }
  if (!features_.multishot_receive) return;
  if (buffers_.setup(uring_, count, size) != 0) {
    features_.multishot_receive = false;
    return;
  }
  features_.buffer_ring = true;
  features_.incremental_buffers = buffers_.incremental();
}

void ring::probe_send_zc() noexcept {
  io_uring_probe* p = io_uring_get_probe_ring(&uring_);
  if (!p) return;
  const bool opcode = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
  io_uring_free_probe(p);
  if (!opcode) return;
  // The opcode came with 6.0, the usage report with 6.2: a kernel without it fails the SQE
  // with EINVAL while preparing it; one with it gets as far as the descriptor (EBADF).
  io_uring_sqe* sqe = io_uring_get_sqe(&uring_);
  if (!sqe) return;
  io_uring_prep_send_zc(sqe, -1, nullptr, 0, 0, 0);
  sqe->ioprio |= send_zc_report_usage;
  io_uring_sqe_set_data64(sqe, 0);  // a CQE this loop leaves behind is dropped by reap
  if (io_uring_submit(&uring_) != 1) return;
  int res = 0;
  for (bool more = true; more;) {  // a failed zero-copy send may still post its notification
    io_uring_cqe* cqe = nullptr;
    int w;
    while ((w = io_uring_wait_cqe(&uring_, &cqe)) == -EINTR) {
    }
    if (w != 0) return;
    more = cqe->flags & IORING_CQE_F_MORE;
    if (!(cqe->flags & IORING_CQE_F_NOTIF)) res = cqe->res;
    io_uring_cqe_seen(&uring_, cqe);
  }
  features_.send_zc = res != -EINVAL;
}

void ring::prep_cancel(const void* target) noexcept {
  io_uring_sqe* sqe = reserve_sqes(1);
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(target), 0);
  io_uring_sqe_set_data64(sqe, 0);
}

void ring::prep_cancel_fd(int fd) noexcept {
  io_uring_sqe* sqe = reserve_sqes(1);
  io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, 0);
}

void ring::prep_cancel_all() noexcept {
  io_uring_sqe* sqe = reserve_sqes(1);
  io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, 0);
}

void ring::prep_close(int fd) noexcept {
  io_uring_sqe* sqe = reserve_sqes(1);
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, 0);
}

void ring::prep_message(int target_ring_fd, std::uint64_t data, std::uint32_t value,
                        void* self) noexcept {
  io_uring_sqe* sqe = reserve_sqes(1);
  io_uring_prep_msg_ring(sqe, target_ring_fd, value, data, 0);
  io_uring_sqe_set_data(sqe, self);
}

void ring::flush() noexcept {
  if (io_uring_sq_ready(&uring_) == 0) return;
  before_submit();
  // And runs the task work the submission queued (DEFER_TASKRUN runs it only when asked): a
  // cancel then really ends its target now, so a close through the ring releases the socket
  // even when the loop does not run again soon.
  count_enter(io_uring_submit_and_get_events(&uring_));
}

void ring::enter(bool wait) noexcept {
  // Completions already posted (a nested loop inside a callback of an outer reap) are work at
  // hand: dispatch them before ever waiting for the kernel.
  if (io_uring_cq_ready(&uring_) != 0) wait = false;
  before_submit();
  count_enter(wait ? io_uring_submit_and_wait(&uring_, 1) : io_uring_submit_and_get_events(&uring_));
  reap();
}

void ring::enter_for(std::chrono::nanoseconds limit) noexcept {
  if (io_uring_cq_ready(&uring_) != 0) {
    enter(false);
    return;
  }
  __kernel_timespec ts = to_timespec(limit.count());
  io_uring_cqe* cqe = nullptr;
  before_submit();
  count_enter(io_uring_submit_and_wait_timeout(&uring_, &cqe, 1, &ts, nullptr));
  reap();
}

void ring::reap() noexcept {
  // Each CQE is read and the CQ advanced past it before it is dispatched: a completion may
  // resume a coroutine that submits and reaps again (that reap then goes on from the next CQE,
  // and this one finds them taken). No copy into a batch of our own: the head is ours, and on
  // x86 advancing it is a plain store.
  io_uring_cq& cq = uring_.cq;
  for (;;) {
    const unsigned head = *cq.khead;
    if (head == io_uring_smp_load_acquire(cq.ktail)) {
      if (!io_uring_cq_has_overflow(&uring_)) return;
      io_uring_get_events(&uring_);  // the kernel holds overflowed CQEs: have them posted
      continue;
    }
    const io_uring_cqe& cqe = cq.cqes[head & cq.ring_mask];  // no CQE32 here: one slot each
    const std::uint64_t data = cqe.user_data;
    const int res = cqe.res;
    const std::uint32_t flags = cqe.flags;
    io_uring_smp_store_release(cq.khead, head + 1);
    ++counters_.cqes;
    // 0: fire-and-forget (cancel, close); LIBURING_UDATA_TIMEOUT: liburing's own wait timeout
    if (data == 0 || data == LIBURING_UDATA_TIMEOUT) continue;
    if (!(flags & IORING_CQE_F_MORE)) --cqes_due_;
    auto* op = reinterpret_cast<operation*>(static_cast<std::uintptr_t>(data));
    op->on_cqe_(op, res, flags);
  }
}

}  // namespace ringsock::detail
