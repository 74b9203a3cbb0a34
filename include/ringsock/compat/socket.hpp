// .NET: System.Net.Sockets.Socket, on a ringsock::io_context. Every asynchronous member is a
// thin view of a core ringsock operation ("one operation, two views": README, "How it works"):
//  - XAsync(e) returns false exactly when the core operation completed inline (then Completed is
//    not raised and e holds the result), true when pending (Completed is raised once, later);
//  - BeginX/EndX wrap the same operations in an IAsyncResult.
// Callbacks and Completed run on the thread of the owning io_context (as .NET does in its
// inline-completions mode), never while the starting call is on the stack. Start operations on
// that thread too. Create sockets with std::make_shared: a pending operation then keeps its
// socket alive until its Completed or callback ran. A Socket that no shared_ptr owns and that is
// destroyed while an operation it started is pending aborts the process with a message (the
// completion would otherwise reach freed memory); Dispose() it and let the operations complete.
#pragma once

#include <sys/socket.h>

#include <any>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "ringsock/compat/async_result.hpp"
#include "ringsock/compat/enums.hpp"
#include "ringsock/compat/exceptions.hpp"
#include "ringsock/compat/ip_address.hpp"
#include "ringsock/compat/socket_async_event_args.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/socket.hpp"

namespace ringsock::compat {

class AsyncResult;

class Socket : public std::enable_shared_from_this<Socket> {
 public:
  // .NET: Socket(AddressFamily, SocketType, ProtocolType). Throws SocketException.
  Socket(io_context& ctx, compat::AddressFamily family, compat::SocketType type,
         compat::ProtocolType protocol);
  // Adopts a connected core socket (what accept produces).
  Socket(io_context& ctx, compat::AddressFamily family, compat::SocketType type,
         compat::ProtocolType protocol, ringsock::socket&& connected);
  // Aborts with a message when an operation this Socket started has not completed (only possible
  // when no shared_ptr owns it; see the header comment).
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // ---- properties ----
  compat::AddressFamily AddressFamily() const noexcept { return family_; }
  compat::SocketType SocketType() const noexcept { return type_; }
  compat::ProtocolType ProtocolType() const noexcept { return protocol_; }
  bool Connected() const noexcept { return connected_; }  // .NET: Socket.Connected
  bool IsBound() const noexcept { return bound_; }        // .NET: Socket.IsBound
  int Handle() const noexcept { return sock_.native_handle(); }  // .NET: Socket.Handle
  bool NoDelay() const;                                    // .NET: Socket.NoDelay
  void NoDelay(bool on);
  std::shared_ptr<EndPoint> LocalEndPoint() const;   // .NET: Socket.LocalEndPoint (null: unbound)
  std::shared_ptr<EndPoint> RemoteEndPoint() const;  // .NET: Socket.RemoteEndPoint (null)

  // ---- synchronous members ----
  void Bind(const EndPoint& localEP);                  // .NET: Socket.Bind(EndPoint)
  void Listen(int backlog = SOMAXCONN);                // .NET: Socket.Listen(int)
  void Connect(const EndPoint& remoteEP);              // .NET: Socket.Connect(EndPoint), blocking
  void Shutdown(SocketShutdown how);                   // .NET: Socket.Shutdown(SocketShutdown)
  void Disconnect(bool reuseSocket);                   // .NET: Socket.Disconnect(bool)
  void Close();                                        // .NET: Socket.Close()
  void Dispose() { Close(); }                          // .NET: Socket.Dispose()

  // ---- event-args pattern (true: pending, Completed follows; false: done, e holds it) ----
  bool AcceptAsync(SocketAsyncEventArgs& e);       // .NET: Socket.AcceptAsync(SocketAsyncEventArgs)
  bool AcceptAsync(SocketAsyncEventArgs* e);
  bool ConnectAsync(SocketAsyncEventArgs& e);      // .NET: Socket.ConnectAsync(SocketAsyncEventArgs)
  bool ConnectAsync(SocketAsyncEventArgs* e);
  bool ReceiveAsync(SocketAsyncEventArgs& e);      // .NET: Socket.ReceiveAsync(SocketAsyncEventArgs)
  bool ReceiveAsync(SocketAsyncEventArgs* e);
  bool SendAsync(SocketAsyncEventArgs& e);         // .NET: Socket.SendAsync(SocketAsyncEventArgs)
  bool SendAsync(SocketAsyncEventArgs* e);
  bool DisconnectAsync(SocketAsyncEventArgs& e);   // .NET: Socket.DisconnectAsync(SocketAsyncEventArgs)
  bool DisconnectAsync(SocketAsyncEventArgs* e);
  bool ReceiveFromAsync(SocketAsyncEventArgs& e);  // .NET: Socket.ReceiveFromAsync(...)
  bool ReceiveFromAsync(SocketAsyncEventArgs* e);
  bool SendToAsync(SocketAsyncEventArgs& e);       // .NET: Socket.SendToAsync(...)
  bool SendToAsync(SocketAsyncEventArgs* e);

