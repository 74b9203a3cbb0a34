// The C++ side of the differential compat tests: tests/dotnet/trace/Program.cs ported to
// ringsock::compat by the README's mechanical edit ("Porting from .NET"). Each scenario prints
// the same trace lines as the C# program; tests/dotnet/difftest.py runs both and compares.
// Where C# blocks on a ManualResetEventSlim or sleeps, the port drives the context's loop
// (ctx.run_until), as the porting guide says: completions run on this thread.
// RINGSOCK_TRACE_INJECT=1 changes one line on purpose (the script's check that it notices).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ringsock/compat.hpp"

using namespace ringsock::compat;
using namespace std::chrono_literals;

namespace {

ringsock::io_context* g_ctx = nullptr;

void T(const std::string& line) { std::printf("%s\n", line.c_str()); }
std::string B(bool b) { return b ? "True" : "False"; }
std::string I(SocketError e) { return std::to_string(static_cast<int>(e)); }

std::string Ex(const std::exception& x) {
  auto with = [](const char* type, const std::string& param) {
    return std::string("type=") + type + " param=" + (param.empty() ? "-" : param);
  };
  if (auto* a = dynamic_cast<const ArgumentNullException*>(&x)) return with("ArgumentNullException", a->ParamName());
  if (auto* a = dynamic_cast<const ArgumentOutOfRangeException*>(&x)) return with("ArgumentOutOfRangeException", a->ParamName());
  if (auto* a = dynamic_cast<const ArgumentException*>(&x)) return with("ArgumentException", a->ParamName());
  if (dynamic_cast<const ObjectDisposedException*>(&x)) return with("ObjectDisposedException", "");
  if (dynamic_cast<const InvalidOperationException*>(&x)) return with("InvalidOperationException", "");
  if (dynamic_cast<const NotSupportedException*>(&x)) return with("NotSupportedException", "");
  if (auto* se = dynamic_cast<const SocketException*>(&x))
    return with("SocketException", "") + " code=" + I(se->SocketErrorCode());
  return with("other", "");
}

// done.Wait() / Thread.Sleep(ms): the loop runs meanwhile.
void Wait(const bool& done) { g_ctx->run_until([&done] { return done; }); }
void Sleep(std::chrono::milliseconds ms) { g_ctx->run_until([] { return false; }, ms); }

std::shared_ptr<Socket> Listener() {
  auto l = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  l->Bind(IPEndPoint(IPAddress::Loopback, 0));
  l->Listen(16);
  return l;
}

// A blocking peer (the other end the scenario talks to): a plain socket.
int Peer(const std::shared_ptr<Socket>& listener) {
  const ringsock::endpoint ep = listener->LocalEndPoint()->native();
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(c, ep.data(), ep.size()) != 0) std::abort();
  return c;
}

std::shared_ptr<Socket> AcceptOne(const std::shared_ptr<Socket>& listener) {
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  if (listener->AcceptAsync(e)) Wait(done);
  return e.AcceptSocket();
}

std::string Ascii(const SocketAsyncEventArgs& a) {
  return std::string(reinterpret_cast<const char*>(a.Buffer().data()) + a.Offset(),
                     static_cast<std::size_t>(a.BytesTransferred()));
}

