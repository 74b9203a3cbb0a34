// The cross-thread mailbox of a context: the only way other threads reach it. Posted functions,
// stop requests and cross-thread cancels are queued under one mutex; one eventfd, read through
// the ring, wakes a loop blocked in io_uring_enter. Internal.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#include "ringsock/detail/operation.hpp"
#include "ringsock/detail/socket_core.hpp"

namespace ringsock::detail {

class ring;

// A call the loop makes once on its thread, queued from any thread without allocating (so the
// queueing cannot fail): the fallback wake of runtime::spawn_on's inbox.
struct mail_hook {
  void (*fn)(mail_hook*) noexcept = nullptr;
  mail_hook* next = nullptr;  // (mailbox mutex)
  bool queued = false;        // (mailbox mutex)
};

class mailbox {
 public:
  // Throws socket_error when the eventfd cannot be made.
  mailbox(ring& r, std::size_t max_posted);
  ~mailbox();
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // ---- any thread ----
  // Queues fn; throws queue_full_error (queueing nothing) past max_posted.
  void post(std::function<void()> fn);
  // Asks the loop to return at the end of its turn (wake_loop: it may be blocked: wake it).
  void request_stop(bool wake_loop) noexcept;
  // A stop token fired on another thread: r is cancelled on the loop's thread.
  void queue_cancel(io_request* r);
  // r finished: it must not be cancelled any more (waits for nothing).
  void unqueue_cancel(io_request* r) noexcept;
  // A socket core released on another thread: the loop frees it (take_retired).
  void retire_core(socket_core* c) noexcept;
  // h->fn(h) runs on the loop's thread at its next mail (once, however often it is queued
  // meanwhile). h must outlive the context or its call.
  void queue_hook(mail_hook* h) noexcept;

  // ---- the loop's thread ----
  bool has_mail() const noexcept { return has_mail_.load(std::memory_order_acquire); }
  bool stop_requested() const noexcept { return stop_.load(std::memory_order_acquire); }
  void clear_stop() noexcept { stop_.store(false, std::memory_order_relaxed); }
  // Runs the queued cancels, then the posted functions (each once, in order, also when one of
  // them re-enters the loop); an exception of one goes to on_error(arg, e).
  void run_mail(void (*on_error)(void*, std::exception_ptr), void* arg);
  // The cores retired since the last call (linked through retired_next).
  socket_core* take_retired() noexcept;
  // The context is going away: the wake read is not re-armed after its next CQE.
  void close() noexcept { closing_ = true; }

 private:
  struct wake_op : operation {
    explicit wake_op(mailbox* m) noexcept;
    mailbox* box;
    std::uint64_t value = 0;
  };
  static void on_wake(operation* op, int res, std::uint32_t flags) noexcept;
  void arm_wake() noexcept;
  void wake() noexcept;  // one eventfd write, skipped while one is pending

  ring& ring_;
  int fd_ = -1;
  wake_op wake_op_;
  bool closing_ = false;
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> has_mail_{false};
  std::mutex mutex_;
  std::vector<std::function<void()>> posted_;  // under mutex_
  io_request* cancels_ = nullptr;              // under mutex_
  mail_hook* hooks_ = nullptr;                 // under mutex_
  socket_core* retired_ = nullptr;             // under mutex_
  std::size_t max_posted_;
  // Taken from posted_ by the loop; one head shared by nested loops, so each item runs once.
  std::vector<std::function<void()>> running_;
  std::size_t running_head_ = 0;
};

}  // namespace ringsock::detail
