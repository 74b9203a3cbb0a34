// The seed's Listen_Callback example (Socket.EndAccept reference page) and the Read_Callback it
// chains to, ported line for line from C# to ringsock::compat, plus an echo reply. Built by
// Meson and run as a test: `listen_callback --self-test` starts the server, connects clients
// from another thread, and checks that each gets its message echoed back.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ringsock/compat.hpp"

using namespace ringsock::compat;

// public class StateObject { ... }
class StateObject {
 public:
  std::shared_ptr<Socket> workSocket = nullptr;
  static constexpr int BUFFER_SIZE = 1024;
  std::array<std::byte, BUFFER_SIZE> buffer{};
  std::string sb;  // StringBuilder
};

static std::atomic<int> served{0};

class Async_Send_Receive {
 public:
  // public static void Listen_Callback(IAsyncResult ar)
  static void Listen_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto s = std::any_cast<std::shared_ptr<Socket>>(ar->AsyncState());  // Socket s = (Socket) ar.AsyncState;
    auto s2 = s->EndAccept(ar);                                         // Socket s2 = s.EndAccept(ar);
    auto so2 = std::make_shared<StateObject>();                         // StateObject so2 = new StateObject();
    so2->workSocket = s2;                                               // so2.workSocket = s2;
    s2->BeginReceive(so2->buffer, 0, StateObject::BUFFER_SIZE, SocketFlags::None,
                     &Async_Send_Receive::Read_Callback, so2);
    // Not in the seed: keep accepting, so the server takes the next client too.
    s->BeginAccept(&Async_Send_Receive::Listen_Callback, s);
  }

  // public static void Read_Callback(IAsyncResult ar)
  static void Read_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto so = std::any_cast<std::shared_ptr<StateObject>>(ar->AsyncState());  // StateObject so = (StateObject) ar.AsyncState;
    auto s = so->workSocket;                                                  // Socket s = so.workSocket;
    int read = s->EndReceive(ar);                                             // int read = s.EndReceive(ar);
    if (read > 0) {
      so->sb.append(reinterpret_cast<const char*>(so->buffer.data()), read);  // so.sb.Append(Encoding.ASCII.GetString(so.buffer, 0, read));
      s->BeginReceive(so->buffer, 0, StateObject::BUFFER_SIZE, SocketFlags::None,
                      &Async_Send_Receive::Read_Callback, so);
    } else {
      if (so->sb.size() > 1) {
        // All of the data has been read: echo it back (the seed prints it).
        std::printf("Read %zu bytes from socket\n", so->sb.size());
        s->BeginSend(std::as_bytes(std::span(so->sb)), 0, static_cast<int>(so->sb.size()),
                     SocketFlags::None, &Async_Send_Receive::Send_Callback, so);
        return;
      }
      s->Close();
    }
  }

  static void Send_Callback(std::shared_ptr<IAsyncResult> ar) {
    auto so = std::any_cast<std::shared_ptr<StateObject>>(ar->AsyncState());
    so->workSocket->EndSend(ar);
    so->workSocket->Close();
    ++served;
  }
};

int main(int argc, char** argv) {
  const bool self_test = argc > 1 && std::string(argv[1]) == "--self-test";
  ringsock::io_context ctx;
  auto listener = std::make_shared<Socket>(ctx, AddressFamily::InterNetwork, SocketType::Stream,
                                           ProtocolType::Tcp);
  listener->Bind(IPEndPoint(IPAddress::Loopback, self_test ? 0 : 11000));
  listener->Listen(100);
  listener->BeginAccept(&Async_Send_Receive::Listen_Callback, listener);
  const ringsock::endpoint ep = listener->LocalEndPoint()->native();
  std::printf("listening on %s\n", ep.to_string().c_str());
  if (!self_test) {
    ctx.run();
    return 0;
  }

  constexpr int clients = 4;
  std::atomic<int> echoed_ok{0};
  std::thread peers([&] {
    for (int i = 0; i < clients; ++i) {
      std::string msg = "message " + std::to_string(i) + " " + std::string(3000 * i, 'x');
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, ep.data(), ep.size()) != 0) break;
      ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_WR);
      std::string back;
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) back.append(buf, static_cast<std::size_t>(n));
      ::close(fd);
      if (back == msg) ++echoed_ok;
    }
  });
  ctx.run_until([&] { return served.load() == clients; });
  peers.join();
  listener->Close();
  std::printf("self-test: %d of %d clients echoed correctly\n", echoed_ok.load(), clients);
  return echoed_ok.load() == clients ? 0 : 1;
}