void AcceptLoop() {
  auto l = Listener();
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  bool pending = l->AcceptAsync(e);
  T("accept 1 pending=" + B(pending));
  const int c1 = Peer(l);
  if (pending) Wait(done);
  T("accept 1 error=" + I(e.SocketError()) + " connected=" + B(e.AcceptSocket()->Connected()) +
    " op=" + (e.LastOperation() == SocketAsyncOperation::Accept ? "Accept" : "other"));
  auto s1 = e.AcceptSocket();
  const int c2 = Peer(l), c3 = Peer(l);
  Sleep(300ms);
  std::vector<std::shared_ptr<Socket>> accepted{s1};
  for (int i = 2; i <= 3; ++i) {
    done = false;
    e.AcceptSocket(nullptr);
    pending = l->AcceptAsync(e);
    T("accept " + std::to_string(i) + " pending=" + B(pending));
    if (pending) Wait(done);
    const bool fresh = std::find(accepted.begin(), accepted.end(), e.AcceptSocket()) == accepted.end();
    T("accept " + std::to_string(i) + " error=" + I(e.SocketError()) + " connected=" +
      B(e.AcceptSocket()->Connected()) + " new=" + B(fresh));
    accepted.push_back(e.AcceptSocket());
  }
  ::send(c1, "hello", 5, MSG_NOSIGNAL);
  SocketAsyncEventArgs r;
  bool rdone = false;
  r.Completed += [&rdone](Socket&, SocketAsyncEventArgs&) { rdone = true; };
  std::vector<std::byte> buf(16);
  r.SetBuffer(buf, 0, 16);
  Sleep(100ms);
  pending = s1->ReceiveAsync(r);
  if (pending) Wait(rdone);
  T("receive error=" + I(r.SocketError()) + " bytes=" + std::to_string(r.BytesTransferred()) +
    " data=" + Ascii(r));
  for (auto& s : accepted) s->Dispose();
  ::close(c1), ::close(c2), ::close(c3);
  l->Dispose();
}

void AcceptValidation() {
  auto l = Listener();
  try {
    l->AcceptAsync(static_cast<SocketAsyncEventArgs*>(nullptr));
    T("null: no exception");
  } catch (const std::exception& x) {
    T("null: " + Ex(x));
  }
  SocketAsyncEventArgs withList;
  std::vector<std::byte> eight(8);
  withList.BufferList(std::vector<std::span<std::byte>>{eight});
  try {
    l->AcceptAsync(withList);
    T("bufferlist: no exception");
  } catch (const std::exception& x) {
    T("bufferlist: " + Ex(x));
  }
  auto bound = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  bound->Bind(IPEndPoint(IPAddress::Loopback, 0));
  try {
    SocketAsyncEventArgs fresh;
    bound->AcceptAsync(fresh);
    T("not listening: no exception");
  } catch (const std::exception& x) {
    T("not listening: " + Ex(x));
  }
  SocketAsyncEventArgs busy;
  T("busy first pending=" + B(l->AcceptAsync(busy)));
  try {
    l->AcceptAsync(busy);
    T("busy again: no exception");
  } catch (const std::exception& x) {
    T("busy again: " + Ex(x));
  }
  auto d = Listener();
  d->Dispose();
  try {
    SocketAsyncEventArgs fresh;
    d->AcceptAsync(fresh);
    T("disposed: no exception");
  } catch (const std::exception& x) {
    T("disposed: " + Ex(x));
  }
  bool done = false;
  busy.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  l->Dispose();
  Wait(done);
  T("busy after dispose error=" + I(busy.SocketError()));
  bound->Dispose();
}

void ReceiveConcurrent() {
  auto l = Listener();
  const int c = Peer(l);
  auto s = AcceptOne(l);
  std::map<std::string, std::string> got;  // printed e1 then e2, as the C# side does
  int left = 2;
  SocketAsyncEventArgs e1, e2;
  std::vector<std::byte> b1(3), b2(3);
  e1.SetBuffer(b1, 0, 3);
  e2.SetBuffer(b2, 0, 3);
  e1.UserToken(std::string("e1"));
  e2.UserToken(std::string("e2"));
  auto h = [&](Socket&, SocketAsyncEventArgs& a) {
    const std::string token = std::any_cast<std::string>(a.UserToken());
    got[token] = token + " error=" + I(a.SocketError()) + " bytes=" +
                 std::to_string(a.BytesTransferred()) + " data=" + Ascii(a);
    --left;
  };
  e1.Completed += h;
  e2.Completed += h;
  T("e1 pending=" + B(s->ReceiveAsync(e1)));
  T("e2 pending=" + B(s->ReceiveAsync(e2)));
  ::send(c, "abcdef", 6, MSG_NOSIGNAL);
  g_ctx->run_until([&left] { return left == 0; });
  T(got["e1"]);
  T(got["e2"]);
  s->Dispose();
  ::close(c);
  l->Dispose();
}

