// bench server "compat-apm": bench/dotnet/ApmServer.cs (the Socket.EndAccept page's Begin/End
// Listen_Callback server, echoing) ported line for line to ringsock::compat by the README's
// mechanical edit ("Porting from .NET"); tests/examples/listen_callback.cpp is the seed itself.
// Modes: echo and http (http_min.h). Prints "PORT <n>" once listening on 127.0.0.1.
//   compat_apm_server echo|http [port]
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "http_min.h"
#include "ringsock/compat.hpp"

using namespace ringsock::compat;

namespace {

std::span<const std::byte> text(const char* s) { return std::as_bytes(std::span(s, std::strlen(s))); }
const std::span<const std::byte> Ok = text(http_ok), OkClose = text(http_ok_close), TooLarge = text(http_431);

// State object for reading client data asynchronously
class StateObject {
 public:
  std::shared_ptr<Socket> workSocket = nullptr;
  static constexpr int BUFFER_SIZE = HTTP_MAX_HEADER;
  std::array<std::byte, BUFFER_SIZE> buffer{};  // zeroed, as C#'s new byte[] is
  // http mode: the bytes pending in buffer, the request being answered, whether it closes
  int pending = 0, consumed = 0;
  bool close = false;
};

bool http = false;

class ApmServer {
 public:
  // Listens and posts the first BeginAccept; returns the port.
  static int Start(ringsock::io_context& ctx, const IPEndPoint& local, int backlog) {
    auto s = std::make_shared<Socket>(ctx, local.AddressFamily(), SocketType::Stream, ProtocolType::Tcp);
    s->Bind(local);
    s->Listen(backlog);
    s->BeginAccept(&Listen_Callback, s);
    return std::dynamic_pointer_cast<IPEndPoint>(s->LocalEndPoint())->Port();
  }

  static void Listen_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto s = std::any_cast<std::shared_ptr<Socket>>(ar->AsyncState());
    std::shared_ptr<Socket> s2;
    try {
      s2 = s->EndAccept(ar);
    } catch (const SocketException&) {
      s->BeginAccept(&Listen_Callback, s);
      return;
    }
    auto so2 = std::make_shared<StateObject>();
    so2->workSocket = s2;
    s2->BeginReceive(so2->buffer, 0, StateObject::BUFFER_SIZE, SocketFlags::None, &Read_Callback, so2);
    s->BeginAccept(&Listen_Callback, s);
  }

  static void Read_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto so = std::any_cast<std::shared_ptr<StateObject>>(ar->AsyncState());
    auto s = so->workSocket;
    int read;
    try {
      read = s->EndReceive(ar);
    } catch (const SocketException&) {
      s->Close();
      return;
    }
    if (read <= 0) {
      s->Close();
      return;
    }
    if (!http) {
      s->BeginSend(so->buffer, 0, read, SocketFlags::None, &Send_Callback, so);
      return;
    }
    so->pending += read;
    NextRequest(so);
  }

  static void Send_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto so = std::any_cast<std::shared_ptr<StateObject>>(ar->AsyncState());
    auto s = so->workSocket;
    try {
      s->EndSend(ar);
    } catch (const SocketException&) {
      s->Close();
      return;
    }
    if (!http) {
      s->BeginReceive(so->buffer, 0, StateObject::BUFFER_SIZE, SocketFlags::None, &Read_Callback, so);
      return;
    }
    if (so->close) {
      try {
        s->Shutdown(SocketShutdown::Send);
      } catch (const SocketException&) {  // the client has gone already
      }
      s->Close();
      return;
    }
    const int rest = so->pending - so->consumed;
    if (rest > 0)  // Buffer.BlockCopy
      std::memmove(so->buffer.data(), so->buffer.data() + so->consumed, static_cast<std::size_t>(rest));
    so->pending = rest;
    NextRequest(so);
  }

 private:
  // http: answers the first complete request pending, or receives more of it.
  static void NextRequest(const std::shared_ptr<StateObject>& so) {
    auto& s = so->workSocket;
    const char* req = reinterpret_cast<const char*>(so->buffer.data());
    const auto end = static_cast<int>(http_request_end(req, static_cast<std::size_t>(so->pending)));
    std::span<const std::byte> reply;
    if (end > 0) {
      so->close = http_wants_close(req, static_cast<std::size_t>(end)) != 0;
      so->consumed = end;
      reply = so->close ? OkClose : Ok;
    } else if (so->pending == StateObject::BUFFER_SIZE) {
      so->close = true;
      reply = TooLarge;
    } else {
      s->BeginReceive(so->buffer, so->pending, StateObject::BUFFER_SIZE - so->pending, SocketFlags::None,
                      &Read_Callback, so);
      return;
    }
    s->BeginSend(reply, 0, static_cast<int>(reply.size()), SocketFlags::None, &Send_Callback, so);
  }
};

constexpr int Backlog = 4096;  // as the other bench servers (the seed's sample uses 100)

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "echo" && mode != "http") {
    std::fprintf(stderr, "usage: compat_apm_server echo|http [port]\n");
    return 2;
  }
  http = mode == "http";
  try {
    ringsock::io_context ctx;
    const int port = ApmServer::Start(ctx, IPEndPoint(IPAddress::Loopback, argc > 2 ? std::atoi(argv[2]) : 0), Backlog);
    std::printf("PORT %d\n", port);
    std::fflush(stdout);
    ctx.run();
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "compat_apm_server: %s\n", ex.what());
    return 1;
  }
  return 0;
}
