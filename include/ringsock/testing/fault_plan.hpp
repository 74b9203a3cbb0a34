// Fault injection for tests: compiled in only with the Meson option `fault_injection`
// (`meson setup build -Dfault_injection=true`), off by default; without it this header does not
// compile and the ring layer has no hook at all.
//
// A plan rewrites chosen SQEs just before they are submitted, so the faulty completion comes
// back through the ring like a real one and the real operation never touches the socket:
//   - fail:          the SQE becomes a NOP whose CQE carries -errno (IORING_NOP_INJECT_RESULT),
//                    linked timeout and all; no connection is taken, no byte is read or sent;
//   - short_write:   a send is cut to half its bytes (at least one): a real short write;
//   - end_multishot: a multishot accept (or receive) is armed as a single-shot one, so its first
//                    CQE is also its last (no IORING_CQE_F_MORE) and the library must re-arm;
//   - full_sq:       when an operation asks for an SQE, the SQ is first filled with NOPs, so the
//                    loop meets a full SQ and must flush it before it can go on.
// Every rule counts the operations it matches: the first `skip` pass, then every `every`-th is
// hit, `times` times in all.
#pragma once

#ifndef RINGSOCK_FAULT_INJECTION
#error "ringsock/testing/fault_plan.hpp needs the Meson option fault_injection=true"
#endif

#include <liburing.h>

#include <cstddef>
#include <vector>

namespace ringsock {
class io_context;
}

namespace ringsock::testing {

// message: a ring-to-ring message (IORING_OP_MSG_RING: runtime hand-offs and spawn_on); failed,
// the sender's CQE carries -err and the target ring gets nothing.
enum class fault_target : unsigned char { accept, receive, send, message, any_start };
enum class fault_action : unsigned char { fail, short_write, end_multishot, full_sq };

struct fault_schedule {
  unsigned skip = 0;   // matching operations that pass first
  unsigned every = 1;  // then every n-th one is hit
  unsigned times = 1;  // at most this many hits
};

class fault_plan {
 public:
  // Completions of `target` operations carry -err instead of running (err > 0, an errno).
  fault_plan& fail(fault_target target, int err, fault_schedule when);
  // Sends move half their bytes.
  fault_plan& short_write(fault_schedule when);
  // Multishot accepts end after their first connection (no IORING_CQE_F_MORE).
  fault_plan& end_multishot(fault_schedule when);
  // The same for `target` (accept, or receive: a multishot receive ends after its first piece).
  fault_plan& end_multishot(fault_target target, fault_schedule when);
  // The SQ is full when an operation starts (counted per SQE request of the library).
  fault_plan& full_sq(fault_schedule when);

  // Hits so far: of rule `i` (in the order added), and of all rules.
  unsigned injected(std::size_t i) const { return rules_.at(i).hits; }
  unsigned injected() const noexcept;

  // ---- called by the ring layer ----
  // Rewrites the SQEs prepared since the last submission.
  void before_submit(io_uring& ring) noexcept;
  // An operation asks for SQEs: maybe fill the SQ first.
  void before_acquire(io_uring& ring) noexcept;

 private:
  struct rule {
    fault_target target;
    fault_action action;
    int err;
    fault_schedule when;
    unsigned seen = 0;
    unsigned hits = 0;
  };
  fault_plan& add(fault_target t, fault_action a, int err, fault_schedule when);
  static bool due(rule& r) noexcept;
  void apply(io_uring_sqe& sqe) noexcept;

  std::vector<rule> rules_;
};

// The next io_context made on this thread fails to register its buffer ring with -err: its
// receives then go without one, as on a kernel that refuses it.
void refuse_next_buffer_ring(int err) noexcept;

// Installs `plan` on `ctx` for the scope's lifetime (one plan per context at a time).
class fault_scope {
 public:
  fault_scope(io_context& ctx, fault_plan& plan) noexcept;
  ~fault_scope();
  fault_scope(const fault_scope&) = delete;
  fault_scope& operator=(const fault_scope&) = delete;

 private:
  io_context& ctx_;
};

}  // namespace ringsock::testing
