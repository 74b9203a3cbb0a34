// A small multicast event: `e.Completed += handler` returns a token, `e.Completed -= token`
// removes that handler. Raising it allocates nothing; adding a handler may.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace ringsock::compat {

template <class... Args>
class Event {
 public:
  using handler_type = std::function<void(Args...)>;
  using token = std::size_t;

  token operator+=(handler_type h) {
    handlers_.emplace_back(++last_, std::move(h));
    return last_;
  }
  void operator-=(token t) {
    for (auto it = handlers_.begin(); it != handlers_.end(); ++it)
      if (it->first == t) {
        handlers_.erase(it);
        return;
      }
  }
  bool empty() const noexcept { return handlers_.empty(); }
  std::size_t size() const noexcept { return handlers_.size(); }
  // Runs every handler in the order added. A handler may add or remove handlers; the ones
  // present when raising started run.
  void operator()(Args... args) const {
    const std::size_t n = handlers_.size();
    for (std::size_t i = 0; i < n && i < handlers_.size(); ++i) handlers_[i].second(args...);
  }

 private:
  std::vector<std::pair<token, handler_type>> handlers_;
  token last_ = 0;
};

}  // namespace ringsock::compat
