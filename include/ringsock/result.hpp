// The non-throwing spelling of every plain-form operation:
//   auto [ec, n] = co_await as_result(s.receive_async(buf));   // ec empty: n is the value
//   if (std::error_code ec = co_await as_result(s.connect_async(ep))) ...
// An I/O outcome (a reset peer, a cancellation, a timeout) comes back as the error_code, never
// as an exception, so a server loop pays no unwinding per failed connection. Misuse still throws
// at the call, before anything is submitted, as in every form.
#pragma once

#include <coroutine>
#include <system_error>
#include <type_traits>
#include <utility>

#include "ringsock/error.hpp"

namespace ringsock {

// The value and the error together (structured bindings: auto [ec, value]). On error the value
// is value-initialised, except for send_all_async, whose value then counts the bytes that went
// out before the error.
template <class T>
struct io_result {
  std::error_code ec;
  T value{};
};

namespace detail {

// An empty error_code. std::error_code{} calls std::system_category() out of line each time;
// this asks once (a result is made per operation).
inline std::error_code no_error() noexcept {
  static const std::error_category& system = std::system_category();
  return std::error_code(0, system);
}

template <class Awaiter>
class result_awaiter {
 public:
  using value_type = decltype(std::declval<Awaiter&>().await_resume());
  using result_type =
      std::conditional_t<std::is_void_v<value_type>, std::error_code, io_result<value_type>>;

  explicit result_awaiter(Awaiter& a) noexcept : a_(a) {}
  bool await_ready() { return a_.await_ready(); }
  // Whatever the operation's says (void, or bool: false resumes at once).
  auto await_suspend(std::coroutine_handle<> h) noexcept { return a_.await_suspend(h); }
  result_type await_resume() {
    if constexpr (requires { a_.take_result(); }) {
      return a_.take_result();  // an operation that keeps its own error_code (tls::stream)
    } else {
      return from_errno();
    }
  }

 private:
  result_type from_errno() {
    const int res = a_.raw_result();
    if constexpr (std::is_void_v<value_type>) {
      return res < 0 ? make_error_code_from_errno(-res) : no_error();
    } else {
      if (res >= 0) return {no_error(), a_.await_resume()};
      result_type r{make_error_code_from_errno(-res), value_type{}};
      if constexpr (requires { a_.value_on_error(); }) r.value = a_.value_on_error();
      return r;
    }
  }
  Awaiter& a_;  // a temporary of the same co_await expression: it lives until the resumption
};

// What as_result returns: awaitable only as the prvalue of the co_await expression itself, so
// `auto r = as_result(op); co_await r;` (which would outlive the operation's temporary) does not
// compile.
template <class Awaiter>
class result_of {
 public:
  explicit result_of(Awaiter& a) noexcept : a_(a) {}
  result_of(const result_of&) = delete;
  result_of& operator=(const result_of&) = delete;
  result_awaiter<Awaiter> operator co_await() && noexcept { return result_awaiter<Awaiter>(a_); }

 private:
  Awaiter& a_;
};

}  // namespace detail

// Wraps a plain-form operation so that co_await yields io_result<T> (or std::error_code for an
// operation without a value) instead of throwing socket_error. Write it inside the co_await
// expression: co_await as_result(s.receive_async(buf)). (The operation is a temporary of that
// expression; an lvalue awaitable, `auto aw = s.receive_async(buf); co_await as_result(aw);`, works
// too.)
template <class Awaiter>
  requires requires(const Awaiter& a) { a.raw_result(); } ||
           requires(Awaiter& a) { a.take_result(); }
[[nodiscard]] detail::result_of<std::remove_reference_t<Awaiter>> as_result(Awaiter&& a) noexcept {
  return detail::result_of<std::remove_reference_t<Awaiter>>(a);
}

}  // namespace ringsock
