// A small multicast event: `e.Completed += handler` returns a token, `e.Completed -= token`
// removes that handler. Raising it allocates nothing; adding or removing a handler allocates.
//
// .NET's rule, kept here: raising takes the invocation list as it is at that moment, and exactly
// those handlers run, each once, in the order added — whatever they do to the event meanwhile.
// The list is immutable and shared (copy on write): a handler that adds or removes handlers
// makes a new list for the next raise, while the one being raised (and the handler running from
// it) stays alive until the raise ends.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace ringsock::compat {

template <class... Args>
class Event {
 public:
  using handler_type = std::function<void(Args...)>;
  using token = std::size_t;

  // Adds a handler; returns the token that removes it.
  token operator+=(handler_type h) {
    auto next = std::make_shared<list>(list_ ? *list_ : list{});
    next->emplace_back(++last_, std::make_shared<const handler_type>(std::move(h)));
    list_ = std::move(next);
    return last_;
  }
  // Removes the handler of token `t` (nothing when it is not there). A raise in progress still
  // runs it if it was present when that raise started (.NET does the same).
  void operator-=(token t) {
    if (!list_) return;
    auto next = std::make_shared<list>();
    next->reserve(list_->size());
    for (const auto& e : *list_)
      if (e.first != t) next->push_back(e);
    if (next->size() != list_->size()) list_ = std::move(next);
  }
  bool empty() const noexcept { return size() == 0; }
  std::size_t size() const noexcept { return list_ ? list_->size() : 0; }
  // Runs the handlers present now, each once, in the order added.
  void operator()(Args... args) const {
    const std::shared_ptr<const list> snapshot = list_;  // no allocation: a reference count
    if (!snapshot) return;
    for (const auto& e : *snapshot) (*e.second)(args...);
  }

 private:
  using list = std::vector<std::pair<token, std::shared_ptr<const handler_type>>>;
  std::shared_ptr<const list> list_;
  token last_ = 0;
};

}  // namespace ringsock::compat
