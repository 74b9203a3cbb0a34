// Hand-off between threads over IORING_OP_MSG_RING (handoff.hpp).
#include "handoff.hpp"

#include <unistd.h>

#include <cerrno>

#include "acceptor.hpp"
#include "ringsock/detail/ring.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock::detail {

namespace {

// Ring i's CQE: a connection handed to this thread (res: its fd), or -ECANCELED: the accepting
// listener is gone, so nobody feeds this thread's listener any more.
void on_arrival(operation* op, int fd, std::uint32_t) noexcept {
  auto& m = *static_cast<handoff_member*>(op);
  m.to->expect_cqes();  // reap counted this CQE as one this ring expected: it was not
  if (fd < 0) {
    if (m.fed) m.fed->stop_accepting();  // its accepts complete with ECANCELED
  } else {
    ++m.received;
    if (m.fed) {
      m.fed->deliver(fd);
    } else {
      ::close(fd);
      handoff_refused(m);
    }
  }
  m.gate.leave();
}

// The accepting ring's CQE for one message: 0 (posted to ring i) or -errno (nothing was).
void on_sent(operation* op, int res, std::uint32_t) noexcept {
  auto& msg = *static_cast<handoff_group::message*>(op);
  handoff_group& g = *msg.group;
  if (msg.fd < 0) {  // a notice: nothing to give back, never on the free list
    if (res < 0) g.members[msg.target].gate.leave();
    return;
  }
  if (res < 0) {  // nothing was posted: the connection is ours after all
    handoff_member& m = g.members[msg.target];
    m.pending.fetch_sub(1, std::memory_order_relaxed);
    m.gate.leave();
    --g.sent;
    if (g.origin_acceptor) {
      ++g.kept;
      g.origin_acceptor->deliver(msg.fd);
    } else {
      ::close(msg.fd);
      ++g.members[g.origin].refused;
    }
  }
  msg.fd = -1;
  msg.next_free = g.free_;
  g.free_ = &msg;
}

// Sends `value` to member i unless it stopped.
bool post(handoff_group& g, unsigned i, handoff_group::message& msg, std::uint32_t value) noexcept {
  handoff_member& m = g.members[i];
  if (!m.gate.enter()) return false;
  msg.target = i;
  g.origin_ring->prep_message(m.to->fd(), reinterpret_cast<std::uintptr_t>(&m), value, &msg);
  g.origin_ring->expect_cqes();
  return true;
}

}  // namespace

handoff_member::handoff_member() noexcept : operation(&on_arrival) {}
handoff_group::message::message() noexcept : operation(&on_sent) {}

handoff_group::handoff_group(const endpoint& ep, unsigned threads, unsigned origin_index, ring& r,
                             acceptor& a, int fd, std::size_t lim)
    : requested(ep),
      count(threads),
      origin(origin_index),
      members(std::make_unique<handoff_member[]>(threads)),
      listen_fd(fd),
      origin_ring(&r),
      origin_acceptor(&a),
      limit(lim ? lim : 1),
      messages(std::make_unique<message[]>(max_in_flight)),
      notices(std::make_unique<message[]>(threads)) {
  for (unsigned i = 0; i < threads; ++i) {
    members[i].group = this;
    notices[i].group = this;
  }
  for (unsigned i = 0; i < max_in_flight; ++i) {
    messages[i].group = this;
    messages[i].next_free = free_;
    free_ = &messages[i];
  }
}

bool handoff_route(handoff_group& g, int fd) noexcept {
  // The thread with the fewest connections waiting for it, starting the round at `next` so that
  // equals take turns; the accepting thread's own count is its ready queue.
  for (unsigned tries = 0; tries < g.count; ++tries) {
    unsigned best = g.origin;
    std::size_t best_load = g.origin_acceptor ? g.origin_acceptor->queued() : ~std::size_t{0};
    bool found = false;
    for (unsigned k = 0; k < g.count; ++k) {
      const unsigned i = (g.next + k) % g.count;
      std::size_t load;
      if (i == g.origin) {
        load = best_load;
      } else {
        handoff_member& m = g.members[i];
        if (!m.gate.is_open()) continue;
        load = m.pending.load(std::memory_order_relaxed);
        if (load >= g.limit) continue;
      }
      if (!found || load < best_load) {
        best = i;
        best_load = load;
        found = true;
      }
    }
    g.next = (best + 1) % g.count;
    if (best == g.origin || !g.free_) break;
    handoff_group::message* msg = g.free_;
    // Counted before it is posted: the owner may take it the moment it is.
    g.members[best].pending.fetch_add(1, std::memory_order_relaxed);
    if (!post(g, best, *msg, static_cast<std::uint32_t>(fd))) {
      g.members[best].pending.fetch_sub(1, std::memory_order_relaxed);
      continue;  // it stopped just now: choose again
    }
    g.free_ = msg->next_free;
    msg->fd = fd;
    ++g.sent;
    return true;
  }
  ++g.kept;
  return false;
}

void handoff_origin_left(handoff_group& g) noexcept {
  if (!g.origin_acceptor) return;
  g.origin_acceptor = nullptr;
  bool told = false;
  {
    std::lock_guard lock(g.mutex);  // from here no late listen() joins
    g.listen_fd = -1;
    for (unsigned i = 0; i < g.count; ++i) {
      handoff_group::message& n = g.notices[i];
      n.fd = -1;
      if (i != g.origin && post(g, i, n, static_cast<std::uint32_t>(-ECANCELED))) told = true;
    }
  }
  // Once per listener: submitted now, so no fed listener waits for a loop turn that may never come.
  if (told) g.origin_ring->flush();
}

void handoff_taken(handoff_member& m) noexcept {
  m.pending.fetch_sub(1, std::memory_order_relaxed);
}

void handoff_refused(handoff_member& m) noexcept {
  m.pending.fetch_sub(1, std::memory_order_relaxed);
  ++m.refused;
}

void handoff_stopped(handoff_member& m) noexcept { m.gate.shut(); }

void handoff_left(handoff_member& m) noexcept {
  m.gate.shut();
  m.fed = nullptr;
}

void handoff_join(handoff_member& m, ring& r, acceptor& fed) noexcept {
  m.to = &r;
  m.fed = &fed;
  m.gate.open();
}

void handoff_drain(handoff_member& m, io_context& ctx) { m.gate.close(ctx, "runtime hand-off"); }

}  // namespace ringsock::detail