  // ---- Begin/End pattern ----
  // .NET: Socket.BeginAccept(AsyncCallback, object)
  std::shared_ptr<IAsyncResult> BeginAccept(AsyncCallback callback, std::any state);
  // .NET: Socket.BeginAccept(int receiveSize, AsyncCallback, object)
  std::shared_ptr<IAsyncResult> BeginAccept(int receiveSize, AsyncCallback callback,
                                            std::any state);
  // .NET: Socket.BeginAccept(Socket acceptSocket, int receiveSize, AsyncCallback, object)
  std::shared_ptr<IAsyncResult> BeginAccept(std::shared_ptr<Socket> acceptSocket, int receiveSize,
                                            AsyncCallback callback, std::any state);
  // .NET: Socket.EndAccept(IAsyncResult)
  std::shared_ptr<Socket> EndAccept(const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.EndAccept(out byte[] buffer, out int bytesTransferred, IAsyncResult)
  std::shared_ptr<Socket> EndAccept(std::vector<std::byte>& buffer, int& bytesTransferred,
                                    const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.BeginConnect(EndPoint, AsyncCallback, object) / EndConnect(IAsyncResult)
  std::shared_ptr<IAsyncResult> BeginConnect(const EndPoint& remoteEP, AsyncCallback callback,
                                             std::any state);
  void EndConnect(const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.BeginReceive(byte[], int, int, SocketFlags, AsyncCallback, object) / EndReceive
  std::shared_ptr<IAsyncResult> BeginReceive(std::span<std::byte> buffer, int offset, int size,
                                             SocketFlags socketFlags, AsyncCallback callback,
                                             std::any state);
  int EndReceive(const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.BeginSend(byte[], int, int, SocketFlags, AsyncCallback, object) / EndSend
  std::shared_ptr<IAsyncResult> BeginSend(std::span<const std::byte> buffer, int offset, int size,
                                          SocketFlags socketFlags, AsyncCallback callback,
                                          std::any state);
  int EndSend(const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.BeginReceive(IList<ArraySegment<byte>>, SocketFlags, AsyncCallback, object) and
  // BeginSend(IList<...>, ...): scatter/gather over the segments, in order (EndReceive/EndSend
  // give the count). Throws ArgumentNullException (buffers) for a null pointer (.NET: a null
  // list), ArgumentException (buffers) for a list of no elements.
  std::shared_ptr<IAsyncResult> BeginReceive(const std::vector<std::span<std::byte>>* buffers,
                                             SocketFlags socketFlags, AsyncCallback callback,
                                             std::any state);
  std::shared_ptr<IAsyncResult> BeginSend(const std::vector<std::span<std::byte>>* buffers,
                                          SocketFlags socketFlags, AsyncCallback callback,
                                          std::any state);
  std::shared_ptr<IAsyncResult> BeginReceive(const std::vector<std::span<std::byte>>& buffers,
                                             SocketFlags socketFlags, AsyncCallback callback,
                                             std::any state) {
    return BeginReceive(&buffers, socketFlags, std::move(callback), std::move(state));
  }
  std::shared_ptr<IAsyncResult> BeginSend(const std::vector<std::span<std::byte>>& buffers,
                                          SocketFlags socketFlags, AsyncCallback callback,
                                          std::any state) {
    return BeginSend(&buffers, socketFlags, std::move(callback), std::move(state));
  }
  // .NET: Socket.BeginSendTo(byte[], int, int, SocketFlags, EndPoint, AsyncCallback, object) /
  // EndSendTo. Throws ArgumentNullException (buffer, then remoteEP), ArgumentOutOfRangeException
  // (offset, size). A family that does not match fails at completion (SocketException), as in
  // .NET; a first send binds the socket (LocalEndPoint then reads the kernel's choice).
  std::shared_ptr<IAsyncResult> BeginSendTo(std::span<const std::byte> buffer, int offset, int size,
                                            SocketFlags socketFlags,
                                            const std::shared_ptr<EndPoint>& remoteEP,
                                            AsyncCallback callback, std::any state);
  std::shared_ptr<IAsyncResult> BeginSendTo(std::span<const std::byte> buffer, int offset, int size,
                                            SocketFlags socketFlags, const EndPoint& remoteEP,
                                            AsyncCallback callback, std::any state);
  int EndSendTo(const std::shared_ptr<IAsyncResult>& asyncResult);
  // .NET: Socket.BeginReceiveFrom(byte[], int, int, SocketFlags, ref EndPoint, AsyncCallback,
  // object) / EndReceiveFrom(IAsyncResult, ref EndPoint). Throws, in this order,
  // ArgumentNullException (buffer), ArgumentOutOfRangeException (offset, size),
  // ArgumentNullException (remoteEP), ArgumentException (remoteEP of another family),
  // InvalidOperationException (the socket is not bound). EndReceiveFrom sets endPoint to the
  // sender; a datagram larger than the buffer gives its first `size` bytes (no error, as on Linux
  // .NET).
  std::shared_ptr<IAsyncResult> BeginReceiveFrom(std::span<std::byte> buffer, int offset, int size,
                                                 SocketFlags socketFlags,
                                                 std::shared_ptr<EndPoint>& remoteEP,
                                                 AsyncCallback callback, std::any state);
  int EndReceiveFrom(const std::shared_ptr<IAsyncResult>& asyncResult,
                     std::shared_ptr<EndPoint>& endPoint);
  // .NET: Socket.BeginDisconnect(bool, AsyncCallback, object) / EndDisconnect(IAsyncResult)
  std::shared_ptr<IAsyncResult> BeginDisconnect(bool reuseSocket, AsyncCallback callback,
                                                std::any state);
  void EndDisconnect(const std::shared_ptr<IAsyncResult>& asyncResult);

  // ---- bridges to the core ----
  ringsock::socket& native_socket() noexcept { return sock_; }
  io_context& context() const noexcept { return *ctx_; }
  bool disposed() const noexcept { return disposed_; }

 private:
  friend class SocketAsyncEventArgs;
  friend class AsyncResult;
  using core_start = bool (*)(ringsock::socket&, ringsock::socket_args&, const io_options&);

  void check_disposed() const;
  SocketAsyncEventArgs& deref(SocketAsyncEventArgs* e) const;
  void check_window(const SocketAsyncEventArgs& e, const char* what) const;
  bool start(SocketAsyncEventArgs& e, SocketAsyncOperation op, core_start fn);
  void take_results(SocketAsyncEventArgs& e);
  bool send_connect_buffer(SocketAsyncEventArgs& e) noexcept;
  std::shared_ptr<Socket> take_accepted(ringsock::socket_args& a, std::shared_ptr<Socket> into);
  void after_connect(bool ok);
  // A stream socket this object does not know connected: the errno a receive (or send) would
  // meet at once (a probe that moves no byte), or 0 when it would not fail at once.
  int fails_at_once(bool receive) const noexcept;
  void after_send_to(bool ok) noexcept {
    if (ok) bound_ = true;  // the kernel bound it implicitly: LocalEndPoint reads it now
  }
  std::shared_ptr<IAsyncResult> start_apm(const std::shared_ptr<AsyncResult>& r, core_start fn);
  // Completes r synchronously with `error` (its callback runs on a later loop turn).
  std::shared_ptr<IAsyncResult> complete_apm_now(const std::shared_ptr<AsyncResult>& r, compat::SocketError error,
                                                 int native);
  AsyncResult& wait_apm(const std::shared_ptr<IAsyncResult>& ar, SocketAsyncOperation op,
                   const char* name);
  void disconnect_now(bool reuse);
  int reserved_address_space() const noexcept;
  // Operations started and not yet reported (Completed raised / callback run / abandoned).
  void op_started() noexcept { ++unreported_ops_; }
  void op_ended() noexcept { --unreported_ops_; }

  io_context* ctx_;
  ringsock::socket sock_;
  compat::AddressFamily family_;
  compat::SocketType type_;
  compat::ProtocolType protocol_;
  bool bound_ = false;
  bool listening_ = false;
  bool disconnected_ = false;  // Disconnect()ed: not disposed, but its connection is gone
  bool reusable_ = false;      // ... with reuseSocket: a new descriptor is ready to connect
  bool connected_ = false;
  bool disposed_ = false;
  unsigned unreported_ops_ = 0;
};

}  // namespace ringsock::compat
