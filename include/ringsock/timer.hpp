// Timers on the ring (IORING_OP_TIMEOUT): no timer thread, no extra file descriptor.
#pragma once

#include <chrono>
#include <coroutine>
#include <stop_token>
#include <system_error>

#include "ringsock/detail/operation.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"

namespace ringsock {

namespace detail {
class sleep_awaiter {
 public:
  sleep_awaiter(io_context& ctx, std::chrono::nanoseconds d, std::stop_token stop) noexcept
      : ctx_(&ctx), duration_(d), stop_(std::move(stop)) {}
  sleep_awaiter(const sleep_awaiter&) = delete;
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h) noexcept { req_.waiter_ = h.address(); }
  // Empty when the time elapsed; operation_canceled when the stop token fired first.
  std::error_code await_resume() const noexcept;

 private:
  io_request req_;
  io_context* ctx_;
  std::chrono::nanoseconds duration_;
  std::stop_token stop_;
  __kernel_timespec ts_{};
};
}  // namespace detail

// Suspends the calling task for `d` (a zero or negative duration still yields to the loop once).
//   co_await ringsock::sleep_for(ctx, 10ms);
// Yields std::error_code: empty when the time elapsed, operation_canceled when `stop` fired.
inline detail::sleep_awaiter sleep_for(io_context& ctx, std::chrono::nanoseconds d,
                                       std::stop_token stop = {}) {
  return {ctx, d, std::move(stop)};
}

}  // namespace ringsock
