// The lifetime rule of ring-to-ring messages (IORING_OP_MSG_RING), shared by the runtime's
// hand-off (handoff.hpp) and spawn_on's inbox (spawn_inbox.hpp): a message names the target's
// ring, so that ring must not go while one is travelling to it.
//
// A sender enter()s before it prepares a message (in_flight is raised, then `open` is read) and
// leave()s once the message is handled (its CQE on the target, or its failure on the sender).
// The target close()s before its ring goes (`open` is cleared, then in_flight is waited for).
// Both steps are sequentially consistent, so a message is either never sent or waited for.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "ringsock/io_context.hpp"

namespace ringsock::detail {

class message_gate {
 public:
  // The target takes messages from now on (what the senders need is set before this).
  void open() noexcept { open_.store(true, std::memory_order_seq_cst); }
  // A sender, before its message: false (and nothing held) when the target takes none.
  bool enter() noexcept {
    in_flight_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst)) return true;
    leave();
    return false;
  }
  // That message is handled (or was never posted).
  void leave() noexcept { in_flight_.fetch_sub(1, std::memory_order_release); }
  // A hint for choosing a target (enter() decides).
  bool is_open() const noexcept { return open_.load(std::memory_order_relaxed); }
  // The target: nothing more is sent (those already inside still arrive).
  void shut() noexcept { open_.store(false, std::memory_order_seq_cst); }
  // The target, before its ring goes: shut, then its loop runs until every sender has left. It
  // never gives up (a message posted to a ring that is gone could land in a reused descriptor),
  // but it says so on stderr every `warn_every` it waits: a sender holds the gate only until the
  // kernel posted its message (submitted at once by spawn_on, by the hand-off's next enter, and
  // at the latest when the sender's ring goes) and it was reaped, so a long wait is a bug to
  // report, not a state to sit in silently. It looks every 50 ms: a sender whose message failed
  // leaves on its own thread, which wakes nobody here.
  void close(io_context& ctx, const char* who,
             std::chrono::milliseconds warn_every = std::chrono::seconds(10)) {
    shut();
    using namespace std::chrono;
    const auto start = steady_clock::now();
    auto next_warning = start + warn_every;
    while (in_flight_.load(std::memory_order_seq_cst) != 0) {
      if (ctx.run_until([this] { return in_flight_.load(std::memory_order_acquire) == 0; },
                        std::min<milliseconds>(warn_every, milliseconds(50))))
        return;
      if (steady_clock::now() < next_warning) continue;
      next_warning += warn_every;
      std::fprintf(stderr,
                   "ringsock: %s: %u ring-to-ring message(s) still travelling to this thread's ring "
                   "after %lld ms; its ring waits for them before it goes\n",
                   who, in_flight_.load(std::memory_order_relaxed),
                   static_cast<long long>(duration_cast<milliseconds>(steady_clock::now() - start).count()));
    }
  }

 private:
  std::atomic<bool> open_{false};
  std::atomic<unsigned> in_flight_{0};
};

}  // namespace ringsock::detail
