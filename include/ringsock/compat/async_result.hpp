// .NET's IAsyncResult pattern: BeginX returns an IAsyncResult, EndX takes it back.
#pragma once

#include <any>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace ringsock {
class io_context;
}

namespace ringsock::compat {

// .NET: System.Threading.WaitHandle (the part IAsyncResult.AsyncWaitHandle offers).
// WaitOne() on the thread of the owning io_context drives that context's loop until the
// operation completes (it cannot deadlock waiting for itself); on any other thread it blocks.
// Destroying the context sets every handle of its pending operations (they end as
// OperationAborted), so no thread stays blocked; a set handle never touches the context again.
class WaitHandle {
 public:
  explicit WaitHandle(io_context& ctx) noexcept;
  WaitHandle(const WaitHandle&) = delete;
  WaitHandle& operator=(const WaitHandle&) = delete;
  // .NET: WaitHandle.WaitOne()
  bool WaitOne();
  // .NET: WaitHandle.WaitOne(int millisecondsTimeout): false when the time ran out first.
  bool WaitOne(int millisecondsTimeout);
  bool WaitOne(std::chrono::milliseconds timeout);

 private:
  friend class AsyncResult;  // sets it at completion (or abandon), on the context's thread
  friend class Socket;       // BeginDisconnect, which completes at the call
  void Set();
  bool IsSet() const;
  io_context* ctx_;
  std::thread::id loop_thread_;  // the context's, kept here: the context may be gone
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

// .NET: System.IAsyncResult
class IAsyncResult {
 public:
  virtual ~IAsyncResult() = default;
  // .NET: IAsyncResult.AsyncState — the `state` given to BeginX, untouched.
  virtual const std::any& AsyncState() const noexcept = 0;
  // .NET: IAsyncResult.AsyncWaitHandle
  virtual WaitHandle& AsyncWaitHandle() noexcept = 0;
  // .NET: IAsyncResult.IsCompleted
  virtual bool IsCompleted() const noexcept = 0;
  // .NET: IAsyncResult.CompletedSynchronously — true exactly when the result was there inline.
  virtual bool CompletedSynchronously() const noexcept = 0;
};

// .NET: System.AsyncCallback
using AsyncCallback = std::function<void(std::shared_ptr<IAsyncResult>)>;

}  // namespace ringsock::compat
