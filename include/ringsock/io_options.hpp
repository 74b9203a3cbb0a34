#pragma once

#include <chrono>
#include <stop_token>
#include <utility>

namespace ringsock {

// Per-operation options, accepted by every socket awaitable as its last argument:
//   co_await sock.receive_async(buf, 100ms);          // a timeout
//   co_await sock.receive_async(buf, token);          // a std::stop_token
//   co_await sock.receive_async(buf, {100ms, token}); // both
// timeout: 0 = none; otherwise the operation gets a linked timeout (an accept waiting in the
//          listener's queue gets a plain timer) and completes with std::errc::timed_out.
// stop:    request_stop() (from any thread) cancels the operation; it completes with
//          std::errc::operation_canceled. Either way the buffer is not touched after the awaiter
//          resumes.
//
// Why constructors and not an aggregate with designated initializers: GCC 12 destroys an
// aggregate temporary with a non-trivial member twice when it appears inside a co_await
// expression, and a stop_token member then drops its reference twice (reproduced here with
// ASan; clang 14 is fine). A class with constructors is not affected.
class io_options {
 public:
  io_options() noexcept = default;
  template <class Rep, class Period>
  io_options(std::chrono::duration<Rep, Period> timeout) noexcept  // NOLINT: implicit on purpose
      : timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)) {}
  io_options(std::stop_token stop) noexcept : stop(std::move(stop)) {}  // NOLINT: implicit
  template <class Rep, class Period>
  io_options(std::chrono::duration<Rep, Period> timeout, std::stop_token stop) noexcept
      : timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)),
        stop(std::move(stop)) {}

  std::chrono::nanoseconds timeout{0};
  std::stop_token stop{};
};

}  // namespace ringsock
