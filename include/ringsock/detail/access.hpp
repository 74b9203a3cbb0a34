// The one door from the library's internals (the operations, the acceptor, compat) into the
// private state of the public classes. Users never name it; everything reachable through it is
// listed here, and each function is defined beside the class it opens.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>

namespace ringsock {
template <class T>
class task;
class io_context;
struct io_options;
class socket;
class socket_args;
class received_buffer;
}  // namespace ringsock

namespace ringsock::detail {

class ring;
struct buffer_piece;
struct drain_hook;
struct io_request;
struct socket_core;
struct spawned_link;
struct mail_hook;

struct access {
  // ---- task (defined in task.hpp) ----
  // The frame of `t`, which gives it up (runtime::spawn_on hands it to another thread).
  static std::coroutine_handle<> release(task<void>& t) noexcept;

  // ---- received_buffer (defined in received_buffer.hpp) ----
  static received_buffer lend(io_context& c, const buffer_piece& p, const std::byte* data) noexcept;

  // ---- io_context (defined in io_context.hpp) ----
  static ring& ring_of(io_context& c) noexcept;
  // Arms r on the ring: prep(sqe) fills its SQE, o adds a linked timeout and a stop callback.
  template <class Prep>
  static void arm(io_context& c, io_request& r, const io_options& o, Prep&& prep);
  // The next round of a multi-round request (same timeout).
  template <class Prep>
  static void submit_round(io_context& c, io_request& r, Prep&& prep);
  // Counts r as pending until untrack(): for a request completed by someone else (an accept
  // waiting in its listener's queue) or inline.
  static void track(io_context& c, io_request& r) noexcept;
  static void untrack(io_context& c, io_request& r) noexcept;
  static void count_inline(io_context& c) noexcept;
  // A socket_error ended a spawned task (stats().tasks_ended_by_io_error), for an exception
  // handler that keeps the default policy for those (runtime).
  static void count_io_error(io_context& c) noexcept;
  static void count_buffer_shortage(io_context& c) noexcept;
  // A zero-copy send's notification came (`copied`: the kernel copied the bytes after all).
  static void count_zero_copy(io_context& c, bool copied) noexcept;
  // Sends of at least this many bytes go zero-copy; 0: none do.
  static std::size_t send_zc_threshold(const io_context& c) noexcept;
  static unsigned receive_queue_limit(const io_context& c) noexcept;
  // Runs fn(arg) on a following loop turn (never on the caller's stack).
  static void defer(io_context& c, void (*fn)(void*), void* arg);
  // Resumes h on a following loop turn, unless the context is being destroyed by then.
  static void defer_resume(io_context& c, std::coroutine_handle<> h);
  // Is the context being destroyed (completions then release and tell nobody)?
  static bool draining(const io_context& c) noexcept;
  static bool in_loop(const io_context& c) noexcept;
  // The context's exception policy, for callbacks that run user code (compat).
  static void report_exception(io_context& c, std::exception_ptr e) noexcept;
  static socket_core* make_core(io_context& c, int fd);
  static void unlink_core(io_context& c, socket_core* core) noexcept;
  // Thread-safe: a core released on another thread is freed by the loop.
  static void retire_core(io_context& c, socket_core* core) noexcept;
  // A stop requested on another thread: the loop cancels r on its own thread.
  static void queue_cancel(io_context& c, io_request* r);
  static void queue_hook(io_context& c, mail_hook* h) noexcept;  // any thread
  static void unqueue_cancel(io_context& c, io_request* r) noexcept;
  static void link_task(io_context& c, spawned_link& l) noexcept;
  static void unlink_task(io_context& c, spawned_link& l) noexcept;
  // Holders of requests outside the kernel (a listener's waiting accepts) register a hook; the
  // shutdowns reach them only through it.
  static void link_hook(io_context& c, drain_hook* h) noexcept;
  static void unlink_hook(io_context& c, drain_hook* h) noexcept;

  // ---- socket (defined in socket.hpp) ----
  // The state a socket object is a handle to (null for a closed, default-constructed socket).
  static socket_core* core(const socket& s) noexcept;

  // ---- socket_args (defined in socket_args.hpp) ----
  // How a pending args-form operation tells its waiter (set by the form that started it: the
  // coroutine form resumes `target`, compat raises Completed or sets its wait handle), and what
  // runs instead when the context is destroyed with it pending (releases, tells nobody).
  using args_completion_fn = void (*)(socket_args& args, void* target) noexcept;
  static void set_completion(socket_args& a, args_completion_fn fn, void* target) noexcept;
  static void set_completion_target(socket_args& a, void* target) noexcept;
  static void set_abandon(socket_args& a, args_completion_fn fn) noexcept;
};

}  // namespace ringsock::detail
