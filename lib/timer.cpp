#include "ringsock/timer.hpp"

#include <cerrno>

namespace ringsock::detail {

bool sleep_awaiter::await_ready() {
  ts_ = to_timespec(duration_.count());
  req_.completion_ = &resume_waiter;
  access::arm(*ctx_, req_, io_options{stop_},
            [this](io_uring_sqe* sqe) { io_uring_prep_timeout(sqe, &ts_, 0, 0); });
  return false;
}

std::error_code sleep_awaiter::await_resume() const noexcept {
  if (req_.res_ == -ETIME || req_.res_ == 0) return {};
  return make_error_code_from_errno(-req_.res_);
}

}  // namespace ringsock::detail