void Udp() {
  auto a = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Dgram, ProtocolType::Udp);
  auto b = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Dgram, ProtocolType::Udp);
  a->Bind(IPEndPoint(IPAddress::Loopback, 0));
  b->Bind(IPEndPoint(IPAddress::Loopback, 0));
  SocketAsyncEventArgs r;
  bool rdone = false;
  r.Completed += [&rdone](Socket&, SocketAsyncEventArgs&) { rdone = true; };
  std::vector<std::byte> rbuf(16);
  r.SetBuffer(rbuf, 0, 16);
  r.RemoteEndPoint(IPEndPoint(IPAddress::Any, 0));
  T("receivefrom pending=" + B(b->ReceiveFromAsync(r)));
  SocketAsyncEventArgs e;
  bool sdone = false;
  e.Completed += [&sdone](Socket&, SocketAsyncEventArgs&) { sdone = true; };
  std::string ping = "ping";
  e.SetBuffer(std::as_writable_bytes(std::span(ping)), 0, 4);
  e.RemoteEndPoint(b->LocalEndPoint());
  const bool sp = a->SendToAsync(e);
  if (sp) Wait(sdone);
  T("sendto error=" + I(e.SocketError()) + " bytes=" + std::to_string(e.BytesTransferred()));
  Wait(rdone);
  auto from = std::dynamic_pointer_cast<IPEndPoint>(r.RemoteEndPoint());
  auto mine = std::dynamic_pointer_cast<IPEndPoint>(a->LocalEndPoint());
  T("receivefrom error=" + I(r.SocketError()) + " bytes=" + std::to_string(r.BytesTransferred()) +
    " data=" + Ascii(r) + " from_sender=" + B(from && mine && from->Port() == mine->Port()));
  a->Dispose();
  b->Dispose();
}

void DisposePending() {
  auto l = Listener();
  const int c = Peer(l);
  auto s = AcceptOne(l);
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  std::vector<std::byte> buf(16);
  e.SetBuffer(buf, 0, 16);
  T("receive pending=" + B(s->ReceiveAsync(e)));
  s->Dispose();
  Wait(done);
  const bool inject = std::getenv("RINGSOCK_TRACE_INJECT") != nullptr;
  T("receive error=" + I(inject ? SocketError::Success : e.SocketError()) + " bytes=" +
    std::to_string(e.BytesTransferred()));
  char pbuf[16];
  const ssize_t n = ::recv(c, pbuf, sizeof pbuf, 0);
  if (n >= 0)
    T(std::string("peer: ") + (n == 0 ? "end of stream" : "data"));
  else
    T(std::string("peer: ") + (errno == ECONNRESET ? "ConnectionReset" : "error " + std::to_string(errno)));
  ::close(c);
  l->Dispose();
}

void AcceptBuffer() {
  auto l = Listener();
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  std::vector<std::byte> buf(256);
  e.SetBuffer(buf, 0, 256);
  bool pending = false;
  try {
    pending = l->AcceptAsync(e);
    T("accept with buffer pending=" + B(pending));
  } catch (const std::exception& x) {
    T("accept with buffer: " + Ex(x));
  }
  l->Dispose();
  if (pending) Wait(done);  // e must not go while in use (C#'s collector keeps it)
}

int chained = 0;
void Listen_Callback(std::shared_ptr<IAsyncResult> ar) {
  auto s = std::any_cast<std::shared_ptr<Socket>>(ar->AsyncState());
  auto s2 = s->EndAccept(ar);
  T("callback connected=" + B(s2->Connected()) + " sync=" + B(ar->CompletedSynchronously()));
  s2->Dispose();
  // Counted after the next accept is begun: the main flow connects the next client only then.
  if (chained < 1) s->BeginAccept(&Listen_Callback, s);
  ++chained;
}

