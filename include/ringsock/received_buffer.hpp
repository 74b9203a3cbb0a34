// received_buffer: bytes a stream socket received, lent straight from the context's buffer ring
// (socket::receive_borrowed_async): no copy, and no buffer of the caller's own per connection.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/buffer_ring.hpp"

namespace ringsock {

class io_context;

// Move-only. While it holds bytes, one of the context's receive buffers (or the part of it these
// bytes fill) stays out of the ring; destroying it or reset() gives the buffer back at once.
// Contract:
//   data()   valid until the handle is reset, destroyed or moved from; read-only
//   empty    a default-constructed or reset handle, and the end of stream (size() == 0)
//   thread   the context's thread only (the ring is not locked); release every handle before its
//            io_context is destroyed (a handle that outlives it makes the destructor abort with a
//            message: the memory is about to go)
class received_buffer {
 public:
  received_buffer() noexcept = default;
  received_buffer(received_buffer&& o) noexcept
      : ctx_(std::exchange(o.ctx_, nullptr)), piece_(o.piece_), data_(std::exchange(o.data_, nullptr)) {}
  received_buffer& operator=(received_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      ctx_ = std::exchange(o.ctx_, nullptr);
      piece_ = o.piece_;
      data_ = std::exchange(o.data_, nullptr);
    }
    return *this;
  }
  received_buffer(const received_buffer&) = delete;
  received_buffer& operator=(const received_buffer&) = delete;
  ~received_buffer() { reset(); }

  std::span<const std::byte> data() const noexcept { return {data_, ctx_ ? piece_.len : 0u}; }
  std::size_t size() const noexcept { return ctx_ ? piece_.len : 0; }
  bool empty() const noexcept { return size() == 0; }
  // Gives the buffer back to the ring now; the handle is then empty.
  void reset() noexcept {
    if (ctx_) give_back();
  }

 private:
  void give_back() noexcept;
  friend struct detail::access;
  received_buffer(io_context& ctx, const detail::buffer_piece& p, const std::byte* data) noexcept
      : ctx_(&ctx), piece_(p), data_(data) {}

  io_context* ctx_ = nullptr;  // null: holds nothing
  detail::buffer_piece piece_{};
  const std::byte* data_ = nullptr;
};

inline received_buffer detail::access::lend(io_context& c, const buffer_piece& p,
                                            const std::byte* data) noexcept {
  return received_buffer(c, p, data);
}

}  // namespace ringsock
