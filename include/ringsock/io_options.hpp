#pragma once

#include <chrono>
#include <stop_token>

namespace ringsock {

// Per-operation options, accepted by every socket awaitable as its last argument:
//   co_await sock.receive_async(buf, {.timeout = 100ms, .stop = token});
// timeout: 0 = none; otherwise the operation is given a linked timeout (an accept waiting in the
//          listener's queue gets a plain timer) and completes with std::errc::timed_out.
// stop:    request_stop() (from any thread) cancels the operation; it completes with
//          std::errc::operation_canceled. Either way the buffer is not touched after the
//          awaiter resumes.
struct io_options {
  std::chrono::nanoseconds timeout{0};
  std::stop_token stop{};
};

}  // namespace ringsock
