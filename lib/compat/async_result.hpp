// The IAsyncResult behind every BeginX: the core operation's state and what EndX returns.
// Private to the compat layer.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "ringsock/compat/async_result.hpp"
#include "ringsock/compat/socket.hpp"
#include "ringsock/socket_args.hpp"

namespace ringsock::compat {

class AsyncResult final : public IAsyncResult, public std::enable_shared_from_this<AsyncResult> {
 public:
  AsyncResult(Socket& owner, SocketAsyncOperation op, AsyncCallback callback, std::any state)
      : owner_(&owner),
        ctx_(&owner.context()),
        op_(op),
        callback_(std::move(callback)),
        state_(std::move(state)),
        handle_(owner.context()) {}

  const std::any& AsyncState() const noexcept override { return state_; }
  WaitHandle& AsyncWaitHandle() noexcept override { return handle_; }
  bool IsCompleted() const noexcept override { return completed_.load(std::memory_order_acquire); }
  bool CompletedSynchronously() const noexcept override { return sync_; }

  // Records the core result, signals the handle; the callback runs after (on a later loop turn
  // when the operation completed synchronously, since the starting call is still on the stack).
  void complete(bool synchronously) noexcept;
  static void on_core_complete(ringsock::socket_args& a, void* target) noexcept;
  static void run_callback(void* self) noexcept;
  // The context dies with the operation pending: let go of ourselves and the socket.
  static void on_core_abandon(ringsock::socket_args& a, void* target) noexcept;

  Socket* owner_;  // not touched after the handle is set (a Socket no shared_ptr owns may die)
  io_context* ctx_;
  SocketAsyncOperation op_;
  AsyncCallback callback_;
  std::any state_;
  WaitHandle handle_;
  ringsock::socket_args args_;
  std::vector<std::byte> accept_buffer_;  // BeginAccept(receiveSize): the first block lands here
  std::vector<iovec> segments_;           // BeginReceive/BeginSend of a list: the kernel's view
  std::shared_ptr<Socket> accept_into_;
  std::shared_ptr<Socket> accepted_;
  std::shared_ptr<Socket> owner_hold_;
  std::shared_ptr<AsyncResult> self_;  // alive until the callback ran
  int bytes_ = 0;
  SocketError error_ = SocketError::Success;
  int native_ = 0;
  std::atomic<bool> ended_{false};
  std::atomic<bool> completed_{false};
  bool sync_ = false;
};

}  // namespace ringsock::compat
