// .NET: System.Net.Sockets.SocketAsyncEventArgs — a reusable operation context for the
// event-args pattern (Socket::AcceptAsync(e) ...). It embeds the core operation's state
// (ringsock::socket_args), so an operation allocates nothing; it must not move or die while an
// operation using it is pending.
#pragma once

#include <any>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "ringsock/compat/enums.hpp"
#include "ringsock/compat/event.hpp"
#include "ringsock/compat/ip_address.hpp"
#include "ringsock/socket_args.hpp"

namespace ringsock::compat {

class Socket;

class SocketAsyncEventArgs {
 public:
  SocketAsyncEventArgs() = default;
  SocketAsyncEventArgs(const SocketAsyncEventArgs&) = delete;
  SocketAsyncEventArgs& operator=(const SocketAsyncEventArgs&) = delete;
  // Destroying args that a pending operation uses would hand freed memory to the kernel: that
  // aborts with a message (call Dispose() and let the operation complete instead).
  ~SocketAsyncEventArgs();

  // .NET: SocketAsyncEventArgs.Completed — raised once per pending operation, on the owning
  // io_context's thread, never inside the call that started it. Handler: (sender, e).
  Event<Socket&, SocketAsyncEventArgs&> Completed;

  // .NET: SocketAsyncEventArgs.AcceptSocket (get/set)
  const std::shared_ptr<Socket>& AcceptSocket() const noexcept { return accept_socket_; }
  void AcceptSocket(std::shared_ptr<Socket> s);
  // .NET: SocketAsyncEventArgs.Buffer / Offset / Count
  std::span<std::byte> Buffer() const noexcept { return buffer_; }
  int Offset() const noexcept { return offset_; }
  int Count() const noexcept { return count_; }
  // .NET: SetBuffer(byte[], int, int). An empty span clears the buffer (whatever offset and count).
  // Throws ArgumentOutOfRangeException (offset / count), ArgumentException when BufferList is
  // set, InvalidOperationException during an operation.
  void SetBuffer(std::span<std::byte> buffer, int offset, int count);
  // .NET: SetBuffer(int, int) — a new window on the current buffer.
  void SetBuffer(int offset, int count);
  // .NET: SocketAsyncEventArgs.BufferList (nullptr when not set): ReceiveAsync fills the
  // segments in order, SendAsync sends them in order (a datagram socket: as one datagram). The
  // memory is the caller's, as with SetBuffer. An empty list clears it, as null does.
  const std::vector<std::span<std::byte>>* BufferList() const noexcept {
    return buffer_list_.empty() ? nullptr : &buffer_list_;
  }
  void BufferList(std::vector<std::span<std::byte>> list);
  void BufferList(std::nullptr_t);
  // .NET: SocketAsyncEventArgs.BytesTransferred
  int BytesTransferred() const noexcept { return bytes_; }
  // .NET: SocketAsyncEventArgs.LastOperation
  SocketAsyncOperation LastOperation() const noexcept { return last_op_; }
  // .NET: SocketAsyncEventArgs.RemoteEndPoint (get/set; nullptr when not set)
  const std::shared_ptr<EndPoint>& RemoteEndPoint() const noexcept { return remote_; }
  void RemoteEndPoint(std::shared_ptr<EndPoint> ep);
  // A copy of ep that keeps what it is (an IPEndPoint stays one: dynamic_pointer_cast works).
  void RemoteEndPoint(const EndPoint& ep);
  // .NET: SocketAsyncEventArgs.SocketError (get/set)
  compat::SocketError SocketError() const noexcept { return error_; }
  void SocketError(compat::SocketError e) noexcept { error_ = e; }
  // .NET: SocketAsyncEventArgs.SocketFlags (get/set)
  compat::SocketFlags SocketFlags() const noexcept { return flags_; }
  void SocketFlags(compat::SocketFlags f) noexcept { flags_ = f; }
  // .NET: SocketAsyncEventArgs.UserToken (get/set) — never touched by the library.
  std::any& UserToken() noexcept { return token_; }
  const std::any& UserToken() const noexcept { return token_; }
  void UserToken(std::any t) { token_ = std::move(t); }
  // .NET: SocketAsyncEventArgs.ConnectSocket — the socket a ConnectAsync connected.
  const std::shared_ptr<Socket>& ConnectSocket() const noexcept { return connect_socket_; }
  // .NET: SocketAsyncEventArgs.DisconnectReuseSocket (get/set)
  bool DisconnectReuseSocket() const noexcept { return reuse_; }
  void DisconnectReuseSocket(bool reuse) noexcept { reuse_ = reuse; }
  // .NET: SocketAsyncEventArgs.Dispose() — deferred while an operation is pending (it still
  // completes and raises Completed); starting an operation afterwards throws
  // ObjectDisposedException. Idempotent.
  void Dispose() noexcept { disposed_ = true; }

  bool in_use() const noexcept { return in_use_; }
  bool disposed() const noexcept { return disposed_; }
  // Throws InvalidOperationException while an operation uses these args.
  void check_idle() const;
  // The window [Offset, Offset + Count) of Buffer.
  std::span<std::byte> window() const noexcept {
    return buffer_.subspan(static_cast<std::size_t>(offset_), static_cast<std::size_t>(count_));
  }
  // The bytes BufferList spans.
  std::size_t list_bytes() const noexcept {
    std::size_t n = 0;
    for (const iovec& v : iov_) n += v.iov_len;
    return n;
  }

 private:
  friend class Socket;
  static void on_complete(ringsock::socket_args& a, void* target) noexcept;
  static void on_abandon(ringsock::socket_args& a, void* target) noexcept;

  ringsock::socket_args args_;
  std::span<std::byte> buffer_{};
  int offset_ = 0;
  int count_ = 0;
  std::vector<std::span<std::byte>> buffer_list_;
  std::vector<iovec> iov_;  // buffer_list_ as the kernel reads it
  std::shared_ptr<Socket> accept_socket_;
  std::shared_ptr<Socket> connect_socket_;
  std::shared_ptr<EndPoint> remote_;
  std::any token_;
  Socket* sender_ = nullptr;
  std::shared_ptr<Socket> sender_hold_;  // keeps a shared sender alive until Completed ran
  int bytes_ = 0;
  compat::SocketError error_ = compat::SocketError::Success;
  compat::SocketFlags flags_ = compat::SocketFlags::None;
  SocketAsyncOperation last_op_ = SocketAsyncOperation::None;
  bool reuse_ = false;
  bool in_use_ = false;
  bool disposed_ = false;
  // ConnectAsync with a buffer: .NET sends that buffer once connected. The stages of one such
  // ConnectAsync; `none` for every other operation.
  enum class connect_send : unsigned char {
    none,
    due,      // the connect is pending; its buffer goes out when it succeeds
    sending,  // connected; the result in args_ is the send's
    aborted,  // connected, but the socket closed before the send could start
  };
  connect_send connect_send_ = connect_send::none;
};

}  // namespace ringsock::compat