void BeginAcceptChain() {
  auto l = Listener();
  auto r = l->BeginAccept(&Listen_Callback, l);
  T("begin sync=" + B(r->CompletedSynchronously()));
  const int c1 = Peer(l);
  g_ctx->run_until([] { return chained >= 1; }, 5s);
  Sleep(50ms);
  const int c2 = Peer(l);
  g_ctx->run_until([] { return chained >= 2; }, 5s);
  T("accepted " + std::to_string(chained));
  ::close(c1), ::close(c2);
  l->Dispose();
}

void OpValidation() {
  auto s = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  auto null_e = static_cast<SocketAsyncEventArgs*>(nullptr);
  try { s->ReceiveAsync(null_e); T("receive null: no exception"); } catch (const std::exception& x) { T("receive null: " + Ex(x)); }
  try { s->SendAsync(null_e); T("send null: no exception"); } catch (const std::exception& x) { T("send null: " + Ex(x)); }
  try { s->ConnectAsync(null_e); T("connect null: no exception"); } catch (const std::exception& x) { T("connect null: " + Ex(x)); }
  SocketAsyncEventArgs noRemote;
  try { s->ConnectAsync(noRemote); T("connect no remote: no exception"); } catch (const std::exception& x) { T("connect no remote: " + Ex(x)); }
  SocketAsyncEventArgs withList;
  withList.RemoteEndPoint(IPEndPoint(IPAddress::Loopback, 9));
  std::vector<std::byte> eight(8);
  withList.BufferList(std::vector<std::span<std::byte>>{eight});
  try { s->ConnectAsync(withList); T("connect bufferlist: no exception"); } catch (const std::exception& x) { T("connect bufferlist: " + Ex(x)); }
  SocketAsyncEventArgs r;
  bool done = false;
  r.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  std::vector<std::byte> rb(8);
  r.SetBuffer(rb, 0, 8);
  try {
    const bool p = s->ReceiveAsync(r);
    if (p) Wait(done);
    T("receive not connected pending=" + B(p) + " error=" + I(r.SocketError()));
  } catch (const std::exception& x) {
    T("receive not connected: " + Ex(x));
  }
  SocketAsyncEventArgs w;
  bool wdone = false;
  w.Completed += [&wdone](Socket&, SocketAsyncEventArgs&) { wdone = true; };
  std::vector<std::byte> wb(8);
  w.SetBuffer(wb, 0, 8);
  try {
    const bool p = s->SendAsync(w);
    if (p) Wait(wdone);
    T("send not connected pending=" + B(p) + " error=" + I(w.SocketError()));
  } catch (const std::exception& x) {
    T("send not connected: " + Ex(x));
  }
  s->Dispose();
  try { SocketAsyncEventArgs f; s->ReceiveAsync(f); T("receive disposed: no exception"); } catch (const std::exception& x) { T("receive disposed: " + Ex(x)); }
  try { SocketAsyncEventArgs f; s->SendAsync(f); T("send disposed: no exception"); } catch (const std::exception& x) { T("send disposed: " + Ex(x)); }
  SocketAsyncEventArgs e;
  e.RemoteEndPoint(IPEndPoint(IPAddress::Loopback, 9));
  try { s->ConnectAsync(e); T("connect disposed: no exception"); } catch (const std::exception& x) { T("connect disposed: " + Ex(x)); }
}

void ApmNotConnected() {
  auto s = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  std::vector<std::byte> buf(8);
  try {
    auto r = s->BeginReceive(buf, 0, 8, SocketFlags::None, nullptr, {});
    T("beginreceive sync=" + B(r->CompletedSynchronously()));
    try { T("endreceive bytes=" + std::to_string(s->EndReceive(r))); } catch (const std::exception& x) { T("endreceive: " + Ex(x)); }
  } catch (const std::exception& x) {
    T("beginreceive: " + Ex(x));
  }
  try {
    auto r = s->BeginSend(buf, 0, 8, SocketFlags::None, nullptr, {});
    T("beginsend sync=" + B(r->CompletedSynchronously()));
    try { T("endsend bytes=" + std::to_string(s->EndSend(r))); } catch (const std::exception& x) { T("endsend: " + Ex(x)); }
  } catch (const std::exception& x) {
    T("beginsend: " + Ex(x));
  }
  s->Dispose();
}

