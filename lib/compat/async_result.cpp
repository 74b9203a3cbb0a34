#include "async_result.hpp"

#include <cerrno>

#include <chrono>

#include "ringsock/io_context.hpp"

namespace ringsock::compat {

// ---- WaitHandle ----

WaitHandle::WaitHandle(io_context& ctx) noexcept : ctx_(&ctx), loop_thread_(ctx.owner_thread()) {}

void WaitHandle::Set() {
  // Notified under the lock: a woken waiter may destroy this handle as soon as it is released.
  std::lock_guard lock(mutex_);
  set_ = true;
  cv_.notify_all();
}

bool WaitHandle::IsSet() const {
  std::lock_guard lock(mutex_);
  return set_;
}

bool WaitHandle::WaitOne() {
  if (IsSet()) return true;
  if (std::this_thread::get_id() == loop_thread_) {
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

bool WaitHandle::WaitOne(std::chrono::milliseconds timeout) {
  if (IsSet()) return true;
  if (std::this_thread::get_id() == loop_thread_) {
    // The loop's own wait is bounded by the timeout: nothing is armed that could outlive us.
    return ctx_->run_until([this] { return IsSet(); }, timeout);
  }
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [this] { return set_; });
}

// ---- AsyncResult ----

void AsyncResult::complete(bool synchronously) noexcept {
  sync_ = synchronously;
  ringsock::socket_args& a = args_;
  bytes_ = static_cast<int>(a.bytes_transferred());
  error_ = ToSocketError(a.error());
  native_ = a.error().value();
  if (!a.error()) {
    if (op_ == SocketAsyncOperation::Accept)
      accepted_ = owner_->take_accepted(a, std::move(accept_into_));
    else if (op_ == SocketAsyncOperation::Connect)
      owner_->after_connect(true);
    else if (op_ == SocketAsyncOperation::SendTo)
      owner_->after_send_to(true);
  }
  // The last touch of the owner: once the handle is set, EndX may return on another thread and
  // the owner may be destroyed there (a Socket no shared_ptr owns).
  if (!synchronously) owner_->op_ended();
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
  std::shared_ptr<AsyncResult> keep = std::move(r->self_);  // alive through Set()
  r->error_ = SocketError::OperationAborted;
  r->native_ = ECANCELED;
  r->owner_->op_ended();
  r->completed_.store(true, std::memory_order_release);
  r->handle_.Set();  // a thread blocked in EndX or WaitOne wakes and sees OperationAborted
  r->owner_hold_.reset();
}

void AsyncResult::run_callback(void* self) noexcept {
  auto* r = static_cast<AsyncResult*>(self);
  std::shared_ptr<AsyncResult> keep = std::move(r->self_);
  // owner_ is not touched here: it may be gone (see complete()); a shared one is held.
  std::shared_ptr<Socket> owner = std::move(r->owner_hold_);  // alive through the callback
  if (detail::access::draining(*r->ctx_)) return;  // a dying context calls nobody back
  if (r->callback_) {
    try {
      r->callback_(keep);
    } catch (...) {
      detail::access::report_exception(*r->ctx_, std::current_exception());
    }
  }
}

}  // namespace ringsock::compat
