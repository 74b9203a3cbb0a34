#include "ringsock/testing/fault_plan.hpp"

#include <cstring>

#include "ringsock/io_context.hpp"

#ifndef IORING_NOP_INJECT_RESULT  // kernel 6.10 UAPI; liburing 2.3's header predates it
#define IORING_NOP_INJECT_RESULT (1U << 0)
#endif

namespace ringsock::detail {
extern thread_local int buffer_ring_refusal;  // lib/buffer_ring.cpp
}

namespace ringsock::testing {

namespace {
bool targets(fault_target t, const io_uring_sqe& sqe) noexcept {
  switch (t) {
    case fault_target::accept:
      return sqe.opcode == IORING_OP_ACCEPT;
    case fault_target::receive:
      return sqe.opcode == IORING_OP_RECV || sqe.opcode == IORING_OP_RECVMSG;
    case fault_target::send:
      return sqe.opcode == IORING_OP_SEND || sqe.opcode == IORING_OP_SEND_ZC ||
             sqe.opcode == IORING_OP_SENDMSG;
    case fault_target::message:
      return sqe.opcode == IORING_OP_MSG_RING;
    case fault_target::any_start:
      return false;
  }
  return false;
}

// The kernel runs the NOP instead and posts `-err` under the operation's own user_data; the
// link flags stay, so a linked timeout is cancelled as it would be after a real failure.
void make_failing_nop(io_uring_sqe& sqe, int err) noexcept {
  const std::uint64_t data = sqe.user_data;
  const std::uint8_t flags = sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_IO_DRAIN);
  std::memset(&sqe, 0, sizeof sqe);
  sqe.opcode = IORING_OP_NOP;
  sqe.flags = flags;
  sqe.rw_flags = IORING_NOP_INJECT_RESULT;  // nop_flags in newer headers
  sqe.len = static_cast<unsigned>(-err);
  sqe.user_data = data;
}
}  // namespace

fault_plan& fault_plan::add(fault_target t, fault_action a, int err, fault_schedule when) {
  if (when.every == 0) when.every = 1;
  rules_.push_back({t, a, err, when});
  return *this;
}

fault_plan& fault_plan::fail(fault_target target, int err, fault_schedule when) {
  return add(target, fault_action::fail, err, when);
}
fault_plan& fault_plan::short_write(fault_schedule when) {
  return add(fault_target::send, fault_action::short_write, 0, when);
}
fault_plan& fault_plan::end_multishot(fault_schedule when) {
  return add(fault_target::accept, fault_action::end_multishot, 0, when);
}
fault_plan& fault_plan::end_multishot(fault_target target, fault_schedule when) {
  return add(target, fault_action::end_multishot, 0, when);
}
fault_plan& fault_plan::full_sq(fault_schedule when) {
  return add(fault_target::any_start, fault_action::full_sq, 0, when);
}

unsigned fault_plan::injected() const noexcept {
  unsigned n = 0;
  for (const rule& r : rules_) n += r.hits;
  return n;
}

bool fault_plan::due(rule& r) noexcept {
  const unsigned k = r.seen++;
  if (r.hits >= r.when.times || k < r.when.skip) return false;
  if ((k - r.when.skip) % r.when.every != 0) return false;
  ++r.hits;
  return true;
}

void fault_plan::apply(io_uring_sqe& sqe) noexcept {
  for (rule& r : rules_) {
    if (!targets(r.target, sqe)) continue;
    switch (r.action) {
      case fault_action::fail:
        if (due(r)) return make_failing_nop(sqe, r.err);
        break;
      case fault_action::short_write:
        if ((sqe.opcode == IORING_OP_SEND || sqe.opcode == IORING_OP_SEND_ZC) && sqe.len > 1 && due(r)) {
          sqe.len /= 2;
          return;
        }
        break;
      case fault_action::end_multishot:
        if (sqe.opcode == IORING_OP_ACCEPT && (sqe.ioprio & IORING_ACCEPT_MULTISHOT) && due(r)) {
          sqe.ioprio &= ~IORING_ACCEPT_MULTISHOT;
          return;
        }
        if (sqe.opcode == IORING_OP_RECV && (sqe.ioprio & IORING_RECV_MULTISHOT) && due(r)) {
          sqe.ioprio &= ~IORING_RECV_MULTISHOT;
          return;
        }
        break;
      case fault_action::full_sq:
        break;
    }
  }
}

void fault_plan::before_submit(io_uring& ring) noexcept {
  for (unsigned i = ring.sq.sqe_head; i != ring.sq.sqe_tail; ++i)
    apply(ring.sq.sqes[i & ring.sq.ring_mask]);
}

void fault_plan::before_acquire(io_uring& ring) noexcept {
  for (rule& r : rules_) {
    if (r.action != fault_action::full_sq || !due(r)) continue;
    while (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) {  // their CQEs are ignored (user_data 0)
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, 0);
    }
    return;
  }
}

void refuse_next_buffer_ring(int err) noexcept { detail::buffer_ring_refusal = err; }

fault_scope::fault_scope(io_context& ctx, fault_plan& plan) noexcept : ctx_(ctx) {
  ctx_.set_fault_plan(&plan);
}
fault_scope::~fault_scope() { ctx_.set_fault_plan(nullptr); }

}  // namespace ringsock::testing
