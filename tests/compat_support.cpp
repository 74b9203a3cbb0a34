#include "compat_support.hpp"

namespace ctest {

namespace {
ringsock::task<void> alarm(ringsock::io_context& ctx, std::chrono::milliseconds d,
                           std::shared_ptr<bool> fired, std::stop_token stop) {
  std::error_code ec = co_await ringsock::sleep_for(ctx, d, stop);  // not in the if: GCC 12.2
  if (!ec) *fired = true;
}
}  // namespace

bool drive(ringsock::io_context& ctx, const std::function<bool()>& pred,
           std::chrono::milliseconds limit) {
  auto fired = std::make_shared<bool>(false);
  std::stop_source stop;
  ctx.spawn(alarm(ctx, limit, fired, stop.get_token()));
  ctx.run_until([&] { return pred() || *fired; });
  stop.request_stop();
  ctx.run_until([&] { return true; });  // one more turn: the alarm's cancellation goes out
  return pred();
}

std::shared_ptr<Socket> listener(ringsock::io_context& ctx, bool v6) {
  auto l = std::make_shared<Socket>(ctx, v6 ? AddressFamily::InterNetworkV6 : AddressFamily::InterNetwork,
                                    SocketType::Stream, ProtocolType::Tcp);
  l->Bind(IPEndPoint(v6 ? IPAddress::IPv6Loopback : IPAddress::Loopback, 0));
  l->Listen(64);
  return l;
}

int port_of(const std::shared_ptr<Socket>& s) {
  return std::dynamic_pointer_cast<IPEndPoint>(s->LocalEndPoint())->Port();
}

ringsock::endpoint endpoint_of(const std::shared_ptr<Socket>& s) {
  return s->LocalEndPoint()->native();
}

accepted_pair accept_pair(ringsock::io_context& ctx) {
  auto l = listener(ctx);
  int c = test::blocking_connect(endpoint_of(l));
  auto s = l->EndAccept(l->BeginAccept(nullptr, {}));
  return {l, c, s};
}

}  // namespace ctest
