// when_all: run tasks concurrently on the current context and wait for every one of them.
//   auto [a, b] = co_await when_all(f(), g());       // void results become std::monostate
//   std::vector<int> v = co_await when_all(std::move(tasks));
// Every task runs to its end even if another throws; then the first exception is rethrown.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "ringsock/task.hpp"

namespace ringsock {
namespace detail {

struct when_all_latch {
  std::size_t count;
  std::coroutine_handle<> parent{};
};

// A child that awaits one task and counts the latch down; the last one resumes the parent.
struct when_all_child {
  struct promise_type : frame_allocated {
    when_all_latch* latch = nullptr;
    when_all_child get_return_object() noexcept {
      return when_all_child{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        when_all_latch* l = h.promise().latch;
        if (--l->count == 0) return l->parent;
        return std::noop_coroutine();
      }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }  // the body catches
  };

  explicit when_all_child(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  when_all_child(when_all_child&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  ~when_all_child() {
    if (h_) h_.destroy();
  }
  std::coroutine_handle<promise_type> h_;
};

template <class T>
using when_all_value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
struct when_all_slot {
  std::optional<when_all_value<T>> value;
  std::exception_ptr error;
  when_all_value<T> take() { return std::move(*value); }
};

template <class T>
when_all_child when_all_run(task<T>& t, when_all_slot<T>& slot) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await t;
      slot.value.emplace();
    } else {
      slot.value.emplace(co_await t);
    }
  } catch (...) {
    slot.error = std::current_exception();
  }
}

// Starts the children one by one; the latch holds one extra count so that children finishing
// synchronously during the start cannot resume the parent before it has suspended.
struct when_all_awaiter {
  std::vector<when_all_child>& children;
  when_all_latch& latch;
  bool await_ready() const noexcept { return children.empty(); }
  bool await_suspend(std::coroutine_handle<> parent) noexcept {
    latch.parent = parent;
    for (auto& c : children) {
      c.h_.promise().latch = &latch;
      c.h_.resume();
    }
    return --latch.count != 0;
  }
  void await_resume() const noexcept {}
};

}  // namespace detail

template <class... Ts>
task<std::tuple<detail::when_all_value<Ts>...>> when_all(task<Ts>... tasks) {
  std::tuple<task<Ts>...> ts{std::move(tasks)...};
  std::tuple<detail::when_all_slot<Ts>...> slots;
  detail::when_all_latch latch{sizeof...(Ts) + 1};
  std::vector<detail::when_all_child> children;
  children.reserve(sizeof...(Ts));
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (children.push_back(detail::when_all_run(std::get<I>(ts), std::get<I>(slots))), ...);
  }(std::index_sequence_for<Ts...>{});
  co_await detail::when_all_awaiter{children, latch};
  std::exception_ptr first;
  std::apply([&](auto&... s) { ((first = first ? first : s.error), ...); }, slots);
  if (first) std::rethrow_exception(first);
  co_return std::apply([](auto&... s) { return std::tuple{s.take()...}; }, slots);
}

template <class T>
task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> when_all(
    std::vector<task<T>> tasks) {
  std::vector<detail::when_all_slot<T>> slots(tasks.size());
  detail::when_all_latch latch{tasks.size() + 1};
  std::vector<detail::when_all_child> children;
  children.reserve(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i)
    children.push_back(detail::when_all_run(tasks[i], slots[i]));
  co_await detail::when_all_awaiter{children, latch};
  for (auto& s : slots)
    if (s.error) std::rethrow_exception(s.error);
  if constexpr (!std::is_void_v<T>) {
    std::vector<T> out;
    out.reserve(slots.size());
    for (auto& s : slots) out.push_back(s.take());
    co_return out;
  }
}

}  // namespace ringsock
