// task<T>: a lazy, move-only coroutine. Nothing runs until it is awaited (or handed to
// io_context::spawn / block_on); exceptions propagate to the awaiter.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

#include "ringsock/detail/access.hpp"
#include "ringsock/detail/frame_allocator.hpp"

namespace ringsock {

template <class T = void>
class task;
class io_context;

namespace detail {

// A spawned task in its context's list (destroyed unfinished with the context). It lives in the
// task's own promise: spawning makes no frame of its own.
struct spawned_link {
  spawned_link* prev = nullptr;
  spawned_link* next = nullptr;
  std::coroutine_handle<> frame{};
  io_context* ctx = nullptr;  // null: not spawned (an awaited task, or a block_on root)
};
// A spawned task reached its end (io_context.cpp): reports an escaping exception to its context
// and destroys the frame (whose promise then leaves the context's list).
void end_spawned(spawned_link& l, std::exception_ptr& error) noexcept;
// The frame of a spawned task goes (at its end, or unfinished with its context).
void unlink_spawned(spawned_link& l) noexcept;

// How the child of a co_await got to its end. GCC 12 makes symmetric transfer a real tail call
// only when optimising without ASan, so a loop of awaits that finish synchronously would grow
// the stack: the awaiter resumes the child itself and, when the child finished inline, returns
// false instead of transferring back (README, coroutine pitfalls). Symmetric transfer is kept for
// children that finish later, from the event loop.
enum class run_state : unsigned char { lazy, starting, finished_inline, running };

struct promise_base : frame_allocated {
  std::coroutine_handle<> continuation_{};
  std::exception_ptr error_{};
  spawned_link spawned_{};
  run_state state_ = run_state::lazy;

  promise_base() noexcept = default;
  promise_base(const promise_base&) = delete;
  promise_base& operator=(const promise_base&) = delete;
  ~promise_base() {
    if (spawned_.ctx) unlink_spawned(spawned_);
  }

  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      promise_base& p = h.promise();
      if (p.spawned_.ctx) {  // nobody awaits it: it ends here
        end_spawned(p.spawned_, p.error_);
        return std::noop_coroutine();
      }
      if (p.state_ == run_state::starting) {
        p.state_ = run_state::finished_inline;
        return std::noop_coroutine();
      }
      return p.continuation_ ? p.continuation_ : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
};

template <class T>
struct task_promise : promise_base {
  std::optional<T> value_;
  task<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& v) {
    value_.emplace(std::forward<U>(v));
  }
  T take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
};

template <>
struct task_promise<void> : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (error_) std::rethrow_exception(error_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  bool done() const noexcept { return h_ && h_.done(); }

  struct awaiter {
    handle_type h;
    bool await_ready() const {
      if (!h) throw std::logic_error("ringsock: co_await on an empty task");
      return h.done();
    }
    bool await_suspend(std::coroutine_handle<> parent) noexcept {
      auto& p = h.promise();
      p.continuation_ = parent;
      p.state_ = detail::run_state::starting;
      h.resume();
      if (p.state_ == detail::run_state::finished_inline) return false;
      p.state_ = detail::run_state::running;
      return true;
    }
    T await_resume() { return h.promise().take(); }
  };
  awaiter operator co_await() && noexcept { return awaiter{h_}; }
  awaiter operator co_await() & noexcept { return awaiter{h_}; }

 private:
  friend class io_context;  // block_on drives the frame; spawn takes it over
  friend struct detail::access;
  handle_type handle() const noexcept { return h_; }
  handle_type release() noexcept { return std::exchange(h_, {}); }
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }
  handle_type h_{};
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}
}  // namespace detail

inline std::coroutine_handle<> detail::access::release(task<void>& t) noexcept { return t.release(); }

}  // namespace ringsock
