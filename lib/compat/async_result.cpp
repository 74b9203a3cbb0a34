#include "async_result.hpp"

#include <cerrno>

#include <chrono>
#include <stop_token>
#include <system_error>

#include "ringsock/io_context.hpp"
#include "ringsock/timer.hpp"

namespace ringsock::compat {

// ---- WaitHandle ----

void WaitHandle::Set() {
  {
    std::lock_guard lock(mutex_);
    set_ = true;
  }
  cv_.notify_all();
}

bool WaitHandle::IsSet() const {
  std::lock_guard lock(mutex_);
  return set_;
}

bool WaitHandle::WaitOne() {
  if (ctx_->running_in_this_thread()) {
    // The completion can only come from this thread's loop: drive it.
    ctx_->run_until([this] { return IsSet(); });
    return true;
  }
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return set_; });
  return true;
}

bool WaitHandle::WaitOne(int millisecondsTimeout) {
  if (millisecondsTimeout < 0) return WaitOne();  // .NET: Timeout.Infinite is -1
  return WaitOne(std::chrono::milliseconds(millisecondsTimeout));
}

namespace {
task<void> wake_after(io_context& ctx, std::chrono::milliseconds d, bool& fired,
                      std::stop_token stop) {
  // Bound to a variable on purpose: GCC 12.2 can skip a co_await written in an if condition
  // (README, coroutine pitfalls).
  std::error_code ec = co_await sleep_for(ctx, d, stop);
  if (!ec) fired = true;
}
}  // namespace

bool WaitHandle::WaitOne(std::chrono::milliseconds timeout) {
  if (ctx_->running_in_this_thread()) {
    if (IsSet()) return true;
    // A timer on the ring bounds the wait; it is cancelled (and never touches `fired` again)
    // when the operation wins.
    bool fired = false;
    std::stop_source stop;
    ctx_->spawn(wake_after(*ctx_, timeout, fired, stop.get_token()));
    ctx_->run_until([&] { return IsSet() || fired; });
    stop.request_stop();
    return IsSet();
  }
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [this] { return set_; });
}

// ---- AsyncResult ----

void AsyncResult::complete(bool synchronously) noexcept {
  sync_ = synchronously;
  ringsock::socket_args& a = args_;
  bytes_ = static_cast<int>(a.bytes_transferred());
  error_ = ToSocketError(a.socket_error());
  native_ = a.socket_error().value();
  if (!a.socket_error()) {
    if (op_ == SocketAsyncOperation::Accept)
      accepted_ = owner_->take_accepted(a, std::move(accept_into_));
    else if (op_ == SocketAsyncOperation::Connect)
      owner_->after_connect(true);
  }
  completed_.store(true, std::memory_order_release);
  handle_.Set();
}

void AsyncResult::on_core_complete(ringsock::socket_args&, void* target) noexcept {
  auto* r = static_cast<AsyncResult*>(target);
  r->complete(false);
  run_callback(r);
}

void AsyncResult::on_core_abandon(ringsock::socket_args&, void* target) noexcept {
  auto* r = static_cast<AsyncResult*>(target);
  r->error_ = SocketError::OperationAborted;
  r->native_ = ECANCELED;
  std::shared_ptr<AsyncResult> keep = std::move(r->self_);
  r->owner_hold_.reset();
}

void AsyncResult::run_callback(void* self) noexcept {
  auto* r = static_cast<AsyncResult*>(self);
  std::shared_ptr<AsyncResult> keep = std::move(r->self_);
  std::shared_ptr<Socket> owner = std::move(r->owner_hold_);  // alive through the callback
  if (r->owner_->context().draining()) return;  // a dying context calls nobody back
  if (r->callback_) {
    try {
      r->callback_(keep);
    } catch (...) {
      r->owner_->context().report_exception(std::current_exception());
    }
  }
}

}  // namespace ringsock::compat
