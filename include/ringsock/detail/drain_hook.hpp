// How a context's shutdowns reach requests that wait outside the kernel (the accepts queued in a
// listener) without knowing what holds them. Internal.
#pragma once

namespace ringsock::detail {

struct drain_hook {
  // Graceful shutdown: stop taking new work; complete the waiting requests as cancelled.
  void (*stop)(void* owner) noexcept;
  // Requests are waiting in the holder.
  bool (*has_waiters)(const void* owner) noexcept;
  // The context is being destroyed: complete them as cancelled (resuming nobody). May free the
  // holder, and with it this hook.
  void (*abandon)(void* owner) noexcept;
  void* owner;
};

}  // namespace ringsock::detail