// The peer's blocking reads (C#: Socket.Receive on the accepted socket): up to `want` bytes.
std::string PeerReceive(int fd, std::size_t want) {
  std::string got;
  char buf[16];
  while (got.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) break;
    const ssize_t k = ::recv(fd, buf, std::min(sizeof buf, want - got.size()), 0);
    if (k <= 0) break;
    got.append(buf, static_cast<std::size_t>(k));
  }
  return got;
}

void ConnectWithBuffer() {
  auto l = Listener();
  auto c = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  e.RemoteEndPoint(l->LocalEndPoint());
  std::string hello = "hello";
  e.SetBuffer(std::as_writable_bytes(std::span(hello)), 0, 5);
  const bool p = c->ConnectAsync(e);
  T("connect pending=" + B(p));
  if (p) Wait(done);
  T("connect error=" + I(e.SocketError()) + " bytes=" + std::to_string(e.BytesTransferred()) +
    " connected=" + B(c->Connected()) + " op=" + (e.LastOperation() == SocketAsyncOperation::Connect ? "Connect" : "other"));
  auto s = AcceptOne(l);
  T("peer got=" + PeerReceive(s->Handle(), 5));
  s->Dispose();
  c->Dispose();
  l->Dispose();
}

void DisconnectReuse() {
  auto l = Listener();
  auto c = std::make_shared<Socket>(*g_ctx, AddressFamily::InterNetwork, SocketType::Stream, ProtocolType::Tcp);
  c->Connect(*l->LocalEndPoint());
  auto s1 = AcceptOne(l);
  SocketAsyncEventArgs d;
  bool ddone = false;
  d.Completed += [&ddone](Socket&, SocketAsyncEventArgs&) { ddone = true; };
  d.DisconnectReuseSocket(true);
  bool p = c->DisconnectAsync(d);
  if (p) Wait(ddone);
  T("disconnect pending=" + B(p) + " error=" + I(d.SocketError()) + " connected=" + B(c->Connected()));
  T(std::string("peer after disconnect: ") + (PeerReceive(s1->Handle(), 8).empty() ? "end of stream" : "data"));
  SocketAsyncEventArgs e;
  bool done = false;
  e.Completed += [&done](Socket&, SocketAsyncEventArgs&) { done = true; };
  e.RemoteEndPoint(l->LocalEndPoint());
  p = c->ConnectAsync(e);
  if (p) Wait(done);
  T("reconnect error=" + I(e.SocketError()) + " connected=" + B(c->Connected()));
  auto s2 = AcceptOne(l);
  T("accepted again connected=" + B(s2->Connected()));
  s1->Dispose();
  s2->Dispose();
  c->Dispose();
  l->Dispose();
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> scenarios{
      {"accept_loop", AcceptLoop},
      {"accept_validation", AcceptValidation},
      {"receive_concurrent", ReceiveConcurrent},
      {"udp", Udp},
      {"dispose_pending", DisposePending},
      {"accept_buffer", AcceptBuffer},
      {"begin_accept_chain", BeginAcceptChain},
      {"op_validation", OpValidation},
      {"apm_not_connected", ApmNotConnected},
      {"connect_with_buffer", ConnectWithBuffer},
      {"disconnect_reuse", DisconnectReuse},
  };
  if (argc != 2 || !scenarios.count(argv[1])) {
    std::fprintf(stderr, "usage: compat_trace <scenario> (see tests/dotnet/difftest.py)\n");
    return 2;
  }
  ringsock::io_context ctx;
  g_ctx = &ctx;
  scenarios.at(argv[1])();
  std::fflush(stdout);
  return 0;
}
