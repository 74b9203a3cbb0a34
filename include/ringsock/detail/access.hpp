// The one door from the library's internals (the operations, the acceptor, compat) into the
// private state of the public classes. Users never name it; everything reachable through it is
// listed here, and each function is defined beside the class it opens.
#pragma once

namespace ringsock {
class socket;
class socket_args;
}  // namespace ringsock

namespace ringsock::detail {

struct socket_core;

struct access {
  // The state a socket object is a handle to (null for a closed, default-constructed socket).
  static socket_core* core(const socket& s) noexcept;

  // How a pending args-form operation tells its waiter (set by the form that started it: the
  // coroutine form resumes `target`, compat raises Completed or sets its wait handle), and what
  // runs instead when the context is destroyed with it pending (releases, tells nobody).
  using args_completion_fn = void (*)(socket_args& args, void* target) noexcept;
  static void set_completion(socket_args& a, args_completion_fn fn, void* target) noexcept;
  static void set_completion_target(socket_args& a, void* target) noexcept;
  static void set_abandon(socket_args& a, args_completion_fn fn) noexcept;
};

}  // namespace ringsock::detail
