#include "ringsock/compat/socket_async_event_args.hpp"

#include <cstdio>
#include <cstdlib>

#include "ringsock/compat/exceptions.hpp"
#include "ringsock/compat/socket.hpp"
#include "wrap_endpoint.hpp"

namespace ringsock::compat {

void SocketAsyncEventArgs::check_idle() const {
  if (in_use_)
    throw InvalidOperationException(
        "An asynchronous socket operation is already in progress using this "
        "SocketAsyncEventArgs instance.");
}

SocketAsyncEventArgs::~SocketAsyncEventArgs() {
  if (in_use_) {
    std::fprintf(stderr,
                 "ringsock::compat: a SocketAsyncEventArgs was destroyed while an operation "
                 "using it was pending; the kernel still owns its memory\n");
    std::abort();
  }
}

void SocketAsyncEventArgs::AcceptSocket(std::shared_ptr<Socket> s) { accept_socket_ = std::move(s); }

void SocketAsyncEventArgs::SetBuffer(std::span<std::byte> buffer, int offset, int count) {
  check_idle();
  if (!buffer.data()) {  // .NET: SetBuffer(null, offset, count) removes the buffer, whatever the rest
    buffer_ = {};
    offset_ = count_ = 0;
    return;
  }
  if (!buffer_list_.empty())
    throw ArgumentException("Buffer and BufferList properties cannot both be non-null.", "");  // .NET: no ParamName
  const long long size = static_cast<long long>(buffer.size());
  if (offset < 0 || offset > size)
    throw ArgumentOutOfRangeException("offset", "The offset must lie within the buffer.");
  if (count < 0 || count > size - offset)
    throw ArgumentOutOfRangeException("count", "The count must fit in the buffer after offset.");
  buffer_ = buffer;
  offset_ = offset;
  count_ = count;
}

void SocketAsyncEventArgs::SetBuffer(int offset, int count) {
  check_idle();
  if (!buffer_.data()) return;  // .NET: without a buffer this changes nothing
  SetBuffer(buffer_, offset, count);
}

void SocketAsyncEventArgs::BufferList(std::vector<std::span<std::byte>> list) {
  check_idle();
  if (list.empty()) {
    BufferList(nullptr);
    return;
  }
  if (buffer_.data())
    throw ArgumentException("Buffer and BufferList properties cannot both be non-null.", "");  // .NET: no ParamName
  buffer_list_ = std::move(list);
  // The kernel's view of the list, made here once: an operation then allocates nothing.
  iov_.clear();
  for (const auto& b : buffer_list_) iov_.push_back({b.data(), b.size()});
}

void SocketAsyncEventArgs::BufferList(std::nullptr_t) {
  check_idle();
  buffer_list_.clear();
  iov_.clear();
}

void SocketAsyncEventArgs::RemoteEndPoint(std::shared_ptr<EndPoint> ep) {
  check_idle();
  remote_ = std::move(ep);
}

void SocketAsyncEventArgs::RemoteEndPoint(const EndPoint& ep) { RemoteEndPoint(wrap(ep.native())); }

}  // namespace ringsock::compat
